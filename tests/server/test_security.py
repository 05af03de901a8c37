"""Roles, sessions, CSRF on cookie writes, audit trail, generic 500, exports, waivers via the API."""
from __future__ import annotations

import csv
import io
import json
import time
import uuid

import pytest

from server_support import ADMIN, AUDITOR, OFFICER
from fleet import Agent


@pytest.fixture(scope="module")
def hosts(server):
    out = []
    with server.client() as c:
        for org in ("/sec/a", "/sec/a/b", "/sec/c"):
            a = Agent("sec-%s" % uuid.uuid4().hex[:6], machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=org)).status_code == 201
            doc = a.report(fail_rules=["mlps.ia.password-max-age"], profile="mlps-l3")
            doc["results"][0]["actual"] = "=HYPERLINK(\"http://evil\")"
            assert a.submit(c, doc).status_code == 200
            out.append(a)
    return out


def audit_actions(server, actor=None):
    with server.login() as c:
        rows = c.get("/api/v1/audit", params={"limit": 200}).json()
    return [(r["actor"], r["action"]) for r in rows if actor is None or r["actor"] == actor]


def test_reads_need_a_session(server):
    with server.client() as c:
        for path in ("/api/v1/hosts", "/api/v1/findings", "/api/v1/overview", "/api/v1/waivers", "/api/v1/export/findings"):
            r = c.get(path)
            assert r.status_code == 401 and r.json()["error"] == "login_required", path
        r = c.get("/api/v1/hosts", headers={"Authorization": "Bearer forged-token"})
        assert r.status_code == 401


def test_officer_cannot_manage_users_or_tokens(server):
    with server.login(OFFICER) as c:
        before = server.counts()
        assert c.post("/api/v1/tokens", json={"org": "/x", "uses": 1}).status_code == 403
        assert c.post("/api/v1/users", json={"username": "mallory", "password": "x" * 12, "role": "admin"}).status_code == 403
        assert c.get("/api/v1/users").status_code == 403
        assert c.get("/api/v1/tokens").status_code == 403
        assert server.counts() == before


def test_auditor_changes_nothing_but_reads_and_audits(server, hosts):
    with server.login(AUDITOR) as c:
        before = server.counts()
        w = {"rule_id": "mlps.ia.password-max-age", "scope": "all", "justification": "j", "approver": "a",
             "expires_at": int(time.time()) + 86400}
        assert c.post("/api/v1/waivers", json=w).status_code == 403
        assert c.post("/api/v1/waivers/1/revoke").status_code == 403
        assert c.post("/api/v1/tokens", json={"org": "/x"}).status_code == 403
        assert c.post("/api/v1/users", json={"username": "m", "password": "x" * 12, "role": "auditor"}).status_code == 403
        assert server.counts() == before
        assert c.get("/api/v1/hosts").status_code == 200
        assert c.get("/api/v1/audit").status_code == 200
    with server.login(OFFICER) as c:
        assert c.get("/api/v1/audit").status_code == 403


def test_admin_manages_users_and_passwords_are_argon2(server):
    name = "u%s" % uuid.uuid4().hex[:8]
    with server.login() as c:
        r = c.post("/api/v1/users", json={"username": name, "password": "short", "role": "officer"})
        assert r.status_code == 400 and r.json()["error"] == "weak_password"
        r = c.post("/api/v1/users", json={"username": name, "password": "long-enough-pw", "role": "officer"})
        assert r.status_code == 201
        assert c.post("/api/v1/users", json={"username": name, "password": "long-enough-pw", "role": "officer"}).status_code == 409
    from sqlalchemy import select
    from scanner.server.store import db
    with server.engine.connect() as conn:
        stored = conn.execute(select(db.users.c.password_hash).where(db.users.c.username == name)).scalar()
    assert stored.startswith("$argon2id$") and "m=65536" in stored and "long-enough-pw" not in stored


def test_cookie_session_writes_need_csrf_header(server, hosts):
    from test_web import web_login
    c = web_login(server, OFFICER)
    w = {"rule_id": "mlps.ia.faillock", "scope": "all", "justification": "test", "approver": "boss",
         "expires_at": int(time.time()) + 3600}
    r = c.post("/api/v1/waivers", json=w)
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    page = c.get("/waivers")
    import re
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = c.post("/api/v1/waivers", json=w, headers={"X-CSRF-Token": token})
    assert r.status_code == 201
    c.close()


def test_login_and_failed_login_audited(server):
    with server.client() as c:
        assert c.post("/api/v1/session", json={"username": "admin", "password": "nope-nope-nope"}).status_code == 401
        assert c.post("/api/v1/session", json={"username": "ghost", "password": "nope-nope-nope"}).status_code == 401
    acts = audit_actions(server)
    assert ("admin", "login.failed") in acts and ("ghost", "login.failed") in acts and ("admin", "login") in acts


def test_waiver_lifecycle_applies_by_scope_and_is_audited(server, hosts):
    a, ab, c_ = hosts
    with server.login(OFFICER) as c:
        bad = c.post("/api/v1/waivers", json={"rule_id": "mlps.ia.password-max-age", "scope": "org", "scope_value": "../etc",
                                              "justification": "x", "approver": "y", "expires_at": int(time.time()) + 60})
        assert bad.status_code == 400
        past = c.post("/api/v1/waivers", json={"rule_id": "mlps.ia.password-max-age", "scope": "all",
                                               "justification": "x", "approver": "y", "expires_at": int(time.time()) - 60})
        assert past.status_code == 400 and past.json()["error"] == "bad_expiry"
        r = c.post("/api/v1/waivers", json={"rule_id": "mlps.ia.password-max-age", "scope": "org", "scope_value": "/sec/a",
                                            "justification": "<b>migration</b> planned", "approver": "CIO",
                                            "expires_at": int(time.time()) + 86400})
        assert r.status_code == 201, r.text
        assert r.json()["state"] == "requested"
        wid = r.json()["id"]
        st = lambda h: [f["status"] for f in c.get("/api/v1/findings", params={"host": h.host_id, "rule": "mlps.ia.password-max-age"}).json()]
        assert st(a) == ["fail"]  # requested, not approved: nothing changes yet
        own = c.post("/api/v1/waivers/%d/approve" % wid)
        assert own.status_code == 403 and own.json()["error"] == "four_eyes"
        with server.login() as boss:
            assert boss.post("/api/v1/waivers/%d/approve" % wid, json={"note": "ok until Q3"}).json()["state"] == "active"
            assert boss.post("/api/v1/waivers/%d/approve" % wid).status_code == 409
        assert st(a) == ["waived"] and st(ab) == ["waived"] and st(c_) == ["fail"]
        assert c.get("/api/v1/findings", params={"org": "/sec", "status": "waived", "rule": "mlps.ia.password-max-age"}).json()
        # the agent's own status is kept alongside
        f = c.get("/api/v1/findings", params={"host": a.host_id, "rule": "mlps.ia.password-max-age"}).json()[0]
        assert f["reported_status"] == "fail" and f["waiver_id"] == wid
        # a new report from a covered host is waived on arrival
        doc = a.report(fail_rules=["mlps.ia.password-max-age"], profile="mlps-l3")
        with server.client() as ac:
            assert a.submit(ac, doc).status_code == 200
        assert st(a) == ["waived"]
        assert c.post("/api/v1/waivers/%d/revoke" % wid).status_code == 200
        assert c.post("/api/v1/waivers/%d/revoke" % wid).status_code == 409
        assert st(a) == ["fail"] and st(ab) == ["fail"]
    acts = audit_actions(server)
    assert ("officer1", "waiver.request") in acts and ("admin", "waiver.approve") in acts
    assert ("officer1", "waiver.revoke") in acts


def test_expired_waiver_stops_applying_on_its_own(server, hosts):
    a = hosts[2]
    with server.login(OFFICER) as c:
        r = c.post("/api/v1/waivers", json={"rule_id": "mlps.ia.password-max-age", "scope": "host", "scope_value": a.host_id,
                                            "justification": "short", "approver": "CIO", "expires_at": int(time.time()) + 4})
        assert r.status_code == 201
        with server.login() as boss:
            assert boss.post("/api/v1/waivers/%d/approve" % r.json()["id"]).status_code == 200
        f = lambda: c.get("/api/v1/findings", params={"host": a.host_id, "rule": "mlps.ia.password-max-age"}).json()[0]["status"]
        assert f() == "waived"
        time.sleep(5)
        assert f() == "fail"
        states = {w["id"]: w["state"] for w in c.get("/api/v1/waivers").json()}
        assert states[r.json()["id"]] == "expired"


def test_findings_filters_and_summaries(server, hosts):
    with server.login(AUDITOR) as c:
        sub = c.get("/api/v1/findings", params={"org": "/sec/a", "rule": "mlps.ia.password-max-age"}).json()
        assert {f["host_id"] for f in sub} == {hosts[0].host_id, hosts[1].host_id}
        high = c.get("/api/v1/findings", params={"org": "/sec", "severity": ["high", "critical"]}).json()
        assert high and {f["severity"] for f in high} <= {"high", "critical"}
        crypto = c.get("/api/v1/findings", params={"org": "/sec", "category": "crypto", "profile": "mlps-l3"}).json()
        assert crypto and {f["category"] for f in crypto} == {"crypto"}
        assert c.get("/api/v1/findings", params={"org": "/sec/../etc"}).status_code == 400
        loc = c.get("/api/v1/summary/localization", params={"org": "/sec"}).json()
        units = {u["org"]: u for u in loc["by_org"]}
        assert units["/sec"]["hosts"] == 3 and units["/sec/a"]["hosts"] == 2 and units["/sec/a/b"]["hosts"] == 1
        assert set(loc["by_category"]) >= {"cpu", "os", "database"}
        comp = c.get("/api/v1/summary/compliance", params={"org": "/sec", "profile": "mlps-l3"}).json()
        assert {u["org"] for u in comp["by_org"]} >= {"/sec", "/sec/a", "/sec/c"}
        assert all(u["profile"] == "mlps-l3" for u in comp["by_org"])


def test_exports_csv_json_are_audited_and_formula_safe(server, hosts):
    with server.login(AUDITOR) as c:
        r = c.get("/api/v1/export/findings", params={"org": "/sec", "format": "csv", "rule": "mlps.ia.password-max-age"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
        assert len(rows) == 3 and any(row["actual"].startswith("'=HYPERLINK") for row in rows)
        assert not any(v.startswith("=") for row in rows for v in row.values())
        j = c.get("/api/v1/export/findings", params={"org": "/sec", "format": "json"})
        assert j.status_code == 200 and len(j.json()) >= 3
        inv = c.get("/api/v1/export/inventory", params={"org": "/sec/c", "format": "csv"})
        assert inv.status_code == 200 and hosts[2].hostname in inv.text
        assert c.get("/api/v1/export/inventory", params={"format": "xml"}).status_code == 400
    acts = audit_actions(server, "auditor1")
    assert acts.count(("auditor1", "export.findings")) >= 2 and ("auditor1", "export.inventory") in acts


def test_no_stack_trace_reaches_a_client(tmp_path_factory):
    """A real failure inside a request (the hosts table vanished) gives a generic 500, JSON and HTML."""
    from server_support import make_server
    srv = make_server(tmp_path_factory, "sqlite")
    try:
        import sqlite3
        with srv.login() as c:
            con = sqlite3.connect(srv.data_dir + "/xcscan.db")
            con.execute("PRAGMA foreign_keys=OFF")
            con.execute("DROP TABLE hosts")
            con.commit()
            con.close()
            r = c.get("/api/v1/hosts")
            assert r.status_code == 500
            assert r.json() == {"error": "internal", "message": r.json()["message"]}
            for text in (r.text, c.get("/hosts", headers={"Cookie": "xcscan_session=x"}).text):
                assert "Traceback" not in text and "sqlite" not in text.lower() and "hosts" not in r.text
            page = c.get("/orgs")
            assert page.status_code in (303, 500)
        log = open(srv.data_dir + "/serve.log").read()
        assert "Traceback" in log or "no such table" in log  # the details go to the server log
    finally:
        srv.stop()


def test_failed_logins_lock_the_account_over_http_and_the_cli_unlocks(server):
    import re
    name = "lock-%s" % uuid.uuid4().hex[:6]
    with server.login() as admin:
        assert admin.post("/api/v1/users", json={"username": name, "password": "Lock-me-please-42",
                                                 "role": "auditor"}).status_code == 201
    with server.client() as c:
        codes = [c.post("/api/v1/session", json={"username": name, "password": "wrong-%d" % i}).status_code
                 for i in range(5)]
        assert codes == [401] * 5
        r = c.post("/api/v1/session", json={"username": name, "password": "Lock-me-please-42"})
        assert r.status_code == 429 and r.json()["error"] == "login_locked"
        assert 0 < int(r.headers["Retry-After"]) <= 900
        # the web form says so too, in the user's language
        page = c.get("/login", headers={"Accept-Language": "zh-CN"})
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = c.post("/login", data={"username": name, "password": "Lock-me-please-42", "csrf_token": token, "next": "/"},
                   headers={"Accept-Language": "zh-CN"})
        assert r.status_code == 429 and "已锁定" in r.text and "session" not in r.cookies
    out = server.cli("server", "user", "unlock", name).stdout
    assert "unlocked %s" % name in out
    with server.client() as c:
        assert c.post("/api/v1/session", json={"username": name, "password": "Lock-me-please-42"}).status_code == 200
    acts = audit_actions(server)
    assert (name, "login.locked") in acts and (name, "login.refused_locked") in acts and ("cli", "login.unlock") in acts
