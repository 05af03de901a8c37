"""Assessors' verdicts for manual GB/T 28448 items on a real server over TLS (SQLite and PostgreSQL):
per host and per org subtree, evidence files checked and stored, coverage complete while the
verdict is valid and open again when it lapses, all inside the assessor's scope."""
from __future__ import annotations

import base64
import time
import uuid

import pytest

from browser_support import browser_page  # noqa: F401
from fleet import Agent

PREFIX = "/assess-%s" % uuid.uuid4().hex[:6]
DEPT = PREFIX + "/health"
PASSWORD = "Assessor-user-pw-42"
LEVEL = "mlps-l3"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def manual_items():
    from scanner.engine.coverage import load_controls
    return [i["id"] for i in load_controls(LEVEL)["items"] if i["status"] == "manual"]


def _session(server, name):
    with server.client() as c:
        token = c.post("/api/v1/session", json={"username": name, "password": PASSWORD}).json()["token"]
    return server.client(headers={"Authorization": "Bearer " + token})


@pytest.fixture(scope="module")
def site(server):
    tag = uuid.uuid4().hex[:6]
    hosts = []
    with server.client() as c:
        for i, org in enumerate((DEPT, DEPT + "/ward")):
            a = Agent("as-%d-%s" % (i, tag), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=org)).status_code == 201
            assert a.submit(c, a.report()).status_code == 200
            hosts.append(a)
    admin = server.login()
    users = {}
    for role, org in (("assessor", DEPT), ("officer", DEPT), ("assessor_other", PREFIX + "/finance")):
        name = "as-%s-%s" % (role.replace("_", ""), tag)
        resp = admin.post("/api/v1/users", json={"username": name, "password": PASSWORD,
                                                 "role": role.split("_")[0], "orgs": [org]})
        assert resp.status_code == 201, resp.text
        users[role] = name
    admin.close()
    return hosts, users


def _item(cov, item_id):
    return [i for i in cov["items"] if i["id"] == item_id][0]


def test_verdicts_per_host_and_subtree_with_evidence(server, site):
    hosts, users = site
    a, b = hosts
    items = manual_items()
    assert len(items) >= 2
    c = _session(server, users["assessor"])
    cov = c.get("/api/v1/coverage", params={"host": a.host_id, "level": LEVEL}).json()
    assert _item(cov, items[0])["state"] == "open" and cov["complete_items"] < cov["total_items"]
    # host verdict with a PDF; the subtree verdict covers both hosts
    r = c.post("/api/v1/assessments", json={
        "item_id": items[0], "target_kind": "host", "target": a.hostname, "verdict": "partial",
        "record": "已核查备份策略文档，未覆盖本机日志", "valid_until": int(time.time()) + 3600,
        "files": [{"name": "backup-policy.pdf", "data": base64.b64encode(PDF).decode()}]})
    assert r.status_code == 201, r.text
    host_verdict = r.json()
    assert host_verdict["target"] == a.host_id and host_verdict["files"][0]["content_type"] == "application/pdf"
    r = c.post("/api/v1/assessments", json={
        "item_id": items[0], "target_kind": "org", "target": DEPT, "verdict": "conform",
        "record": "部门统一备份策略", "valid_until": int(time.time()) + 3600})
    assert r.status_code == 201, r.text
    cov_a = _item(c.get("/api/v1/coverage", params={"host": a.host_id}).json(), items[0])
    cov_b = _item(c.get("/api/v1/coverage", params={"host": b.host_id}).json(), items[0])
    assert (cov_a["state"], cov_a["result"], cov_a["by"]) == ("recorded", "partial", "host")  # the host's own wins
    assert (cov_b["state"], cov_b["result"], cov_b["by"]) == ("recorded", "conform", "org")
    dept = _item(c.get("/api/v1/coverage", params={"org": DEPT}).json(), items[0])
    assert dept["complete"] and dept["complete_hosts"] == dept["hosts"] == 2
    assert not _item(c.get("/api/v1/coverage", params={"org": DEPT}).json(), items[1])["complete"]
    # the evidence comes back byte for byte
    f = host_verdict["files"][0]
    got = c.get("/api/v1/assessments/%d/files/%d" % (host_verdict["id"], f["id"]))
    assert got.status_code == 200 and got.content == PDF and got.headers["content-type"] == "application/pdf"
    # revoking the org verdict opens the item on the host that had no verdict of its own
    assert c.post("/api/v1/assessments/%d/revoke" % r.json()["id"]).status_code == 200
    assert _item(c.get("/api/v1/coverage", params={"host": b.host_id}).json(), items[0])["state"] == "open"
    c.close()


def test_bad_verdicts_are_refused(server, site):
    hosts, users = site
    items = manual_items()
    c = _session(server, users["assessor"])
    base = {"item_id": items[1], "target_kind": "host", "target": hosts[0].host_id, "verdict": "conform",
            "record": "x", "valid_until": int(time.time()) + 60}

    def post(**kw):
        return c.post("/api/v1/assessments", json=dict(base, **kw))
    assert post(verdict="pass").json()["error"] == "bad_verdict"
    assert post(item_id="L3-CES1-01").json()["error"] == "not_assessable"  # decided by rules
    assert post(item_id="L9-NOPE").json()["error"] == "bad_item"
    assert post(record=" ").json()["error"] == "bad_record"
    assert post(valid_until=int(time.time()) - 1).json()["error"] == "bad_validity"
    exe = base64.b64encode(b"MZ\x90\x00\x03\x00\x00\x00").decode()
    assert post(files=[{"name": "tool.exe", "data": exe}]).json()["error"] == "bad_file_type"
    big = base64.b64encode(b"%PDF-" + b"x" * (2 * 1024 * 1024)).decode()
    assert post(files=[{"name": "big.pdf", "data": big}]).status_code == 413
    assert post(target_kind="org", target=PREFIX + "/finance").status_code == 403  # outside the scope
    officer = _session(server, users["officer"])
    assert officer.post("/api/v1/assessments", json=base).status_code == 403  # not an assessor
    other = _session(server, users["assessor_other"])
    assert other.get("/api/v1/coverage", params={"host": hosts[0].host_id}).status_code == 404
    assert other.get("/api/v1/assessments").json() == []
    for x in (c, officer, other):
        x.close()


@pytest.mark.browser
def test_assessor_records_verdicts_in_chromium_and_they_lapse(server, site, browser_page):
    """In Chromium: an assessor records a verdict for a manual item of one host and another for the
    department; the coverage pages show the items complete; when the verdicts lapse they are open."""
    hosts, users = site
    a = hosts[0]
    items = manual_items()
    host_item, org_item = items[2], items[3]
    page = browser_page
    page.goto(server.base_url + "/login?lang=zh")
    page.fill("input[name=username]", users["assessor"])
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#host-count")

    def record(url, item, text):
        page.goto(url)
        row = page.locator('#coverage tr[data-item="%s"]' % item)
        assert row.get_attribute("data-complete") == "no"
        row.locator("select[name=verdict]").select_option("conform")
        row.locator("input[name=record]").fill(text)
        row.locator("input[name=valid]").fill("30")  # seconds: the test waits for the lapse
        row.locator("button").click()
        return page.locator('#coverage tr[data-item="%s"]' % item)

    host_url = server.base_url + "/coverage?host=" + a.host_id
    org_url = server.base_url + "/coverage?org=" + DEPT
    row = record(host_url, host_item, "已查看本机安全管理制度文本")
    assert row.get_attribute("data-complete") == "yes" and row.locator("td").nth(5).inner_text().strip() == "符合"
    row = record(org_url, org_item, "部门统一的安全管理制度")
    assert row.get_attribute("data-complete") == "yes"
    page.goto(host_url)
    assert page.locator('#coverage tr[data-item="%s"]' % org_item).get_attribute("data-state") == "recorded"
    assert "已查看本机安全管理制度文本" in page.inner_text("#assessments")
    deadline = time.time() + 60
    while time.time() < deadline:
        page.goto(host_url)
        states = [page.locator('#coverage tr[data-item="%s"]' % i).get_attribute("data-state") for i in (host_item, org_item)]
        if states == ["open", "open"]:
            break
        time.sleep(2)
    assert states == ["open", "open"]
    page.goto(org_url)
    assert page.locator('#coverage tr[data-item="%s"]' % org_item).get_attribute("data-complete") == "no"
