"""An enrolled agent (or one host's stolen key) sends what it likes: reports nesting ~1,000 deep,
gzip with trailing data or a second member, bombs with bad headers. The real server (TLS, SQLite
and PostgreSQL) refuses them before storing anything, and every fleet view survives one bad row
that is already stored."""
from __future__ import annotations

import gzip
import json
import socket
import ssl
import time
import uuid

import pytest
from sqlalchemy import delete, insert, select, update

from fleet import Agent, body_of
from server_support import ADMIN

ADMIN_NAME, ADMIN_PW = ADMIN
from scanner.server.store import db, jsondoc

RULE = "mlps.ia.password-max-age"


def nested(depth, leaf="x"):
    value = leaf
    for i in range(depth):
        value = {"a": value} if i % 2 else [value]
    return value


def deep_json_text(depth):
    return "[" * depth + "]" * depth


def with_deep(doc, result_key, depth):
    """The report's body with results[0][result_key] nested ``depth`` arrays deep (built as text:
    Python's own json cannot write it)."""
    doc["results"][0][result_key] = "@@DEEP@@"
    return body_of(doc).replace(b'"@@DEEP@@"', deep_json_text(depth).encode())


@pytest.fixture(scope="module")
def agent(server):
    a = Agent("hostile-%s" % uuid.uuid4().hex[:6], machine_id=uuid.uuid4().hex)
    with server.client() as c:
        assert a.enroll(c, server.token(org="/hostile/a")).status_code == 201
        assert a.submit(c, a.report(fail_rules=[RULE])).status_code == 200
    return a


def _refused(server, send, status, code):
    before = server.counts()
    with server.client() as c:
        resp = send(c)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == code, resp.text
    assert server.counts() == before
    return resp


def _views_answer(server, agent):
    """Every fleet view that reads stored JSON answers 200."""
    with server.login() as c:
        for path in ("/api/v1/findings", "/api/v1/hosts/%s" % agent.host_id, "/api/v1/rules/%s/hosts" % RULE,
                     "/api/v1/export/findings?format=csv", "/api/v1/export/findings?format=json", "/api/v1/overview",
                     "/findings", "/rules/%s" % RULE, "/hosts/%s" % agent.host_id, "/", "/api/v1/audit", "/audit"):
            r = c.get(path)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])


@pytest.mark.parametrize("where", ["actual", "evidence"])
def test_report_nesting_a_thousand_deep_is_refused_at_intake(server, agent, where):
    doc = agent.report(fail_rules=[RULE])
    body = with_deep(doc, where, 1000)
    resp = _refused(server, lambda c: agent.submit(c, body), 413, "over_limit")
    assert "nested more than 64 levels" in resp.json()["message"] and "$.results[0]." + where in resp.json()["message"]
    # just over the limit, well inside what orjson itself would take (1,024): refused as well
    doc["results"][0][where] = nested(80)
    _refused(server, lambda c: agent.submit(c, doc, compress=True), 413, "over_limit")
    _refused(server, lambda c: agent.submit(c, with_deep(doc, where, 5000), compress=True), 413, "over_limit")
    _views_answer(server, agent)


@pytest.mark.parametrize("leaf", ["string", "object", "array"])
def test_nesting_limit_is_exact_at_intake(server, agent, leaf):
    """jsondoc.parse proves a real-sized report within the limits without visiting every value
    (_bounded_by_text: the depth through the garbage collector's view, where an object holding no
    container is untracked). The limit stays exact: 64 levels are stored, 65 refused, whether the
    innermost level is an array, an object of plain values (untracked) or a plain value."""
    inner = {"string": "x", "object": {"k": "v", "n": 1}, "array": ["v", 1]}[leaf]
    levels_of_inner = 0 if leaf == "string" else 1
    # the root object, results and results[0] are three levels; ``actual`` holds the rest
    for total, ok in ((64, True), (65, False)):
        doc = agent.report(fail_rules=[RULE])
        doc["results"][0]["actual"] = nested(total - 3 - levels_of_inner, leaf=inner)
        body = body_of(doc)
        assert jsondoc._bounded_by_text(body, jsondoc._ORJSON(body)) is ok  # the fast proof decides both
        if ok:
            with server.client() as c:
                assert agent.submit(c, doc, compress=True).status_code == 200
        else:
            resp = _refused(server, lambda c: agent.submit(c, doc, compress=True), 413, "over_limit")
            assert "nested more than 64 levels" in resp.json()["message"]


def test_limits_proof_from_the_text_defers_to_the_walk_when_unsure():
    """Over the text bounds (a text longer than a string may be, more commas than items allowed) the
    exact walk decides: a long document within the limits still parses, one over them is refused."""
    big = {"facts": {"blob": "y" * (jsondoc.MAX_STRING - 10), "more": "z" * 100}}
    text = json.dumps(big).encode()
    assert jsondoc._bounded_by_text(text, big) is False and jsondoc.parse(text) == big
    # over _COUNT_FREE_BYTES the commas bound the items: two arrays within the limit, together more
    # commas than one may hold, leave it undecided
    half = jsondoc.MAX_ITEMS // 2 + 1
    many = json.dumps({"many": ["x" * 4] * half, "other": ["x" * 4] * half}).encode()
    assert len(many) > jsondoc._COUNT_FREE_BYTES
    assert jsondoc._bounded_by_text(many, jsondoc._ORJSON(many)) is False
    assert len(jsondoc.parse(many)["many"]) == half
    with pytest.raises(jsondoc.JsonLimitError):
        jsondoc.parse(json.dumps({"many": ["x" * 4] * (jsondoc.MAX_ITEMS + 1)}).encode())


def test_limits_proof_measures_every_array_under_a_megabyte():
    """Under _COUNT_FREE_BYTES no comma is counted: the walk measures every array and every object
    holding a container (all tracked), and an object of plain values, which the walk does not see,
    would need more text than that to hold MAX_ITEMS entries. Both sides of the items limit are
    decided exactly, at the top and nested."""
    n = jsondoc.MAX_ITEMS
    for doc, ok in (({"a": [0] * n}, True), ({"a": [0] * (n + 1)}, False), ([[0] * (n + 1)], False),
                    ({"half": [0] * (n // 2 + 1), "other": [0] * (n // 2 + 1)}, True),
                    ({"deep": [{"k": [[0] * (n + 1)]}]}, False)):
        body = json.dumps(doc, separators=(",", ":")).encode()
        assert len(body) < jsondoc._COUNT_FREE_BYTES
        assert jsondoc._bounded_by_text(body, jsondoc._ORJSON(body)) is ok
        if ok:
            assert jsondoc.parse(body) == doc
        else:
            with pytest.raises(jsondoc.JsonLimitError) as err:
                jsondoc.parse(body)
            assert "more than %d items" % n in str(err.value)
    # the smallest object of plain values over the limit is past the bytes the proof trusts
    flat = json.dumps({str(i): 0 for i in range(n + 1)}, separators=(",", ":")).encode()
    assert len(flat) >= jsondoc._COUNT_FREE_BYTES
    with pytest.raises(jsondoc.JsonLimitError):
        jsondoc.parse(flat)


def test_report_within_the_limits_is_stored_and_read_back(server, agent):
    doc = agent.report(fail_rules=[RULE])
    doc["results"][0]["actual"] = nested(50, leaf="deep-but-fine")
    for i, scalar in enumerate((None, 5, 2.5, True, "")):  # plain values are read back as they are
        doc["results"][1 + i].update(status="fail", actual=scalar)
    with server.client() as c:
        assert agent.submit(c, doc).status_code == 200
    with server.login() as c:
        rows = c.get("/api/v1/findings", params={"host": agent.host_id, "rule": RULE}).json()
        assert rows and json.dumps(rows[0]["actual"]).count("deep-but-fine") == 1
        mine = {r["rule_id"]: r["actual"] for r in c.get("/api/v1/findings", params={"host": agent.host_id}).json()}
        assert [mine[r["rule_id"]] for r in doc["results"][1:6]] == [None, 5, 2.5, True, ""]
        assert "X-Xcscan-Skipped-Rows" not in c.get("/api/v1/findings").headers
        raw = c.get("/api/v1/reports/%s" % doc["report_id"])
        assert raw.status_code == 200 and raw.json()["results"][0]["actual"] == doc["results"][0]["actual"]


def test_long_strings_and_huge_arrays_are_refused(server, agent):
    doc = agent.report()
    doc["facts"]["blob"] = "x" * (1024 * 1024 + 1)
    resp = _refused(server, lambda c: agent.submit(c, doc, compress=True), 413, "over_limit")
    assert "$.facts.blob" in resp.json()["message"]
    doc = agent.report()
    doc["facts"]["many"] = [0] * 200001
    _refused(server, lambda c: agent.submit(c, doc, compress=True), 413, "over_limit")


def test_every_fleet_view_skips_a_stored_row_it_cannot_read(server, agent):
    """Rows written before the limits existed (or around them): logged, skipped, counted."""
    victim = Agent("victim-%s" % uuid.uuid4().hex[:6], machine_id=uuid.uuid4().hex)
    with server.client() as c:
        assert victim.enroll(c, server.token(org="/hostile/b")).status_code == 201
        assert victim.submit(c, victim.report(fail_rules=[RULE])).status_code == 200
    with server.engine.begin() as conn:
        conn.execute(update(db.results).where(db.results.c.host_id == victim.host_id, db.results.c.rule_id == RULE)
                     .values(actual=deep_json_text(5000), evidence=deep_json_text(5000)))
        conn.execute(update(db.components).where(db.components.c.host_id == victim.host_id, db.components.c.seq == 0)
                     .values(evidence=deep_json_text(5000)))
        audit_id = conn.execute(insert(db.audit_log).values(at=int(time.time()), actor="old-version", action="x",
                                                            detail=deep_json_text(5000))).inserted_primary_key[0]
        report_id = conn.execute(select(db.hosts.c.latest_report_id).where(db.hosts.c.id == victim.host_id)).scalar()
        conn.execute(update(db.reports).where(db.reports.c.id == report_id)
                     .values(body_gz=gzip.compress(deep_json_text(5000).encode())))
    try:
        with server.login() as c:
            found = c.get("/api/v1/findings", params={"rule": RULE})
            assert found.status_code == 200 and int(found.headers["X-Xcscan-Skipped-Rows"]) == 1
            hosts = {r["host_id"] for r in found.json()}
            assert agent.host_id in hosts and victim.host_id not in hosts
            page = c.get("/api/v1/hosts/%s" % victim.host_id)
            assert page.status_code == 200 and int(page.headers["X-Xcscan-Skipped-Rows"]) == 2  # component + result
            assert RULE not in {r["rule_id"] for r in page.json()["results"]} and page.json()["results"]
            rule = c.get("/api/v1/rules/%s/hosts" % RULE)
            assert rule.status_code == 200 and rule.headers["X-Xcscan-Skipped-Rows"] == "1"
            # CSV cells carry stored JSON text as it is (never parsed); the JSON export decodes and skips
            csv_export = c.get("/api/v1/export/findings", params={"format": "csv", "rule": RULE})
            assert csv_export.status_code == 200 and agent.host_id in csv_export.text
            json_export = c.get("/api/v1/export/findings", params={"format": "json", "rule": RULE})
            assert json_export.status_code == 200
            exported = {r["host_id"] for r in json_export.json()}
            assert agent.host_id in exported and victim.host_id not in exported
            audit = c.get("/api/v1/audit", params={"limit": 50})
            assert audit.status_code == 200 and audit.headers["X-Xcscan-Skipped-Rows"] == "1"
            raw = c.get("/api/v1/reports/%s" % report_id)
            assert raw.status_code == 422 and raw.json()["error"] == "unreadable_report"
            for path in ("/rules/%s" % RULE, "/hosts/%s" % victim.host_id, "/findings", "/audit", "/"):
                r = c.get(path)
                assert r.status_code == 200, (path, r.status_code)
            _views_answer(server, agent)
            # the pooled connections are not left holding a statement: logins and intake still work
            with server.client() as a:
                assert agent.submit(a, agent.report()).status_code == 200
        log = open(server.log.name, encoding="utf-8", errors="replace").read()
        assert "skipped a stored row that cannot be read" in log
    finally:
        with server.engine.begin() as conn:
            conn.execute(delete(db.audit_log).where(db.audit_log.c.id == audit_id))
            conn.execute(update(db.results).where(db.results.c.host_id == victim.host_id).values(actual=None, evidence=None))
            conn.execute(update(db.components).where(db.components.c.host_id == victim.host_id).values(evidence="[]"))


# --- the signed body is exactly what is stored ------------------------------------------------------
def _signed_gzip(agent, body, tail):
    h = agent.headers(body)
    h["Content-Encoding"] = "gzip"
    return lambda c: c.post("/api/v1/reports", content=gzip.compress(body) + tail, headers=h)


def test_gzip_with_trailing_data_or_a_second_member_is_refused(server, agent):
    doc = agent.report()
    body = body_of(doc)
    other = agent.report()
    other["report_id"] = doc["report_id"]
    other["results"] = []
    resp = _refused(server, _signed_gzip(agent, body, gzip.compress(body_of(other))), 400, "bad_gzip")
    assert "after the end of the gzip member" in resp.json()["message"]
    _refused(server, _signed_gzip(agent, body, b"trailing junk"), 400, "bad_gzip")
    _refused(server, _signed_gzip(agent, body, b"\0" * 8), 400, "bad_gzip")
    with server.client() as c:  # the same body, one member: accepted, and stored as it was signed
        assert _signed_gzip(agent, body, b"")(c).status_code == 200
    with server.engine.connect() as conn:
        stored = conn.execute(select(db.reports.c.body_gz).where(db.reports.c.id == doc["report_id"])).scalar()
    assert gzip.decompress(stored) == body


def _raw_request(server, head, body=b"", read_timeout=10):
    """Send ``head`` (and ``body``) over TLS; return (seconds until the answer, status line)."""
    ctx = ssl.create_default_context(cafile=server.ca)
    with socket.create_connection(("127.0.0.1", server.port), timeout=read_timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            t0 = time.monotonic()
            s.sendall(head + body)
            data = b""
            try:
                while b"\r\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except (socket.timeout, ssl.SSLError, ConnectionError):
                pass
            return time.monotonic() - t0, data.split(b"\r\n", 1)[0].decode("latin-1")


def test_no_inflation_before_the_sender_is_known(server, agent):
    """A 15 KB bomb that inflates to 16 MiB+: from an unknown or malformed sender it is refused on
    its headers, before the body is read or inflated."""
    bomb = gzip.compress(b'{"pad": "' + b"0" * (17 * 1024 * 1024) + b'"}')
    assert len(bomb) < 100 * 1024
    good = agent.headers(b"whatever")
    cases = [(dict(good, **{"X-Xcscan-Host": str(uuid.uuid4())}), "unknown_host"),
             (dict(good, **{"X-Xcscan-Host": "not-a-host"}), "unknown_host"),
             ({k: v for k, v in good.items() if k != "X-Xcscan-Signature"}, "bad_signature"),
             (dict(good, **{"X-Xcscan-Signature": "AAAA"}), "bad_signature"),
             # superscript digits: str.isdigit() says yes, int() refuses (read as latin-1 by the server)
             (dict(good, **{"X-Xcscan-Timestamp": good["X-Xcscan-Timestamp"][:-2].encode() + b"\xb2\xb3"}),
              "bad_signature")]
    for headers, code in cases:
        headers = dict(headers, **{"Content-Encoding": "gzip"})
        _refused(server, lambda c: c.post("/api/v1/reports", content=bomb, headers=headers), 401, code)
    # the answer comes without the body being sent at all: the server does not wait for 16 MiB
    head = ("POST /api/v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            "Content-Length: %d\r\nX-Xcscan-Host: %s\r\nX-Xcscan-Timestamp: %s\r\nX-Xcscan-Signature: %s\r\n\r\n"
            % (16 * 1024 * 1024, uuid.uuid4(), good["X-Xcscan-Timestamp"], good["X-Xcscan-Signature"])).encode()
    took, status = _raw_request(server, head)
    assert status.startswith("HTTP/1.1 401"), status
    assert took < 5


# --- server reevaluate trusts nothing in stored reports ----------------------------------------------
def test_reevaluate_opens_no_path_from_a_report_and_skips_what_it_cannot_read(server):
    """summary.profile "/dev/zero" (read forever) or a server path is never opened as a profile; a report
    that cannot be read is reported and skipped; the rest of the fleet is re-evaluated."""
    agents, ids = [], {}
    with server.client() as c:
        tok = server.token(org="/hostile/reeval", uses=4)
        for name in ("devzero", "path", "broken", "good"):
            a = Agent("reeval-%s-%s" % (name, uuid.uuid4().hex[:4]))
            assert a.enroll(c, tok).status_code == 201
            doc = a.report(profile="mlps-l3")
            if name == "devzero":
                doc["summary"]["profile"] = "/dev/zero"
            elif name == "path":
                doc["summary"]["profile"] = "../../../../etc/passwd"
            assert a.submit(c, doc).status_code == 200
            agents.append(a)
            ids[name] = doc["report_id"]
    with server.engine.begin() as conn:  # a row stored before intake had limits
        conn.execute(update(db.reports).where(db.reports.c.id == ids["broken"])
                     .values(body_gz=gzip.compress(deep_json_text(5000).encode())))
    t0 = time.monotonic()
    proc = server.cli("server", "reevaluate", "--latest-only")
    assert time.monotonic() - t0 < 100
    for name in ("devzero", "path", "broken"):
        assert "skipped report %s" % ids[name] in proc.stderr, proc.stderr
    assert "not installed here" in proc.stderr and "nested more than 64 levels" in proc.stderr
    assert "skipped" in proc.stdout
    with server.engine.connect() as conn:
        evaluated = dict(conn.execute(select(db.reports.c.id, db.reports.c.evaluated_at)
                                      .where(db.reports.c.id.in_(list(ids.values())))).all())
    assert evaluated[ids["good"]] is not None
    assert evaluated[ids["devzero"]] is None and evaluated[ids["path"]] is None
    # an operator may name an installed profile; a path is refused
    bad = server.cli("server", "reevaluate", "--latest-only", "--profile", "/dev/zero", check=False)
    assert bad.returncode != 0 and "unknown profile" in bad.stderr and "Traceback" not in bad.stderr


def test_views_over_bad_rows_under_concurrency_leave_logins_and_enrollment_working(server, agent):
    """Item 5: while 6 clients read views over unreadable stored rows, logins, enrollments and report
    intake from 3 others all succeed: no statement is left open on a pooled connection (SQLite would
    then answer 'database is locked' to the writers)."""
    import threading
    victim = Agent("locked-%s" % uuid.uuid4().hex[:6], machine_id=uuid.uuid4().hex)
    with server.client() as c:
        assert victim.enroll(c, server.token(org="/hostile/c")).status_code == 201
        assert victim.submit(c, victim.report(fail_rules=[RULE])).status_code == 200
    with server.engine.begin() as conn:
        conn.execute(update(db.results).where(db.results.c.host_id == victim.host_id)
                     .values(actual=deep_json_text(5000)))
    token = server.token(org="/hostile/c", uses=50)
    errors, done = [], {"reads": 0, "writes": 0}
    stop = time.monotonic() + 8

    reader_token = server.login().headers["Authorization"]

    def reader():
        with server.client(headers={"Authorization": reader_token}) as c:
            while time.monotonic() < stop:
                for path in ("/api/v1/findings", "/api/v1/hosts/%s" % victim.host_id, "/api/v1/rules/%s/hosts" % RULE,
                             "/findings"):
                    r = c.get(path)
                    if r.status_code != 200:
                        errors.append((path, r.status_code, r.text[:200]))
                    done["reads"] += 1

    def writer(i):
        with server.client() as c:
            while time.monotonic() < stop:
                r = c.post("/api/v1/session", json={"username": ADMIN_NAME, "password": ADMIN_PW})
                a = Agent("w%d-%s" % (i, uuid.uuid4().hex[:6]))
                e = a.enroll(c, token)
                s = a.submit(c, a.report()) if e.status_code == 201 else e
                for resp in (r, e, s):
                    if resp.status_code not in (200, 201):
                        errors.append(("write", resp.status_code, resp.text[:200]))
                done["writes"] += 1
    threads = [threading.Thread(target=reader) for _ in range(6)] + \
        [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    try:
        [t.start() for t in threads]
        [t.join() for t in threads]
    finally:
        with server.engine.begin() as conn:
            conn.execute(update(db.results).where(db.results.c.host_id == victim.host_id).values(actual=None))
    assert errors == [] and done["reads"] > 10 and done["writes"] >= 3, (errors[:5], done)
    assert "database is locked" not in open(server.log.name, encoding="utf-8", errors="replace").read()
