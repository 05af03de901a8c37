"""Waivers on a real server over TLS (SQLite and PostgreSQL): four-eyes approval, scores and counts
that change with an approved waiver and change back when it ends, waivers for items of a rule,
history, and the single-step setting (in-process, on both databases)."""
from __future__ import annotations

import copy
import time
import uuid

import pytest

from browser_support import browser_page  # noqa: F401
from fleet import Agent
from server_support import ADMIN

PREFIX = "/waive-%s" % uuid.uuid4().hex[:6]
DEPT = PREFIX + "/finance"
PASSWORD = "Waiver-user-pw-42"
RULE = "mlps.ia.ssh-root-login"  # high severity: weight shows in the score
ITEM_RULE = "mlps.ia.faillock"


def _user(admin, name, role, orgs):
    resp = admin.post("/api/v1/users", json={"username": name, "password": PASSWORD, "role": role, "orgs": orgs})
    assert resp.status_code == 201, resp.text
    return name


def _session(server, name):
    with server.client() as c:
        token = c.post("/api/v1/session", json={"username": name, "password": PASSWORD}).json()["token"]
    return server.client(headers={"Authorization": "Bearer " + token})


def _with_items(doc, rule_id, keys):
    """The rule fails for these items (e.g. accounts), as a for_each rule reports them."""
    for r in doc["results"]:
        if r["rule_id"] == rule_id:
            r["status"] = "fail"
            r["items"] = [{"key": k, "status": "fail", "expected": "deny=5", "actual": "none"} for k in keys] + \
                [{"key": "ok-item", "status": "pass", "expected": "deny=5", "actual": "deny=5"}]
    return doc


def as_agent_scores(doc):
    """Summary counts and scores as the real agent computes them (scanner/engine/evaluator.py
    ``summarize``; the synthetic fleet's summary is unweighted)."""
    from scanner.engine.evaluator import score
    doc["summary"]["score"] = score(doc["results"], True)
    doc["summary"]["score_without_waivers"] = score(doc["results"], False)
    doc["summary"]["counts"] = {s: sum(1 for r in doc["results"] if r["status"] == s)
                                for s in ("pass", "fail", "error", "not_applicable", "manual", "waived")}
    return doc


def expected_score(doc, waived_rules):
    """The agent's own formula (scanner/engine/evaluator.py) with these failures waived."""
    from scanner.engine.evaluator import score
    results = copy.deepcopy(doc["results"])
    for r in results:
        if r["rule_id"] in waived_rules and r["status"] == "fail":
            r["status"] = "waived"
    return score(results, True)


@pytest.fixture(scope="module")
def dept(server):
    tag = uuid.uuid4().hex[:6]
    hosts = []
    with server.client() as c:
        for i in range(2):
            a = Agent("wv-%d-%s" % (i, tag), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=DEPT)).status_code == 201
            doc = as_agent_scores(_with_items(a.report(fail_rules=[RULE]), ITEM_RULE, ["root", "oracle"]))
            assert a.submit(c, doc).status_code == 200
            a.doc = doc
            hosts.append(a)
    admin = server.login()
    users = {"asker": _user(admin, "wv-ask-" + tag, "officer", [DEPT]),
             "approver": _user(admin, "wv-ok-" + tag, "officer", [DEPT]),
             "auditor": _user(admin, "wv-aud-" + tag, "auditor", [DEPT]),
             "elsewhere": _user(admin, "wv-else-" + tag, "officer", [PREFIX + "/health"])}
    admin.close()
    return hosts, users


def _profile(c, host):
    return c.get("/api/v1/hosts/%s" % host.host_id).json()["profiles"][0]


def _dept_score(c):
    units = c.get("/api/v1/summary/compliance", params={"org": DEPT}).json()["by_org"]
    return [u for u in units if u["org"] == DEPT][0]


def test_four_eyes_and_scores_change_with_approval(server, dept):
    hosts, users = dept
    a, b = hosts
    asker, approver = _session(server, users["asker"]), _session(server, users["approver"])
    before_host, before_dept = _profile(asker, a), _dept_score(asker)
    assert before_host["waived"] == 0 and before_host["score"] == expected_score(a.doc, [])
    req = asker.post("/api/v1/waivers", json={"rule_id": RULE, "scope": "host", "scope_value": a.hostname,
                                              "justification": "bastion only; replaced by 2027-03",
                                              "expires_at": int(time.time()) + 86400})
    assert req.status_code == 201, req.text
    w = req.json()
    assert w["state"] == "requested" and w["scope_value"] == a.host_id and w["hostname"] == a.hostname
    assert _profile(asker, a) == before_host  # nothing applies before approval
    # four-eyes: not the requester, not an auditor, not another department (404: not theirs to see)
    assert asker.post("/api/v1/waivers/%d/approve" % w["id"]).json()["error"] == "four_eyes"
    auditor, other = _session(server, users["auditor"]), _session(server, users["elsewhere"])
    assert auditor.post("/api/v1/waivers/%d/approve" % w["id"]).status_code == 403
    assert other.post("/api/v1/waivers/%d/approve" % w["id"]).status_code == 404
    ok = approver.post("/api/v1/waivers/%d/approve" % w["id"], json={"note": "accepted by CISO"})
    assert ok.status_code == 200 and ok.json()["state"] == "active" and ok.json()["decided_by"] == users["approver"]
    after_host, after_dept = _profile(asker, a), _dept_score(asker)
    assert after_host["score"] == expected_score(a.doc, [RULE]) > before_host["score"]
    assert after_host["failed"] == before_host["failed"] - 1 and after_host["waived"] == 1
    assert after_host["score_without_waivers"] == before_host["score_without_waivers"]
    assert after_dept["score"] == round((after_host["score"] + _profile(asker, b)["score"]) / 2, 2) > before_dept["score"]
    assert after_dept["failed"] == before_dept["failed"] - 1 and after_dept["waived"] == 1
    assert after_dept["score_without_waivers"] == before_dept["score_without_waivers"]
    listed = {h["id"]: h for h in asker.get("/api/v1/hosts", params={"org": DEPT}).json()}
    assert list(listed[a.host_id]["profiles"].values())[0]["score"] == after_host["score"]
    overview = {p["profile"]: p for p in asker.get("/api/v1/overview", params={"org": DEPT}).json()["by_profile"]}
    assert overview["mlps-l3"]["waived"] == 1
    # history: requested, approved, then revoked; scores back
    assert asker.post("/api/v1/waivers/%d/revoke" % w["id"]).status_code == 200
    assert _profile(asker, a)["score"] == before_host["score"] and _dept_score(asker)["score"] == before_dept["score"]
    full = asker.get("/api/v1/waivers/%d" % w["id"]).json()
    assert [e["action"] for e in full["history"]] == ["request", "approve", "revoke"]
    assert full["history"][1]["note"] == "accepted by CISO" and full["state"] == "revoked"
    for c in (asker, approver, auditor, other):
        c.close()


def test_rejected_waiver_is_kept_and_never_applies(server, dept):
    hosts, users = dept
    asker, approver = _session(server, users["asker"]), _session(server, users["approver"])
    w = asker.post("/api/v1/waivers", json={"rule_id": RULE, "scope": "org", "scope_value": DEPT,
                                            "justification": "whole department", "expires_at": int(time.time()) + 3600}).json()
    rej = approver.post("/api/v1/waivers/%d/reject" % w["id"], json={"note": "too broad"})
    assert rej.status_code == 200 and rej.json()["state"] == "rejected"
    assert approver.post("/api/v1/waivers/%d/approve" % w["id"]).status_code == 409
    assert asker.post("/api/v1/waivers/%d/revoke" % w["id"]).status_code == 409
    assert _profile(asker, hosts[0])["waived"] == 0
    assert [x["id"] for x in asker.get("/api/v1/waivers", params={"state": "rejected"}).json()] == [w["id"]]
    asker.close()
    approver.close()


def test_waiver_for_items_of_a_rule(server, dept):
    """A waiver for one failing item leaves the finding failed; for every failing item it is waived."""
    hosts, users = dept
    a = hosts[1]
    asker, approver = _session(server, users["asker"]), _session(server, users["approver"])

    def status():
        return asker.get("/api/v1/findings", params={"host": a.host_id, "rule": ITEM_RULE}).json()[0]["status"]
    ids = []
    for items in (["root"], ["root", "oracle"]):
        w = asker.post("/api/v1/waivers", json={"rule_id": ITEM_RULE, "scope": "host", "scope_value": a.host_id,
                                                "items": items, "justification": "service accounts",
                                                "expires_at": int(time.time()) + 3600}).json()
        assert approver.post("/api/v1/waivers/%d/approve" % w["id"]).status_code == 200
        ids.append(w["id"])
        assert w["items"] == sorted(items)
        assert status() == ("fail" if items == ["root"] else "waived")
    finding = asker.get("/api/v1/findings", params={"host": a.host_id, "rule": ITEM_RULE}).json()[0]
    assert finding["waiver_id"] == ids[1]
    bad = asker.post("/api/v1/waivers", json={"rule_id": ITEM_RULE, "scope": "host", "scope_value": a.host_id,
                                              "items": [""], "justification": "x", "expires_at": int(time.time()) + 60})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_items"
    for wid in ids:
        assert asker.post("/api/v1/waivers/%d/revoke" % wid).status_code == 200
    assert status() == "fail"
    asker.close()
    approver.close()


def test_expired_waiver_changes_scores_back_without_a_job(server, dept):
    hosts, users = dept
    a = hosts[0]
    asker, approver = _session(server, users["asker"]), _session(server, users["approver"])
    before = _profile(asker, a)["score"]
    w = asker.post("/api/v1/waivers", json={"rule_id": RULE, "scope": "all", "justification": "maintenance window",
                                            "expires_at": int(time.time()) + 4}).json()
    assert w["scope"] == "org" and w["scope_value"] == DEPT
    assert approver.post("/api/v1/waivers/%d/approve" % w["id"]).status_code == 200
    assert _profile(asker, a)["score"] > before
    time.sleep(5)
    assert _profile(asker, a)["score"] == before
    assert asker.get("/api/v1/waivers/%d" % w["id"]).json()["state"] == "expired"
    asker.close()
    approver.close()


def test_local_waiver_file_shown_as_such(server, dept):
    hosts, users = dept
    a = hosts[1]
    doc = a.report(fail_rules=[RULE])
    for r in doc["results"]:
        if r["rule_id"] == RULE:
            r["status"] = "waived"
            r["waiver"] = {"justification": "local file", "approver": "ops", "expires": "2099-01-01"}
    as_agent_scores(doc)
    with server.client() as c:
        assert a.submit(c, doc).status_code == 200
    from test_web import web_login
    c = web_login(server, ADMIN)
    page = c.get("/hosts/%s" % a.host_id).text
    row = page[page.index('data-rule="%s"' % RULE):]
    row = row[:row.index("</tr>")]
    assert 'data-status="waived"' in row and "local-waiver" in row
    c.close()


@pytest.mark.parametrize("single_step", [False, True])
def test_single_step_setting(db_engine, single_step):
    from scanner.server.access import accounts
    from scanner.server.errors import ApiError
    from scanner.server.intake import ingest
    from scanner.server.store.scope import Scope
    from scanner.server.workflow import waivers
    everything = Scope.everything()
    tok = accounts.create_token(db_engine, "/gov/small", scope=everything)["token"]
    a = Agent("small-1")
    a.host_id = ingest.enroll(db_engine, tok, a.hostname, a.machine_id, a.public_key)["host_id"]
    data = {"rule_id": RULE, "scope": "host", "scope_value": "SMALL-1", "justification": "one-person site",
            "expires_at": int(time.time()) + 3600}
    w = waivers.request_waiver(db_engine, data, "solo", scope=everything, role="officer", single_step=single_step)
    assert w["scope_value"] == a.host_id  # host names match without regard to case
    assert w["state"] == ("active" if single_step else "requested")
    w2 = waivers.request_waiver(db_engine, data, "solo", scope=everything, role="officer", single_step=False)
    if single_step:
        assert waivers.decide_waiver(db_engine, w2["id"], "approve", "solo", scope=everything, role="officer",
                                     single_step=True)["state"] == "active"
    else:
        with pytest.raises(ApiError) as exc:
            waivers.decide_waiver(db_engine, w2["id"], "approve", "solo", scope=everything, role="officer")
        assert exc.value.code == "four_eyes"
    # an auditor's request is never approved at once, single-step or not
    w3 = waivers.request_waiver(db_engine, data, "reader", scope=everything, role="auditor", single_step=True)
    assert w3["state"] == "requested"


@pytest.mark.browser
def test_waiver_from_a_finding_approved_and_expiring_in_chromium(server, dept, browser_page):
    """An officer requests a waiver from a finding on the host page, a second officer approves it,
    the host's and the department's scores go up; when it expires they come back by themselves."""
    hosts, users = dept
    a = hosts[0]
    page = browser_page

    def login(name):
        page.context.clear_cookies()
        page.goto(server.base_url + "/login?lang=en")
        page.fill("input[name=username]", name)
        page.fill("input[name=password]", PASSWORD)
        page.click("#login-submit")
        page.wait_for_selector("#host-count")

    def scores():
        page.goto(server.base_url + "/hosts/" + a.host_id)
        host = page.inner_text(".profile-card .score")
        page.goto(server.base_url + "/orgs")
        dept_cell = page.inner_text('tr[data-org="%s"] td.score' % DEPT)
        return host, dept_cell.split()[0]

    login(users["asker"])
    before = scores()
    page.goto(server.base_url + "/hosts/" + a.host_id)
    page.click('tr.result[data-rule="%s"] a.waive' % RULE)
    assert page.input_value("input[name=rule_id]") == RULE
    assert page.input_value("input[name=scope_value]") == a.hostname  # by name, not id
    assert page.input_value("textarea[name=items]") == ""  # the finding has no items: the whole rule
    page.fill("textarea[name=justification]", "jump host, replaced next month")
    page.fill("input[name=expires]", "40")  # seconds: the test waits for the expiry
    page.click("#waiver-submit")
    row = page.locator('#waivers tr[data-state="requested"]').first
    assert a.hostname in row.inner_text()
    assert row.locator("button.approve").count() == 0  # not for the requester
    assert scores() == before

    login(users["approver"])
    page.goto(server.base_url + "/waivers")
    page.locator('#waivers tr[data-state="requested"]').first.locator("button.approve").click()
    assert page.locator('#waivers tr[data-state="active"]').count() >= 1
    after = scores()
    assert float(after[0]) > float(before[0]) and float(after[1]) > float(before[1])
    page.goto(server.base_url + "/hosts/" + a.host_id)
    assert page.get_attribute('tr.result[data-rule="%s"]' % RULE, "data-status") == "waived"

    deadline = time.time() + 60
    while time.time() < deadline and scores() != before:
        time.sleep(2)
    assert scores() == before
    page.goto(server.base_url + "/waivers")
    assert page.locator('#waivers tr[data-state="expired"]').count() >= 1
