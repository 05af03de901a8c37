"""Headless Chromium: log in, read the overview, a host page and a drift view for a fleet the
test enrolled and fed with Ed25519-signed reports; the pages load nothing from elsewhere."""
from __future__ import annotations

import time
import uuid

import pytest

from browser_support import browser_page  # noqa: F401
from server_support import ADMIN
from fleet import Agent, component

pytestmark = pytest.mark.browser


@pytest.fixture()
def browser_fleet(server):
    org = "/browser-%s" % uuid.uuid4().hex[:6]
    agents = []
    with server.client() as c:
        for i in range(3):
            a = Agent("bw-%d-%s" % (i, uuid.uuid4().hex[:4]), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=org + ("/east" if i < 2 else "/west"))).status_code == 201
            first = a.report(fail_rules=["mlps.ia.ssh-root-login"], domestic_bias=0.0,
                             extra_components=[component("database", "oracle-db", "Oracle 数据库", "Oracle Database", "foreign", "19c")])
            for r in first["results"]:
                if r["rule_id"] == "crypto.ssh.weak-ciphers":
                    r["status"] = "fail"
            assert a.submit(c, first, timestamp=time.time() - 86400).status_code == 200
            second = a.report(fail_rules=["mlps.ia.ssh-root-login"], domestic_bias=1.0,
                              extra_components=[component("database", "dm", "达梦数据库", "DM", "domestic", "8.4")])
            for r in second["results"]:
                if r["rule_id"] == "crypto.ssh.weak-ciphers":
                    r["status"] = "pass"
            assert a.submit(c, second).status_code == 200
            a.reports = [first, second]
            agents.append(a)
    return org, agents


def test_login_overview_host_and_drift_in_chromium(server, browser_fleet, browser_page):
    org, agents = browser_fleet
    page = browser_page
    page.goto(server.base_url + "/?lang=en")
    assert "/login" in page.url
    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    page.click("#login-submit")
    page.wait_for_selector("#host-count")
    assert int(page.inner_text("#host-count")) >= 3
    assert page.locator("#by-category svg rect").count() > 0
    assert page.locator("#top-failing").count() == 1

    # the overview scoped to the test's org unit: exactly its three hosts, all domestic now, and its top
    # failing rules (fleet-wide, the session server holds other tests' hosts, whose failures can outrank
    # this one's: the fleet-wide top ten depends on which tests ran before)
    page.goto(server.base_url + "/?org=" + org)
    assert page.inner_text("#host-count") == "3"
    assert "mlps.ia.ssh-root-login" in page.inner_text("#top-failing")
    assert page.inner_text("#loc-rate") == "100.0%"
    assert "east" in page.inner_text("#by-org")

    host = agents[0]
    page.goto(server.base_url + "/hosts/" + host.host_id)
    assert page.inner_text("#host-name") == host.hostname
    inventory = page.inner_text("#inventory")
    assert "DM" in inventory and "Oracle" not in inventory
    assert page.locator('#results tr[data-rule="mlps.ia.ssh-root-login"][data-status="fail"]').count() == 1
    assert page.locator("#history tr").count() == 3  # header + two scans
    page.click("#drift-submit")  # defaults: A = older scan, B = newest
    page.wait_for_selector("#drift-components")
    comps = page.inner_text("#drift-components")
    assert "Oracle Database" in comps and "DM" in comps
    assert "removed" in comps and "added" in comps
    rules = page.inner_text("#drift-results")
    assert "crypto.ssh.weak-ciphers" in rules and "mlps.ia.ssh-root-login" not in rules

    # Chinese UI
    page.goto(server.base_url + "/hosts/" + host.host_id + "?lang=zh")
    assert "资产清单" in page.content()
    assert all(u.startswith(server.base_url) for u in page.requests_seen), page.requests_seen


def test_admin_makes_a_token_and_retires_a_host_in_chromium(server, browser_fleet, browser_page):
    org, agents = browser_fleet
    page = browser_page
    page.goto(server.base_url + "/login?lang=en")
    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    page.click("#login-submit")
    page.wait_for_selector("#host-count")

    # administration: a token for a new org unit, shown once, that enrolls a host
    page.click("#nav-admin")
    page.fill("#token-form input[name=org]", org + "/north")
    page.fill("#token-form input[name=uses]", "1")
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#new-token-value")
    token = page.inner_text("#new-token-value").strip()
    a = Agent("bw-new-%s" % uuid.uuid4().hex[:4], machine_id=uuid.uuid4().hex)
    with server.client() as c:
        assert a.enroll(c, token).status_code == 201 and a.org == org + "/north"
        assert a.submit(c, a.report()).status_code == 200

    # retire one of the fleet's hosts from its page: it leaves the org unit's figures
    page.goto(server.base_url + "/?org=" + org)
    assert page.inner_text("#host-count") == "4"
    gone = agents[2]
    page.goto(server.base_url + "/hosts/" + gone.host_id)
    page.click("#retire summary")
    page.fill("#retire-form input[name=reason]", "decommissioned in the browser test")
    page.click("#retire-form button[type=submit]")
    page.wait_for_selector("#host-retired")
    assert "decommissioned in the browser test" in page.inner_text("#host-retired")
    page.goto(server.base_url + "/?org=" + org)
    assert page.inner_text("#host-count") == "3"
    assert all(u.startswith(server.base_url) for u in page.requests_seen), page.requests_seen


def test_admin_disables_a_user_and_ends_sessions_in_chromium(server, browser_page):
    """Two browsers: an officer is logged in in one; the admin, in the other, disables the officer
    (through the confirmation page) and the officer's next page is the login form; after enabling,
    "end sessions" logs the officer out the same way."""
    page = browser_page
    name, password = "bw-off-%s" % uuid.uuid4().hex[:6], "Harbour-Lantern-Quill-8"
    with server.login() as c:
        assert c.post("/api/v1/users", json={"username": name, "password": password, "role": "officer"}).status_code == 201
    other = page.context.browser.new_context(ignore_https_errors=True)
    officer = other.new_page()

    def officer_logs_in():
        officer.goto(server.base_url + "/login?lang=en")
        officer.fill("input[name=username]", name)
        officer.fill("input[name=password]", password)
        officer.click("#login-submit")
        officer.wait_for_selector("#host-count")

    def officer_is_logged_out():
        officer.goto(server.base_url + "/hosts")
        return "/login" in officer.url and officer.locator("#login-submit").count() == 1

    try:
        officer_logs_in()
        assert not officer_is_logged_out()
        page.goto(server.base_url + "/login?lang=en")
        page.fill("input[name=username]", ADMIN[0])
        page.fill("input[name=password]", ADMIN[1])
        page.click("#login-submit")
        page.wait_for_selector("#host-count")
        page.click("#nav-admin")
        row = page.locator('#users tr[data-user="%s"]' % name)
        row.locator('a[href$="/disable"]').click()
        page.wait_for_selector("#confirm-form")
        assert page.inner_text("#confirm-sessions") == "1"
        assert not officer_is_logged_out()  # the confirmation page changed nothing
        page.click("#confirm-submit")
        page.wait_for_selector("#admin-done")
        assert name in page.inner_text("#admin-done")
        assert officer_is_logged_out()
        officer.fill("input[name=username]", name)
        officer.fill("input[name=password]", password)
        officer.click("#login-submit")
        officer.wait_for_selector("#login-error")  # a disabled user cannot log in
        assert "/login" in officer.url and officer.locator("#host-count").count() == 0

        page.locator('#users tr[data-user="%s"] a[href$="/enable"]' % name).click()
        page.click("#confirm-submit")
        page.wait_for_selector("#admin-done")
        officer_logs_in()
        page.locator('#users tr[data-user="%s"] a[href$="/logout"]' % name).click()
        page.wait_for_selector("#confirm-form")
        assert page.inner_text("#confirm-sessions") == "1"
        page.click("#confirm-submit")
        page.wait_for_selector("#admin-done")
        assert officer_is_logged_out()
        assert all(u.startswith(server.base_url) for u in page.requests_seen), page.requests_seen
    finally:
        other.close()
    with server.login() as c:
        actions = [r["action"] for r in c.get("/api/v1/audit", params={"limit": 2000}).json() if r["target"] == name]
    assert {"user.disable", "user.enable", "user.sessions_ended"} <= set(actions)
