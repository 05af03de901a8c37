"""The work that holds the database longest is limited per worker (store/slots.py), on a real server over
TLS with PostgreSQL, each limit at 1. A test transaction holds a table locked, so the first request takes
the slot and waits in PostgreSQL for as long as the test says.

- Folds of the change records (``max_concurrent_folds``, a request waiting up to ``fold_wait``, 2 s): while
  an API change page holds the slot, the live change page (in Chinese), the API change page and the change
  export are answered ``503 busy`` with ``Retry-After`` after the wait, and a request that arrives while
  the lock is held and is freed before its wait ends is answered in full.
- Streamed exports (``max_concurrent_exports``, refused at once): while a findings export streams (its
  client has the headers, the rows wait on the lock), another is refused; the first client going away
  without reading gives the slot back, and the next export is streamed whole. A client that stays
  connected but stops reading (``export_send_timeout``, 2 s) loses its export and its connection; one that
  leaves before the response starts is audited (no rows, not complete) and its slot comes back."""
from __future__ import annotations

import threading
import time
import uuid

import pytest

from fleet import Agent

ORG = "/slots-%s" % uuid.uuid4().hex[:6]
WAIT = 2
SEND_TIMEOUT = 2


@pytest.fixture(scope="module")
def slot_server(tmp_path_factory):
    from server_support import fresh_pg_database, make_server
    with fresh_pg_database() as url:
        srv = make_server(tmp_path_factory, "postgres", url,
                          settings={"max_concurrent_folds": 1, "fold_wait": WAIT, "max_concurrent_exports": 1,
                                    "export_send_timeout": SEND_TIMEOUT})
        try:
            a = Agent("slots-host", machine_id=uuid.uuid4().hex)
            with srv.client() as c:
                assert a.enroll(c, srv.token(org=ORG)).status_code == 201
                for days, status in ((9, "pass"), (1, "fail")):  # every finding fails anew in the last 7 days
                    doc = a.report(profile="mlps-l3")
                    for r in doc["results"]:
                        r["status"] = status
                    assert a.submit(c, doc, timestamp=time.time() - days * 86400).status_code == 200
            yield srv
        finally:
            srv.stop()


def _locked_until_released(url, table="result_changes"):
    """A transaction holding ``table`` locked (every fold reads ``result_changes``) until the returned event
    is set."""
    import psycopg
    held, release = threading.Event(), threading.Event()

    def run():
        with psycopg.connect(url) as conn:
            conn.execute("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE" % table)
            held.set()
            release.wait(60)
    t = threading.Thread(target=run)
    t.start()
    assert held.wait(10)
    return release, t


def _waiting_on_lock(url, table="result_changes"):
    import psycopg
    with psycopg.connect(url, autocommit=True) as conn:
        # the lock requests not granted on the table (a statement's text in pg_stat_activity is cut at 1 KB)
        return conn.execute("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                            "WHERE NOT l.granted AND c.relname = %s", (table,)).fetchone()[0]


def _token(srv):
    from server_support import ADMIN
    with srv.client() as c:
        return c.post("/api/v1/session", json={"username": ADMIN[0], "password": ADMIN[1]}).json()["token"]


def _export_audits(srv):
    """The details of the findings exports' audit entries, oldest first."""
    import json
    from sqlalchemy import select
    from scanner.server.store import db
    with srv.engine.connect() as conn:
        return [json.loads(d) for d in conn.execute(select(db.audit_log.c.detail).where(
            db.audit_log.c.action == "export.findings").order_by(db.audit_log.c.id)).scalars()]


def _in_thread(srv, token, path, **params):
    """GET ``path`` on a thread of its own, with a client of its own; (thread, {"resp": response})."""
    out = {}

    def run():
        with srv.client(headers={"Authorization": "Bearer " + token}) as c:
            out["resp"] = c.get(path, params=params)
    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_a_fold_waits_for_a_slot_then_is_refused_503_before_any_work(slot_server):
    srv = slot_server
    token = _token(srv)
    t, out = _in_thread(srv, token, "/api/v1/changes")
    t.join(30)
    assert out["resp"].json()["counts"]["new"] > 0  # the fold works while nothing holds it
    release, locker = _locked_until_released(srv.db_url)
    try:
        first, first_out = _in_thread(srv, token, "/api/v1/changes")
        deadline = time.time() + 10
        while _waiting_on_lock(srv.db_url) < 1:  # the first fold holds the slot, waiting in PostgreSQL
            assert time.time() < deadline, "the first fold never reached result_changes"
            time.sleep(0.05)
        started = time.time()
        refused = [_in_thread(srv, token, "/changes", live="1", lang="zh"),
                   _in_thread(srv, token, "/api/v1/changes", limit="5"),
                   _in_thread(srv, token, "/api/v1/export/changes", format="csv")]
        for t, _out in refused:
            t.join(30)
            assert not t.is_alive(), "a fold was not refused while the only slot was taken (no limit?)"
        waited = time.time() - started
        page, api, export = [out["resp"] for _t, out in refused]
        assert WAIT - 0.2 <= waited < WAIT + 5, waited  # each waited for the slot, no longer than its wait
        for resp in (page, api, export):
            assert resp.status_code == 503, resp.text[:300]
            assert resp.headers["retry-after"] == "5"
        assert api.json()["error"] == "busy" and export.json()["error"] == "busy"
        assert "服务器正在统计其他变化，请几秒后重试。" in page.text
        assert 'id="changes-default-view"' in page.text and "already" not in page.text  # the zh page in Chinese
        assert _waiting_on_lock(srv.db_url) == 1  # the refused ones never reached the database
        # a request arriving now and freed within its wait is answered in full
        late, late_out = _in_thread(srv, token, "/api/v1/changes")
        time.sleep(0.5)
    finally:
        release.set()
        locker.join(30)
    first.join(30)
    late.join(30)
    assert first_out["resp"].status_code == 200 and late_out["resp"].status_code == 200
    assert late_out["resp"].json()["counts"] == first_out["resp"].json()["counts"]
    assert late_out["resp"].json()["counts"]["new"] > 0


def test_a_streamed_export_holds_its_slot_until_its_client_is_done_or_gone(slot_server):
    srv = slot_server
    auth = {"Authorization": "Bearer " + _token(srv)}
    path, params = "/api/v1/export/findings", {"format": "csv", "lang": "en"}
    with srv.client(headers=auth) as c:
        whole = c.get(path, params=params)
    assert whole.status_code == 200 and whole.text.count("\n") > 10  # the header and every finding
    release, locker = _locked_until_released(srv.db_url, "results")
    try:
        gone = srv.client(headers=auth)
        first = gone.send(gone.build_request("GET", path, params=params), stream=True)
        assert first.status_code == 200  # the headers went out; the rows wait on the lock, the slot held
        deadline = time.time() + 10
        while _waiting_on_lock(srv.db_url, "results") < 1:
            assert time.time() < deadline, "the export never reached the results table"
            time.sleep(0.05)
        started = time.time()
        with srv.client(headers=auth) as c:
            refused = c.get(path, params=params)
        assert refused.status_code == 503 and refused.json()["error"] == "busy", refused.text[:300]
        assert refused.headers["retry-after"] == "30" and time.time() - started < 2  # at once, no wait
        first.close()
        gone.close()  # the client goes away without reading a row
    finally:
        release.set()
        locker.join(30)
    deadline = time.time() + 15
    while True:  # the dropped stream gives its slot back once its rows come and find no one
        with srv.client(headers=auth) as c:
            again = c.get(path, params=params)
        if again.status_code == 200 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert again.status_code == 200, again.text[:300]
    assert again.text == whole.text
    # the audit log says which exports finished: the dropped one was closed (its entry written) before the next
    details = _export_audits(srv)
    assert [d["complete"] for d in details] == [True, False, True]
    assert details[0]["rows"] == details[2]["rows"] == whole.text.count("\n") - 1  # every finding, not the header


def test_a_client_that_stops_reading_an_export_loses_it_after_the_send_timeout(slot_server):
    import socket
    import ssl
    import psycopg
    srv = slot_server
    token = _token(srv)
    auth = {"Authorization": "Bearer " + token}
    path = "/api/v1/export/findings?format=csv"
    # rows enough (~20 MB of CSV) that the export outgrows what the connection buffers (the kernel's send
    # buffer grows to 4 MB here, tcp_wmem; the server pauses past 64 KB of its own)
    with psycopg.connect(srv.db_url) as conn:
        conn.execute("INSERT INTO results (host_id, profile, rule_id, title_zh, title_en, category, severity, "
                     "status, actual, expected, evidence) SELECT host_id, profile, rule_id || '.copy' || n, "
                     "title_zh, title_en, category, severity, status, actual, expected, evidence "
                     "FROM results, generate_series(1, 1500) AS n WHERE rule_id NOT LIKE '%.copy%'")
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client window of a few KB
    raw.connect(("127.0.0.1", srv.port))
    tls = ssl.create_default_context(cafile=srv.ca).wrap_socket(raw, server_hostname="127.0.0.1")
    try:
        tls.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n"
                     % (path, token)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += tls.recv(1024)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        # the client now reads nothing; its export holds the only slot
        with srv.client(headers=auth) as c:
            assert c.get(path).status_code == 503
        started, deadline = time.time(), time.time() + SEND_TIMEOUT + 20
        while True:  # within the send timeout after the buffers filled, the slot is free again
            with srv.client(headers=auth) as c:
                again = c.get(path)
            if again.status_code == 200 or time.time() > deadline:
                break
            time.sleep(0.3)
        assert again.status_code == 200, again.text[:300]
        assert time.time() - started >= SEND_TIMEOUT - 0.5
        full = len(again.content)
        assert full > 10 * 1024 * 1024
        # and the stalled client's connection was closed after part of the export
        tls.settimeout(20)
        got = len(head)
        while True:
            data = tls.recv(65536)
            if not data:
                break
            got += len(data)
        assert got < full
    finally:
        tls.close()
    last = _export_audits(srv)[-2:]
    assert [d["complete"] for d in last] == [False, True]  # the stalled export, then the retried one


def test_an_export_whose_client_leaves_before_the_headers_is_audited_and_gives_its_slot_back(slot_server):
    import socket
    import ssl
    srv = slot_server
    token = _token(srv)
    before = len(_export_audits(srv))
    # the request waits in PostgreSQL for its session (the token's lookup) while its client hangs up, so the
    # response is made for a client already gone: the server never asks its stream for a chunk
    release, locker = _locked_until_released(srv.db_url, "sessions")
    try:
        tls = ssl.create_default_context(cafile=srv.ca).wrap_socket(
            socket.create_connection(("127.0.0.1", srv.port)), server_hostname="127.0.0.1")
        tls.sendall(("GET /api/v1/export/findings?format=csv HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Authorization: Bearer %s\r\n\r\n" % token).encode())
        deadline = time.time() + 10
        while _waiting_on_lock(srv.db_url, "sessions") < 1:
            assert time.time() < deadline, "the export request never reached the sessions table"
            time.sleep(0.05)
        tls.close()
        time.sleep(0.5)  # the server sees the connection closed
    finally:
        release.set()
        locker.join(30)
    deadline = time.time() + 10
    while len(_export_audits(srv)) == before and time.time() < deadline:
        time.sleep(0.1)
    details = _export_audits(srv)[before:]
    assert [(d["complete"], d["rows"]) for d in details] == [(False, 0)], details  # written, once, with no rows
    with srv.client(headers={"Authorization": "Bearer " + token}) as c:
        assert c.get("/api/v1/export/findings", params={"format": "csv"}).status_code == 200  # the slot is free
    assert [d["complete"] for d in _export_audits(srv)[before:]] == [False, True]


def test_the_components_export_is_streamed_resumable_and_takes_an_export_slot(slot_server):
    import csv
    import io
    srv = slot_server
    auth = {"Authorization": "Bearer " + _token(srv)}
    path = "/api/v1/export/components"
    with srv.client(headers=auth) as c:
        whole = c.get(path, params={"format": "csv", "origin": "any", "lang": "zh"})
        rows = list(csv.reader(io.StringIO(whole.text.lstrip("\ufeff"))))
        assert whole.status_code == 200 and rows[0][0] == "主机名 hostname" and len(rows) > 5
        # sorted (category, org, host): an offset resumes it, a limit pages it, in either format
        rest = c.get(path, params={"format": "csv", "origin": "any", "lang": "zh", "offset": 2})
        assert list(csv.reader(io.StringIO(rest.text.lstrip("\ufeff")))) == rows[:1] + rows[3:]
        page = c.get(path, params={"format": "json", "origin": "any", "limit": 3}).json()
        assert [(x["hostname"], x["category"], x["product_id"]) for x in page] == [
            (r[0], r[2], r[3]) for r in rows[1:4]]
        assert all(isinstance(x["substitutes"], list) for x in page)
        # malformed paging: refused before any work, the parameter named, nothing audited
        for bad in ({"offset": -1}, {"limit": 0}, {"offset": "abc"}, {"limit": 10**10}):
            refused = c.get(path, params=dict(bad, format="csv"))
            assert refused.status_code == 422 and refused.json()["error"] == "invalid_request", refused.text[:300]
            assert list(bad)[0] in refused.text and "Traceback" not in refused.text
    # it streams from the database like the findings export: while one holds the only slot, it is refused
    release, locker = _locked_until_released(srv.db_url, "results")
    try:
        holder = srv.client(headers=auth)
        first = holder.send(holder.build_request("GET", "/api/v1/export/findings", params={"format": "csv"}),
                            stream=True)
        assert first.status_code == 200
        with srv.client(headers=auth) as c:
            refused = c.get(path, params={"format": "csv", "origin": "any"})
        assert refused.status_code == 503 and refused.json()["error"] == "busy", refused.text[:300]
    finally:
        release.set()
        locker.join(30)
    first.read()
    first.close()
    holder.close()
    from sqlalchemy import select
    from scanner.server.store import db
    import json
    with srv.engine.connect() as conn:
        details = [json.loads(d) for d in conn.execute(select(db.audit_log.c.detail).where(
            db.audit_log.c.action == "export.components").order_by(db.audit_log.c.id)).scalars()]
    assert [(d["rows"], d["complete"], d["offset"], d["limit"]) for d in details] == [
        (len(rows) - 1, True, 0, None), (len(rows) - 3, True, 2, None), (3, True, 0, 3)]


def test_a_control_point_rollup_waits_for_a_slot_then_is_refused_503_in_the_users_language(slot_server):
    """The summary by 控制点 and the coverage of an org subtree share the roll-up slots (one here)."""
    srv = slot_server
    token = _token(srv)
    t, out = _in_thread(srv, token, "/orgs/controls", org=ORG, lang="zh")
    t.join(30)
    assert out["resp"].status_code == 200 and 'id="controls-hosts"' in out["resp"].text  # works while free
    # the first roll-up holds the only slot, waiting in PostgreSQL for the host's report
    release, locker = _locked_until_released(srv.db_url, "reports")
    try:
        first, first_out = _in_thread(srv, token, "/orgs/controls", org=ORG, lang="zh")
        deadline = time.time() + 10
        while _waiting_on_lock(srv.db_url, "reports") < 1:
            assert time.time() < deadline, "the first roll-up never reached the reports"
            time.sleep(0.05)
        started = time.time()
        # another roll-up, and an org's coverage (page and API: every host's results judged) share the slots
        refused = [_in_thread(srv, token, "/orgs/controls", org=ORG, lang="zh"),
                   _in_thread(srv, token, "/coverage", org=ORG, lang="zh"),
                   _in_thread(srv, token, "/api/v1/coverage", org=ORG)]
        for t, _out in refused:
            t.join(30)
        assert WAIT - 0.2 <= time.time() - started < WAIT + 5  # each waited for the slot, no longer than its wait
        page, cov, api = [out["resp"] for _t, out in refused]
        for resp in (page, cov, api):
            assert resp.status_code == 503 and resp.headers["retry-after"] == "5", resp.text[:300]
        assert "服务器正在汇总其他组织单位的控制点，请几秒后重试。" in page.text
        assert "already" not in page.text and 'id="controls-hosts"' not in page.text
        assert "服务器正在统计其他组织单位的测评单元，请几秒后重试。" in cov.text and "already" not in cov.text
        assert 'id="coverage-summary"' not in cov.text and api.json()["error"] == "busy"
        # a host's own coverage is one host's rows: it takes no slot
        with srv.client(headers={"Authorization": "Bearer " + token}) as c:
            host_id = c.get("/api/v1/hosts", params={"org": ORG}).json()[0]["id"]
            assert c.get("/api/v1/coverage", params={"host": host_id}).status_code == 200
        assert _waiting_on_lock(srv.db_url, "reports") == 1  # the refused ones read no report
    finally:
        release.set()
        locker.join(30)
    first.join(30)
    assert first_out["resp"].status_code == 200 and 'id="controls-hosts"' in first_out["resp"].text
