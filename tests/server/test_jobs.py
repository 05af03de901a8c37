"""Scheduled background jobs run by the server nodes themselves (store/jobs.py, server/maintenance.py)
on a real SQLite file and on the PostgreSQL at 127.0.0.1:5432: a run is claimed by exactly one node
per interval, also when several claim at the same moment on their own connections, and the
retention prune runs through it (audited as the server's)."""
from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import select

from scanner.server.maintenance import Maintenance
from scanner.server.settings import Settings
from scanner.server.store import db, jobs
from test_batch_store import enroll, item, put

DAY = 86400
T = 1_800_000_000


def test_a_run_is_claimed_once_per_interval(db_engine):
    assert jobs.state(db_engine, "x") is None
    assert jobs.claim(db_engine, "x", 100, t=T, node="a:1")
    assert not jobs.claim(db_engine, "x", 100, t=T, node="b:2")  # the same moment, another node
    assert not jobs.claim(db_engine, "x", 100, t=T + 99, node="b:2")
    jobs.finish(db_engine, "x", {"reports": 3}, t=T + 5)
    st = jobs.state(db_engine, "x")
    assert (st["started_at"], st["finished_at"], st["runs"], st["node"], st["detail"]) == (T, T + 5, 1, "a:1", {"reports": 3})
    assert jobs.claim(db_engine, "x", 100, t=T + 100, node="b:2")
    st = jobs.state(db_engine, "x")
    assert (st["started_at"], st["finished_at"], st["runs"], st["node"]) == (T + 100, None, 2, "b:2")
    assert not jobs.claim(db_engine, "y", 100, t=50)  # a new job is due once its interval passed since 0
    assert jobs.claim(db_engine, "y", 100, t=T)


def test_nodes_claiming_at_the_same_moment_run_it_once(db_engine):
    """Eight nodes, each with its own engine and connection, claim the same run together."""
    url = db_engine.url.render_as_string(hide_password=False)
    engines = [db.make_engine(url, pool_size=1) for _ in range(8)]
    for e in engines:  # connected before the start
        with e.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    start = threading.Barrier(len(engines))
    won = []

    def node(k, e):
        start.wait()
        if jobs.claim(e, "prune", 3600, t=T, node="n:%d" % k):
            won.append(k)
    threads = [threading.Thread(target=node, args=(k, e)) for k, e in enumerate(engines)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    for e in engines:
        e.dispose()
    assert len(won) == 1, won
    st = jobs.state(db_engine, "prune")
    assert st["runs"] == 1 and st["node"] == "n:%d" % won[0]


def test_the_server_prunes_once_per_interval_and_audits_it(db_engine, tmp_path):
    (a,) = enroll(db_engine, "/gov/finance", 1)
    for d in range(10, 0, -1):
        put(db_engine, [item(a, T - d * DAY, seed=d)[0]])
    settings = Settings(data_dir=str(tmp_path), report_retention_days=5, prune_interval=3600)
    nodes = [Maintenance(db_engine, settings) for _ in range(2)]
    assert nodes[0].enabled and nodes[0].poll_seconds() == 60
    out = nodes[0].run_once(t=T)  # reports of days 10..6 ago
    assert out["reports"] == 5 and out["bytes"] > 0 and not out["skipped"]
    assert jobs.state(db_engine, "retention")["detail"] == dict(out, days=5, change_days=400)
    assert nodes[1].run_once(t=T + 60) is None  # the other node: not due
    assert nodes[0].run_once(t=T + 3599) is None
    put(db_engine, [item(a, T + 100, seed=99)[0]])
    # two days later (bodies go by whole UTC days: the cutoff is the start of the day 5 days before): days 5, 4 ago
    assert nodes[1].run_once(t=T + 2 * DAY)["reports"] == 2
    assert nodes[0].run_once(t=T + 2 * DAY) is None
    with db_engine.connect() as conn:
        logged = conn.execute(select(db.audit_log.c.actor, db.audit_log.c.detail).where(
            db.audit_log.c.action == "reports.prune").order_by(db.audit_log.c.id)).all()
        pruned = conn.execute(select(db.reports.c.id).where(db.reports.c.pruned_at.is_not(None))).all()
    assert [(actor, json.loads(d)["reports"]) for actor, d in logged] == [("server", 5), ("server", 2)]
    assert len(pruned) == 7
    assert jobs.state(db_engine, "retention")["runs"] == 2
    assert not Maintenance(db_engine, Settings(data_dir=str(tmp_path), report_retention_days=5, prune_interval=0)).enabled
    assert not Maintenance(db_engine, Settings(data_dir=str(tmp_path), report_retention_days=0,
                                               report_compaction=False, change_retention_days=0)).enabled
    assert Maintenance(db_engine, Settings(data_dir=str(tmp_path), report_retention_days=0,
                                           report_compaction=False)).enabled  # change records past 400 days
    assert Maintenance(db_engine, Settings(data_dir=str(tmp_path), report_retention_days=0)).enabled  # compacts
