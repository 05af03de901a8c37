"""Enrollment and signed report intake against the real server (SQLite and PostgreSQL, real TLS)."""
from __future__ import annotations

import gzip
import json
import time
import uuid

import pytest

from fleet import Agent, body_of, make_report


@pytest.fixture()
def agent(server):
    a = Agent("host-%s" % uuid.uuid4().hex[:8], machine_id=uuid.uuid4().hex)
    with server.client() as c:
        assert a.enroll(c, server.token()).status_code == 201
    return a


def test_tls_uses_the_init_made_ca(server):
    import httpx
    with server.client() as c:
        assert c.get("/api/v1/openapi.json").status_code == 200
    with httpx.Client(base_url=server.base_url, timeout=10) as c:  # system CAs only: must fail
        with pytest.raises(httpx.ConnectError):
            c.get("/api/v1/openapi.json")


def test_openapi_documents_the_api(server):
    with server.client() as c:
        doc = c.get("/api/v1/openapi.json").json()
    paths = doc["paths"]
    for p in ("/api/v1/enroll", "/api/v1/reports", "/api/v1/hosts", "/api/v1/hosts/{host_id}/history",
              "/api/v1/findings", "/api/v1/summary/localization", "/api/v1/summary/compliance", "/api/v1/waivers",
              "/api/v1/export/findings", "/api/v1/export/inventory"):
        assert p in paths, p


def test_enroll_then_submit_is_acknowledged_and_stored(server, agent):
    doc = agent.report(fail_rules=["mlps.ia.ssh-root-login"])
    with server.client() as c:
        resp = agent.submit(c, doc)
        assert resp.status_code == 200, resp.text
        ack = resp.json()
        assert ack["report_id"] == doc["report_id"] and ack["host_id"] == agent.host_id
        assert ack["status"] == "accepted"
    with server.login() as c:
        host = c.get("/api/v1/hosts/%s" % agent.host_id).json()
        assert host["hostname"] == agent.hostname and host["org_path"] == "/gov/finance"
        assert len(host["components"]) == len(doc["inventory"]["components"])
        assert {r["rule_id"] for r in host["results"]} == {r["rule_id"] for r in doc["results"]}
        failing = [r for r in host["results"] if r["rule_id"] == "mlps.ia.ssh-root-login"]
        assert failing[0]["status"] == "fail"
        hist = c.get("/api/v1/hosts/%s/history" % agent.host_id).json()
        assert [h["id"] for h in hist] == [doc["report_id"]]
        stored = c.get("/api/v1/reports/%s" % doc["report_id"]).json()
        assert stored["facts"] == doc["facts"]  # raw facts kept


def test_resend_returns_same_ack_and_stores_nothing_twice(server, agent):
    doc = agent.report()
    with server.client() as c:
        first = agent.submit(c, doc)
        before = server.counts()
        time.sleep(1.1)
        again = agent.submit(c, doc, compress=True)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert server.counts() == before


def test_gzip_body_accepted(server, agent):
    doc = agent.report()
    with server.client() as c:
        resp = agent.submit(c, doc, compress=True)
    assert resp.status_code == 200, resp.text
    with server.login() as c:
        assert c.get("/api/v1/reports/%s" % doc["report_id"]).json()["report_id"] == doc["report_id"]


def test_older_backlog_report_does_not_replace_latest_state(server, agent):
    new = agent.report(fail_rules=["mlps.ac.telnet-disabled"])
    old = agent.report()
    old["results"] = [dict(r, status="pass") for r in old["results"]]
    with server.client() as c:
        assert agent.submit(c, new).status_code == 200
        assert agent.submit(c, old, timestamp=time.time() - 3 * 86400).status_code == 200
    with server.login() as c:
        host = c.get("/api/v1/hosts/%s" % agent.host_id).json()
        hist = c.get("/api/v1/hosts/%s/history" % agent.host_id).json()
    assert host["latest_report_id"] == new["report_id"]
    assert any(r["rule_id"] == "mlps.ac.telnet-disabled" and r["status"] == "fail" for r in host["results"])
    assert [h["id"] for h in hist] == [new["report_id"], old["report_id"]]


def test_inventory_only_report_updates_components_not_results(server, agent):
    with server.client() as c:
        assert agent.submit(c, agent.report()).status_code == 200
        inv = agent.report(results=False, domestic_bias=1.0)
        assert agent.submit(c, inv).status_code == 200
    with server.login() as c:
        host = c.get("/api/v1/hosts/%s" % agent.host_id).json()
    assert host["loc_rate"] == 1.0
    assert host["results"]  # the scan's results stay


def test_enroll_errors(server):
    a = Agent("x")
    with server.client() as c:
        assert c.post("/api/v1/enroll", json=a.enroll_body("xct_not-a-token")).status_code == 401
        tok = server.token(uses=1)
        before = server.counts()
        bad = dict(a.enroll_body(tok), public_key="AAAA")
        r = c.post("/api/v1/enroll", json=bad)
        assert r.status_code == 400 and r.json()["error"] == "bad_public_key"
        assert c.post("/api/v1/enroll", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 422
        assert server.counts() == before  # the token was not consumed by bad requests
        assert a.enroll(c, tok).status_code == 201
        b = Agent("y")
        r = b.enroll(c, tok)
        assert r.status_code == 403 and r.json()["error"] == "token_used_up"


def test_expired_token_refused(server):
    tok = server.token(expires="60")
    from sqlalchemy import update
    from scanner.server.store import db
    from scanner.server.util import sha256_hex
    with server.engine.begin() as conn:  # age the token instead of sleeping a minute
        conn.execute(update(db.enroll_tokens).where(db.enroll_tokens.c.token_hash == sha256_hex(tok))
                     .values(expires_at=int(time.time()) - 1))
    before = server.counts()
    with server.client() as c:
        r = Agent("late").enroll(c, tok)
    assert r.status_code == 403 and r.json()["error"] == "token_expired"
    assert server.counts() == before


def _refused(server, agent, send, status, code=None):
    before = server.counts()
    with server.client() as c:
        resp = send(c)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) >= {"error", "message"} and body["message"]
    if code:
        assert body["error"] == code
    assert server.counts() == before
    return body


def test_bad_signature_refused(server, agent):
    doc = agent.report()
    body = body_of(doc)

    def tampered(c):
        h = agent.headers(body)
        return c.post("/api/v1/reports", content=body.replace(b'"live": true', b'"live": false'), headers=h)
    _refused(server, agent, tampered, 401, "bad_signature")

    def missing(c):
        h = agent.headers(body)
        del h["X-Xcscan-Signature"]
        return c.post("/api/v1/reports", content=body, headers=h)
    _refused(server, agent, missing, 401, "bad_signature")

    other = Agent("other")

    def wrong_key(c):
        h = other.headers(body, host_id=agent.host_id)
        return c.post("/api/v1/reports", content=body, headers=h)
    _refused(server, agent, wrong_key, 401, "bad_signature")


def test_unknown_host_refused(server, agent):
    doc = agent.report()
    _refused(server, agent, lambda c: c.post("/api/v1/reports", content=body_of(doc),
                                             headers=agent.headers(body_of(doc), host_id=str(uuid.uuid4()))), 401, "unknown_host")


def test_stale_and_future_timestamps_refused(server, agent):
    _refused(server, agent, lambda c: agent.submit(c, agent.report(), timestamp=time.time() - 15 * 86400), 401, "stale_timestamp")
    _refused(server, agent, lambda c: agent.submit(c, agent.report(), timestamp=time.time() + 3600), 401, "stale_timestamp")


def test_malformed_json_and_schema_refused(server, agent):
    _refused(server, agent, lambda c: agent.submit(c, b'{"schema": "xcscan.report/1", '), 400, "bad_json")
    _refused(server, agent, lambda c: agent.submit(c, b"\xff\xfe garbage"), 400, "bad_json")
    doc = agent.report()
    doc["schema"] = "xcscan.report/2"
    _refused(server, agent, lambda c: agent.submit(c, doc), 422, "bad_schema")
    doc = agent.report()
    doc["report_id"] = "'; DROP TABLE reports; --"
    _refused(server, agent, lambda c: agent.submit(c, doc), 422, "bad_schema")
    doc = agent.report()
    doc["results"][0]["status"] = "ok"
    _refused(server, agent, lambda c: agent.submit(c, doc), 422, "bad_schema")
    _refused(server, agent, lambda c: agent.submit(c, b"[1, 2, 3]"), 422, "bad_schema")


def test_oversized_and_zip_bomb_refused(server, agent):
    big = agent.report()
    big["facts"]["padding"] = "x" * (17 * 1024 * 1024)
    _refused(server, agent, lambda c: agent.submit(c, big), 413, "too_large")
    # 17 MiB of zeros gzip to ~17 KiB: tiny on the wire, stopped at the decompressed limit
    bomb_body = b'{"schema": "xcscan.report/1", "pad": "' + b"0" * (17 * 1024 * 1024) + b'"}'
    assert len(gzip.compress(bomb_body)) < 100 * 1024
    _refused(server, agent, lambda c: agent.submit(c, bomb_body, compress=True), 413, "too_large")
    _refused(server, agent, lambda c: c.post("/api/v1/reports", content=b"\x1f\x8b garbage",
                                             headers=dict(agent.headers(b"x"), **{"Content-Encoding": "gzip"})), 400, "bad_gzip")


def test_report_replayed_from_another_host_refused(server, agent):
    doc = agent.report()
    with server.client() as c:
        assert agent.submit(c, doc).status_code == 200
        thief = Agent("thief", machine_id=uuid.uuid4().hex)
        assert thief.enroll(c, server.token()).status_code == 201
    # the captured request replayed under the other host id: signature no longer verifies
    body = body_of(doc)
    h = agent.headers(body)
    h["X-Xcscan-Host"] = thief.host_id
    _refused(server, agent, lambda c: c.post("/api/v1/reports", content=body, headers=h), 401, "bad_signature")
    # the other host re-signs the stolen report: machine id does not match
    _refused(server, agent, lambda c: thief.submit(c, doc), 403, "host_mismatch")
    # a host enrolled without a machine id re-signs it: the report id belongs to someone else
    anon = Agent("anon")
    with server.client() as c:
        assert anon.enroll(c, server.token()).status_code == 201
    _refused(server, agent, lambda c: anon.submit(c, doc), 409, "report_id_conflict")


def test_markup_and_sql_in_text_fields_stored_verbatim_and_harmless(server):
    evil = "<script>alert(1)</script>'; DROP TABLE hosts; --\" onmouseover=\"x"
    a = Agent(evil, machine_id=evil)
    with server.client() as c:
        assert a.enroll(c, server.token()).status_code == 201
        doc = a.report(machine_id=evil, fail_rules=["mlps.ia.faillock"])
        doc["inventory"]["components"][0]["name"] = {"zh": evil, "en": evil}
        doc["inventory"]["components"][0]["version"] = evil
        doc["results"][0]["title"] = {"zh": evil, "en": evil}
        doc["results"][0]["actual"] = evil
        doc["summary"]["profile"] = evil
        doc["results"][1]["rule_id"] = "nul\x00rule"
        doc["results"][1]["title"] = {"zh": "空\x00字符", "en": "nul\x00char"}
        doc["results"][1]["evidence"] = [{"kind": "file", "value": "a\x00b", "source": None}]
        doc["results"][1]["status"] = "fail"  # the latest-state row keeps evidence of results needing attention
        assert a.submit(c, doc).status_code == 200
    with server.login() as c:
        host = c.get("/api/v1/hosts/%s" % a.host_id).json()
        assert host["hostname"] == evil and host["machine_id"] == evil
        assert host["components"][0]["name_en"] == evil and host["components"][0]["version"] == evil
        assert any(r["title_en"] == evil and r["actual"] == evil for r in host["results"])
        nul = [r for r in host["results"] if r["rule_id"] == "nulrule"]
        assert nul and nul[0]["title_zh"] == "空字符" and nul[0]["evidence"]["evidence"][0]["value"] == "a\x00b"
        assert c.get("/api/v1/hosts", params={"q": evil}).json()[0]["id"] == a.host_id
        assert c.get("/api/v1/findings", params={"rule": evil}).json() == []
        assert c.get("/api/v1/findings", params={"profile": evil, "host": a.host_id}).json()
        page = c.get("/hosts/%s" % a.host_id)
    assert server.counts()["hosts"] >= 1
    if page.status_code == 200:
        assert "<script>alert(1)" not in page.text and "&lt;script&gt;" in page.text


def test_concurrent_submissions_and_racing_resends_store_each_report_once(server):
    """8 clients at once, every report sent twice at the same moment: all acknowledged, identical
    acks for a pair, one row per report, and each host's latest state is its newest report."""
    import threading
    from sqlalchemy import func, select
    from scanner.server.store import db
    agents = []
    with server.client() as c:
        tok = server.token(uses=6)
        for i in range(6):
            a = Agent("conc-%d-%s" % (i, uuid.uuid4().hex[:4]), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, tok).status_code == 201
            agents.append(a)
    jobs = []
    base = time.time() - 3600
    for a in agents:
        for k in range(4):
            doc = a.report()
            body = body_of(doc)
            h = a.headers(body, timestamp=base + k * 60)
            jobs += [(a, doc, body, h), (a, doc, body, h)]
    acks, errors = {}, []

    def worker(chunk):
        with server.client() as c:
            for a, doc, body, h in chunk:
                r = c.post("/api/v1/reports", content=body, headers=h)
                if r.status_code != 200:
                    errors.append(r.text)
                else:
                    acks.setdefault(doc["report_id"], []).append(r.json())
    threads = [threading.Thread(target=worker, args=(jobs[i::8],)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == []
    assert len(acks) == 24 and all(len(v) == 2 and v[0] == v[1] for v in acks.values())
    with server.engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(db.reports)
                         .where(db.reports.c.id.in_(list(acks)))).scalar()
        latest = dict(conn.execute(select(db.hosts.c.id, db.hosts.c.latest_collected)
                                   .where(db.hosts.c.id.in_([a.host_id for a in agents]))).all())
    assert n == 24
    assert set(latest.values()) == {int(base + 3 * 60)}
