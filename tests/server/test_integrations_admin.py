"""Alert rules, channels and API keys managed by admins through the API and the web pages, on a real server
(SQLite and PostgreSQL): a fleet-wide admin adds channels and tests them against real receivers on loopback; a
department's admin manages only the rules and keys of their own subtrees; other roles and API keys cannot;
and in Chromium an admin makes a webhook channel (its key shown once drives a real HMAC-checking receiver), a
rule and an API key that then works and, once revoked, does not."""
from __future__ import annotations

import json
import re
import socket
import ssl
import uuid

import pytest

from browser_support import browser_page  # noqa: F401
from server_support import ADMIN, OFFICER
from test_alerts import Hook

PASSWORD = "Integrations-admin-pw-7"


def session(server, name, password=PASSWORD):
    with server.client() as c:
        resp = c.post("/api/v1/session", json={"username": name, "password": password})
    assert resp.status_code == 200, resp.text
    return server.client(headers={"Authorization": "Bearer " + resp.json()["token"]})


@pytest.fixture
def dept(server):
    tag = uuid.uuid4().hex[:6]
    mine, theirs = "/int-%s/finance" % tag, "/int-%s/health" % tag
    admin = server.login()
    name = "fin-adm-" + tag
    resp = admin.post("/api/v1/users", json={"username": name, "password": PASSWORD, "role": "admin", "orgs": [mine]})
    assert resp.status_code == 201, resp.text
    yield {"tag": tag, "mine": mine, "theirs": theirs, "admin": admin, "scoped": session(server, name)}
    admin.close()


def test_fleet_admin_channels_and_the_test_button(server, dept):
    admin, tag = dept["admin"], dept["tag"]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(5)
    try:
        resp = admin.post("/api/v1/alerts/channels", json={"name": "siem-" + tag, "kind": "syslog", "config": {
            "address": "udp://127.0.0.1:%d" % udp.getsockname()[1]}})
        assert resp.status_code == 201 and resp.json()["secret"] is None
        assert admin.post("/api/v1/alerts/channels/siem-%s/test" % tag).status_code == 200
        line = udp.recv(65536).decode()
        assert re.match(r"^<\d+>1 \S+ \S+ xcscan - test - CEF:0\|xcscan\|", line), line
        # a receiver that is not there: 502 with the reason, and the attempt is audited
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        port = dead.getsockname()[1]
        dead.close()
        assert admin.post("/api/v1/alerts/channels", json={"name": "gone-" + tag, "kind": "webhook", "config": {
            "url": "http://127.0.0.1:%d/hook" % port}}).json()["secret"].startswith("xcw_")
        resp = admin.post("/api/v1/alerts/channels/gone-%s/test" % tag)
        assert resp.status_code == 502 and resp.json()["error"] == "delivery_failed" and "refused" in resp.text.lower()
        chans = {c["name"]: c for c in admin.get("/api/v1/alerts/channels").json()}
        assert chans["gone-" + tag]["config"] == {"url": "http://127.0.0.1:%d/hook" % port}
        assert "secret" not in json.dumps(chans["gone-" + tag])
        assert admin.post("/api/v1/alerts/channels", json={"name": "siem-" + tag, "kind": "syslog", "config": {
            "address": "udp://127.0.0.1:9"}}).status_code == 409
        assert admin.post("/api/v1/alerts/channels", json={"name": "bad-" + tag, "kind": "syslog", "config": {
            "address": "nowhere"}}).status_code == 400
    finally:
        udp.close()
    # a department's admin sees channel names only, and may neither add nor test one
    scoped = dept["scoped"]
    names = {c["name"]: c for c in scoped.get("/api/v1/alerts/channels").json()}
    assert names["siem-" + tag] == {"name": "siem-" + tag, "kind": "syslog"}
    assert scoped.post("/api/v1/alerts/channels/siem-%s/test" % tag).status_code == 403
    assert scoped.post("/api/v1/alerts/channels", json={"name": "mine-" + tag, "kind": "syslog", "config": {
        "address": "udp://127.0.0.1:9"}}).json()["error"] == "fleet_admin_only"


def test_department_admin_manages_only_their_rules_and_keys(server, dept):
    admin, scoped, tag, mine, theirs = dept["admin"], dept["scoped"], dept["tag"], dept["mine"], dept["theirs"]
    assert admin.post("/api/v1/alerts/channels", json={"name": "ch-" + tag, "kind": "syslog", "config": {
        "address": "udp://127.0.0.1:9"}}).status_code == 201
    resp = admin.post("/api/v1/alerts/rules", json={"name": "theirs-" + tag, "kind": "waiver_expiring",
                                                    "channel": "ch-" + tag, "org": theirs, "params": {"days": 7}})
    assert resp.status_code == 201 and resp.json()["params"] == {"days": 7} and resp.json()["org_path"] == theirs
    # the department admin: a rule in their subtree (default: their own), none outside
    resp = scoped.post("/api/v1/alerts/rules", json={"name": "mine-" + tag, "kind": "localization_drop",
                                                     "channel": "ch-" + tag, "params": {"points": 3, "by": "unit"}})
    assert resp.status_code == 201, resp.text
    assert resp.json()["org_path"] == mine and resp.json()["enabled"] is True
    assert resp.json()["params"] == {"points": 3, "by": "unit", "days": 7}
    assert scoped.post("/api/v1/alerts/rules", json={"name": "x-" + tag, "kind": "host_silent", "channel": "ch-" + tag,
                                                     "org": theirs}).status_code == 404
    assert scoped.post("/api/v1/alerts/rules", json={"name": "mine-" + tag, "kind": "host_silent",
                                                     "channel": "ch-" + tag}).status_code == 409
    assert scoped.post("/api/v1/alerts/rules", json={"name": "y-" + tag, "kind": "host_silent", "channel": "ch-" + tag,
                                                     "params": {"days": -1}}).status_code == 400
    assert [r["name"] for r in scoped.get("/api/v1/alerts/rules").json()] == ["mine-" + tag]
    assert {"mine-" + tag, "theirs-" + tag} <= {r["name"] for r in admin.get("/api/v1/alerts/rules").json()}
    for action in ("disable", "enable"):
        assert scoped.post("/api/v1/alerts/rules/theirs-%s/%s" % (tag, action)).status_code == 404
    assert scoped.delete("/api/v1/alerts/rules/theirs-%s" % tag).status_code == 404
    assert scoped.post("/api/v1/alerts/rules/mine-%s/disable" % tag).json() == {"name": "mine-" + tag, "enabled": False}
    assert scoped.get("/api/v1/alerts/rules").json()[0]["enabled"] is False
    assert scoped.delete("/api/v1/alerts/rules/mine-%s" % tag).status_code == 200
    assert scoped.get("/api/v1/alerts/rules").json() == []
    assert admin.post("/api/v1/alerts/rules/theirs-%s/disable" % tag).status_code == 200   # still there
    # API keys: inside their subtree only; the key works until revoked
    resp = scoped.post("/api/v1/apikeys", json={"name": "asset-" + tag, "role": "auditor", "expires": "30d"})
    assert resp.status_code == 201 and resp.json()["orgs"] == [mine] and resp.json()["key"].startswith("xck_")
    key = resp.json()["key"]
    assert scoped.post("/api/v1/apikeys", json={"name": "wide-" + tag, "role": "auditor", "orgs": [theirs]}).status_code == 403
    assert scoped.post("/api/v1/apikeys", json={"name": "boss-" + tag, "role": "admin"}).status_code == 400
    resp = admin.post("/api/v1/apikeys", json={"name": "their-key-" + tag, "role": "officer", "orgs": [theirs]})
    assert resp.status_code == 201
    assert [k["name"] for k in scoped.get("/api/v1/apikeys").json()] == ["asset-" + tag]
    assert "key" not in scoped.get("/api/v1/apikeys").json()[0] and key not in scoped.get("/api/v1/apikeys").text
    assert scoped.post("/api/v1/apikeys/their-key-%s/revoke" % tag).status_code == 404
    with server.client(headers={"Authorization": "Bearer " + key}) as c:
        assert c.get("/api/v1/hosts").status_code == 200
        assert c.get("/api/v1/apikeys").status_code == 403          # a key is never an admin
        assert scoped.post("/api/v1/apikeys/asset-%s/revoke" % tag).status_code == 200
        assert c.get("/api/v1/hosts").status_code == 401
    # a forged form field with non-ASCII characters is refused, never a server error
    assert scoped.post("/admin/alerts/rules/mine-%s/enable" % tag, data={"csrf_token": "ó"}).status_code == 403
    with server.client() as c:
        c.cookies.set("xcscan_login_csrf", "abc")
        assert c.post("/login", data={"csrf_token": "ó", "username": "a", "password": "b"}).status_code == 403
    # other roles: nothing
    with session(server, OFFICER[0], OFFICER[1]) as officer:
        for path in ("/api/v1/alerts/rules", "/api/v1/alerts/channels", "/api/v1/apikeys"):
            assert officer.get(path).status_code == 403
    entries = admin.get("/api/v1/audit").json()
    actions = {(e["action"], e["target"]) for e in entries}
    assert {("alert.rule.add", "mine-" + tag), ("alert.rule.disable", "mine-" + tag), ("alert.rule.delete", "mine-" + tag),
            ("apikey.create", "asset-" + tag), ("apikey.revoke", "asset-" + tag)} <= actions


@pytest.mark.browser
def test_admin_pages_in_chromium(server, dept, browser_page):
    import httpx
    tag = dept["tag"]
    page = browser_page
    page.goto(server.base_url + "/login?lang=en")
    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    page.click("#login-submit")
    page.wait_for_selector("#host-count")
    page.goto(server.base_url + "/admin")
    page.click("#admin-links a[href='/admin/alerts']")
    page.wait_for_selector("#channel-form")
    hook_port = Hook("unused").port
    page.fill("#channel-form input[name=name]", "hook-" + tag)
    page.select_option("#channel-form select[name=kind]", "webhook")
    page.fill("#channel-form input[name=target]", "http://127.0.0.1:%d/hook" % hook_port)
    page.click("#channel-submit")
    secret = page.inner_text("#new-secret-value").strip()
    assert secret.startswith("xcw_")
    hook = Hook(secret, hook_port).up()            # the receiver is given the key the page showed once
    try:
        page.goto(server.base_url + "/admin/alerts")
        assert secret not in page.content()
        page.click("tr[data-channel='hook-%s'] button.test" % tag)
        page.wait_for_selector("#alerts-notice")
        (event,) = [e[0] for e in hook.events.values()]
        assert event["type"] == "test" and hook.bad == 0
    finally:
        hook.down()
    page.fill("#rule-form input[name=name]", "drop-" + tag)
    page.select_option("#rule-form select[name=kind]", "localization_drop")
    page.select_option("#rule-form select[name=channel]", "hook-" + tag)
    page.fill("#rule-form input[name=org]", dept["mine"])
    page.fill("#rule-form input[name=points]", "2.5")
    page.fill("#rule-form input[name=days]", "14")
    page.click("#rule-submit")
    row = "tr[data-rule='drop-%s']" % tag
    page.wait_for_selector(row)
    assert "points=2.5" in page.inner_text(row + " .params") and "days=14" in page.inner_text(row + " .params")
    assert page.inner_text(row + " .rstate") == "Active"
    page.click(row + " button.toggle")
    page.wait_for_selector(row)
    assert page.inner_text(row + " .rstate") == "Paused"
    # a wrong value is answered on the page with the form kept
    page.fill("#rule-form input[name=name]", "bad-" + tag)
    page.select_option("#rule-form select[name=kind]", "waiver_expiring")
    page.fill("#rule-form input[name=days]", "999")
    page.click("#rule-submit")
    assert "days must be" in page.inner_text("#alerts-error")
    # API keys
    page.goto(server.base_url + "/admin/apikeys?lang=zh")
    page.fill("#key-form input[name=name]", "cmdb-" + tag)
    page.fill("#key-form input[name=orgs]", dept["mine"])
    page.click("#key-submit")
    key = page.inner_text("#new-key-value").strip()
    assert key.startswith("xck_") and "接口密钥" in page.content()
    with httpx.Client(base_url=server.base_url, verify=ssl.create_default_context(cafile=server.ca),
                      headers={"Authorization": "Bearer " + key}) as c:
        assert c.get("/api/v1/hosts").status_code == 200
        page.goto(server.base_url + "/admin/apikeys")
        assert key not in page.content()
        page.click("tr[data-key='cmdb-%s'] button.revoke" % tag)
        page.wait_for_selector("tr[data-key='cmdb-%s'] .kstate" % tag)
        assert page.inner_text("tr[data-key='cmdb-%s'] .kstate" % tag) == "已吊销"
        assert c.get("/api/v1/hosts").status_code == 401
