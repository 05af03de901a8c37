"""`xcscan server serve --workers 2` on PostgreSQL, as operators run it: one server, two worker
processes on one socket and one database. Reports for the same hosts, newest and oldest mixed and
some sent twice, arrive on new connections that the kernel hands to either worker; the fleet's latest
state is then each host's newest report, every report is stored once, and the maintained aggregates
equal a recount. Both workers took reports (each worker's /metrics counts only its own). Overviews
asked of both at once compute the missing daily roll-ups once (the roll-up advisory lock): every
answer is 200 and the stored roll-ups equal a fresh computation. The retention prune that each
worker polls for (scanner/server/maintenance.py) runs once per interval between them."""
from __future__ import annotations

import concurrent.futures
import random
import threading
import time
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text

from fleet import RULES, Agent, body_of
from scanner.server.store import aggregates, db, jobs, queries, retention, rollups
from server_support import fresh_pg_database, make_server
from test_aggregates import _all_rollups

INTERVAL = 30  # prune_interval: the workers poll every 3 s
DAY = 86400


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with fresh_pg_database() as url:
        s = make_server(tmp_path_factory, "postgres", url, workers=2,
                        settings={"metrics_allow": "127.0.0.1", "report_retention_days": 3,
                                  "prune_interval": INTERVAL})
        yield s
        s.stop()


def fresh(srv):
    """A client on a new connection for each request (the kernel gives it to either worker)."""
    return srv.client(headers={"Connection": "close"})


def accepted_counts(srv, n=40):
    """The accepted-reports counter of the worker answering each of ``n`` scrapes."""
    seen = set()
    for _ in range(n):
        with fresh(srv) as c:
            resp = c.get("/metrics")
        assert resp.status_code == 200, resp.text
        for fam in text_string_to_metric_families(resp.text):
            for s in fam.samples:
                if s.name == "xcscan_intake_reports_total" and s.labels.get("outcome") == "accepted":
                    seen.add(int(s.value))
    return seen


def test_reports_through_both_workers_leave_one_consistent_state(srv):
    rng = random.Random(2)
    token = srv.token(uses=50)
    agents = []
    for i in range(6):
        a = Agent("w2-host%d" % i, machine_id=uuid.uuid4().hex)
        with fresh(srv) as c:
            assert a.enroll(c, token).status_code == 201
        agents.append(a)
    now = int(time.time())
    sends, newest = [], {}
    for a in agents:
        for d in range(10, -1, -1):  # a report a day for 11 days; the newest is today's
            ts = now - d * DAY - rng.randint(60, 3600)
            doc = a.report(rng=random.Random(rng.random()), fail_rules=[r[0] for r in RULES[:4] if rng.random() < 0.5])
            sends.append((a, body_of(doc), ts, doc))
            if d == 0:
                newest[a.host_id] = doc
    sends += rng.sample(sends, 16)  # sent twice, possibly to both workers at once
    rng.shuffle(sends)

    def submit(x):
        a, body, ts, doc = x
        with fresh(srv) as c:
            resp = a.submit(c, body, timestamp=ts)
        return doc["report_id"], resp.status_code, resp.json()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(submit, sends))
    assert all(st == 200 and ack["report_id"] == rid for rid, st, ack in answers), answers[:3]

    e = srv.engine
    r, h, hp, res = db.reports, db.hosts, db.host_profiles, db.results
    with e.connect() as conn:
        assert conn.execute(select(func.count()).select_from(r)).scalar() == 66
        assert conn.execute(select(func.count(func.distinct(r.c.id))).select_from(r)).scalar() == 66
        for a in agents:
            doc = newest[a.host_id]
            assert conn.execute(select(h.c.latest_report_id).where(h.c.id == a.host_id)).scalar() == doc["report_id"]
            assert conn.execute(select(hp.c.report_id).where(hp.c.host_id == a.host_id)).scalar() == doc["report_id"]
            stored = dict(conn.execute(select(res.c.rule_id, res.c.status).where(res.c.host_id == a.host_id)).all())
            assert stored == {x["rule_id"]: x["status"] for x in doc["results"]}
            assert conn.execute(select(func.count()).select_from(db.components).where(
                db.components.c.host_id == a.host_id)).scalar() == len(doc["inventory"]["components"])
    with e.connect() as conn:
        with conn.begin():
            assert aggregates.check(conn) == []
    # both workers stored reports: a worker's counter is only its own share of the 82 answers
    seen = accepted_counts(srv)
    assert min(seen) < len(sends), seen
    assert len(seen) <= 2 and (len(seen) == 1 or sum(seen) == len(sends)), seen


def test_overviews_on_both_workers_compute_the_rollups_once(srv):
    e = srv.engine
    with e.begin() as conn:  # the roll-ups of the last 30 days are to be computed by the next overview
        conn.execute(text("DELETE FROM daily_rollups"))
        conn.execute(text("DELETE FROM rollup_days"))
    with srv.login() as c:
        token = c.headers["Authorization"]
    start = threading.Barrier(8)

    def overview(_k):
        with fresh(srv) as c:
            start.wait()
            resp = c.get("/api/v1/overview", headers={"Authorization": token})
        return resp.status_code, resp.json()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(overview, range(8)))
    assert [st for st, _b in answers] == [200] * 8, answers[0]
    assert all(b["trend"] == answers[0][1]["trend"] for _s, b in answers)
    today = rollups.today()
    with e.connect() as conn:
        marks = [x[0] for x in conn.execute(select(db.rollup_days.c.day).order_by(db.rollup_days.c.day))]
        stored = _all_rollups(conn)
    assert marks == list(range(today - queries.TREND_DAYS, today))
    with e.connect() as conn:
        with conn.begin() as tx:  # the same days computed afresh by one connection: identical
            for day in marks:
                rollups.compute_day(conn, day)
            assert _all_rollups(conn) == stored
            tx.rollback()
    assert {d for d, *_x in stored} >= set(range(today - 10, today))  # the days the reports cover


def test_the_prune_runs_once_per_interval_between_the_workers(srv):
    e = srv.engine
    r = db.reports
    later = prune_runs_once(e)
    cutoff = retention.cutoff_of(later["started_at"], 3)  # the start of the day 3 days before the run
    with e.connect() as conn:
        pruned = conn.execute(select(func.count()).select_from(r).where(r.c.pruned_at.is_not(None))).scalar()
        old = conn.execute(select(func.count()).select_from(r).where(  # but for the bases kept deltas need
            r.c.collected_at < cutoff, r.c.id.not_in(select(db.hosts.c.latest_report_id)),
            r.c.id.not_in(select(db.report_bases.c.report_id)))).scalar()
        logged = conn.execute(select(func.count()).select_from(db.audit_log).where(
            db.audit_log.c.action == "reports.prune", db.audit_log.c.actor == "server")).scalar()
    assert pruned == old > 0  # 6 hosts x the reports of days 10..4 ago
    # an earlier run may have pruned some already; and the daily summaries delete the rows of a host's
    # second report of a UTC day (the fixture's reports come 60 s to an hour before "now" less whole
    # days: in the hour after UTC midnight two of them can share a day), which pruned_at no longer counts
    assert later["detail"]["reports"] <= pruned + later["detail"]["summarized"]
    assert logged >= 1


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """Two server processes (two nodes: each its own port and process, the same configuration
    copied, as two machines would run it) on one PostgreSQL database."""
    import shutil
    from server_support import Server
    with fresh_pg_database() as url:
        a = make_server(tmp_path_factory, "postgres", url, workers=1,
                        settings={"report_retention_days": 3, "prune_interval": INTERVAL})
        b_dir = str(tmp_path_factory.mktemp("node-b"))
        shutil.rmtree(b_dir)
        shutil.copytree(a.data_dir, b_dir, ignore=shutil.ignore_patterns("serve.log"))
        b = Server(b_dir, url, "postgres").start(1)
        try:
            yield a, b
        finally:
            b.stop()
            a.stop()


def test_two_nodes_store_each_report_once_in_order_and_run_jobs_once(nodes):
    """Each host's reports (11 days, newest and oldest mixed) go to both nodes at once, half to
    each and some to both at the same moment; nothing is stored twice or lost, every host's latest
    state is its newest report whichever node stored which, the aggregates equal a recount, and the
    retention prune that both nodes poll for runs once."""
    a, b = nodes
    rng = random.Random(5)
    token = a.token(uses=50)
    agents = []
    for i in range(6):
        ag = Agent("n2-host%d" % i, machine_id=uuid.uuid4().hex)
        with (a if i % 2 else b).client() as c:
            assert ag.enroll(c, token).status_code == 201
        agents.append(ag)
    now = int(time.time())
    sends, newest, expected = [], {}, set()
    for ag in agents:
        days = list(range(10, -1, -1))
        rng.shuffle(days)  # each host's reports arrive out of order
        for k, d in enumerate(days):
            ts = now - d * DAY - rng.randint(60, 3600)
            doc = ag.report(rng=random.Random(rng.random()),
                            fail_rules=[r[0] for r in RULES[:4] if rng.random() < 0.5])
            node = (a, b)[k % 2]
            sends.append((node, ag, body_of(doc), ts, doc))
            expected.add(doc["report_id"])
            if d == 0:
                newest[ag.host_id] = doc
            if k % 4 == 0:  # the same report to the other node too (a retry that reached both)
                sends.append(((b, a)[k % 2], ag, body_of(doc), ts, doc))
    rng.shuffle(sends)
    start = threading.Barrier(8)

    def submit(x):
        node, ag, body, ts, doc = x
        with node.client(headers={"Connection": "close"}) as c:
            resp = ag.submit(c, body, timestamp=ts)
        return node is a, doc["report_id"], resp.status_code, resp.json()

    def first(x):
        start.wait()
        return submit(x)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(first, sends[:8])) + list(pool.map(submit, sends[8:]))
    assert all(st == 200 and ack["report_id"] == rid for _n, rid, st, ack in answers), answers[:3]
    assert {n for n, *_x in answers} == {True, False}

    e = a.engine
    r, h, hp, res = db.reports, db.hosts, db.host_profiles, db.results
    with e.connect() as conn:
        stored = [x[0] for x in conn.execute(select(r.c.id))]
        assert len(stored) == len(set(stored)) == len(expected) and set(stored) == expected
        for ag in agents:
            doc = newest[ag.host_id]
            assert conn.execute(select(h.c.latest_report_id).where(h.c.id == ag.host_id)).scalar() == doc["report_id"]
            assert conn.execute(select(hp.c.report_id).where(hp.c.host_id == ag.host_id)).scalar() == doc["report_id"]
            got = dict(conn.execute(select(res.c.rule_id, res.c.status).where(res.c.host_id == ag.host_id)).all())
            assert got == {x["rule_id"]: x["status"] for x in doc["results"]}
            assert conn.execute(select(func.count()).select_from(r).where(r.c.host_id == ag.host_id)).scalar() == 11
    with e.connect() as conn:
        with conn.begin():
            assert aggregates.check(conn) == []

    # the prune both nodes poll for: made due now, it runs once, on one of them
    runs = prune_runs_once(e)["runs"] - 1  # before this run
    with e.connect() as conn:
        logged = conn.execute(select(func.count()).select_from(db.audit_log).where(
            db.audit_log.c.action == "reports.prune", db.audit_log.c.actor == "server")).scalar()
        pruned = conn.execute(select(func.count()).select_from(r).where(r.c.pruned_at.is_not(None))).scalar()
    assert 1 <= logged <= runs + 1 and pruned > 0  # a run that pruned logs once; none ran twice


def prune_runs_once(e):
    """Make the retention job due now; whichever worker or node polls first takes it, and it runs once:
    after both polled at least twice more it is not due again. Returns the job's state after that run."""
    with e.begin() as conn:
        runs = conn.execute(text("UPDATE job_runs SET started_at = 0 WHERE name = 'retention' RETURNING runs")).scalar()
    assert runs is not None and runs >= 1  # a first run was claimed at start-up
    deadline = time.time() + 30
    while time.time() < deadline and jobs.state(e, "retention")["runs"] == runs:
        time.sleep(0.5)
    st = jobs.state(e, "retention")
    assert st["runs"] == runs + 1
    time.sleep(2 * 3 + 1)  # both polled at least twice more (every 3 s here): not due again
    while jobs.state(e, "retention")["finished_at"] is None:
        time.sleep(0.2)
    later = jobs.state(e, "retention")
    assert (later["runs"], later["started_at"], later["node"]) == (runs + 1, st["started_at"], st["node"])
    return later
