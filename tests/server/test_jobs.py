"""Scheduled background jobs run by the server nodes themselves (store/jobs.py, server/maintenance.py)
on a real SQLite file and on the PostgreSQL at 127.0.0.1:5432: a run is claimed by exactly one node
per interval, also when several claim at the same moment on their own connections, and the
retention prune runs through it (audited as the server's)."""
from __future__ import annotations

import json
import threading

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


def test_the_change_digest_is_counted_once_per_interval_between_the_nodes(db_engine, tmp_path):
    from scanner.server.store import change_digest
    from scanner.server.store.scope import Scope
    hosts = enroll(db_engine, "/gov/finance", 2) + enroll(db_engine, "/gov/tax", 1)
    for d in (3, 2, 1):
        put(db_engine, [item(a, T - d * DAY + k, seed=d * 10 + k)[0] for k, a in enumerate(hosts)])
    settings = Settings(data_dir=str(tmp_path), change_digest_interval=300, change_digest_min_records=0,
                        paper_summary_interval=0)
    nodes = [Maintenance(db_engine, settings) for _ in range(2)]
    assert nodes[0]._wait() == 30
    out = nodes[0].run_digest(t=T)
    assert (out["orgs"], out["nodes"]) == (2, 4) and out["records"] > 0 and out["skipped"] is None
    assert nodes[1].run_digest(t=T + 60) is None and nodes[0].run_digest(t=T + 299) is None
    assert jobs.state(db_engine, change_digest.JOB)["detail"] == out
    kept = change_digest.read(db_engine, Scope.everything(), None, 50, max_age=600, t=T + 1)
    assert kept["as_of"] == T and kept["hosts"] == 3 and sum(kept["counts"].values()) > 0
    assert nodes[1].run_digest(t=T + 300)["at"] == T + 300
    assert jobs.state(db_engine, change_digest.JOB)["runs"] == 2
    # the default: only a week of at least 20,000 change records is counted ahead
    small = Maintenance(db_engine, Settings(data_dir=str(tmp_path))).run_digest(t=T + 900)
    assert small["skipped"] == "few_records" and small["orgs"] == 0
    assert change_digest.read(db_engine, Scope.everything(), None, 50, max_age=600, t=T + 901) is None


def test_the_working_paper_summaries_are_made_ahead_once_per_interval_between_the_nodes(db_engine, tmp_path):
    """Job ``paper_summaries`` (store/paper_summaries.py refresh): one node a run makes the summaries of the
    hosts whose latest report changed, within its budget; the kept rows are what the page would make."""
    from scanner.server.store import paper_summaries, queries
    from scanner.server.store.scope import Scope
    from scanner.server.web import rollup
    hosts = enroll(db_engine, "/gov/finance", 3)
    put(db_engine, [item(a, T - DAY + k, seed=k)[0] for k, a in enumerate(hosts)])
    settings = Settings(data_dir=str(tmp_path), paper_summary_interval=60)
    nodes = [Maintenance(db_engine, settings) for _ in range(2)]
    assert nodes[0]._wait() == 6
    assert nodes[0].run_papers(t=T) == {"checked": 3, "made": 3, "bad": 0, "done": True, "next": None}
    assert nodes[1].run_papers(t=T + 30) is None  # not due
    assert nodes[1].run_papers(t=T + 60) == {"checked": 3, "made": 0, "bad": 0, "done": True, "next": None}
    assert jobs.state(db_engine, paper_summaries.JOB)["runs"] == 2
    # what was made ahead is what the page reads, and what it would make from the reports
    _count, listed = queries.latest_hosts(db_engine, Scope.everything(), "/gov/finance")
    with db_engine.connect() as conn:
        kept = conn.execute(select(db.host_papers.c.host_id, db.host_papers.c.stamp)).all()
    ahead = rollup.controls_rollup(paper_summaries.latest(db_engine, listed))
    with db_engine.begin() as conn:
        conn.execute(db.host_papers.delete())
    assert ahead == rollup.controls_rollup(paper_summaries.latest(db_engine, listed)) and ahead["hosts"] == 3
    with db_engine.connect() as conn:
        assert sorted(conn.execute(select(db.host_papers.c.host_id, db.host_papers.c.stamp)).all()) == sorted(kept)
    # a new report of the second host (in id order): a run without budget stops before it and says where;
    # the next run starts there, checks the rest and makes its summary only
    ids = sorted(a.host_id for a in hosts)
    second = [a for a in hosts if a.host_id == ids[1]][0]
    put(db_engine, [item(second, T + 100, seed=7)[0]])
    spent = Maintenance(db_engine, Settings(data_dir=str(tmp_path), paper_summary_budget=0))
    assert spent.run_papers(t=T + 120) == {"checked": 1, "made": 0, "bad": 0, "done": False, "next": ids[0]}
    # work left behind: the next run is due after CATCH_UP budgets (here none: a second), not the interval
    assert spent.run_papers(t=T + 120) is None
    assert spent.run_papers(t=T + 121) == {"checked": 0, "made": 0, "bad": 0, "done": False, "next": ids[0]}
    assert nodes[0].run_papers(t=T + 180) == {"checked": 2, "made": 1, "bad": 0, "done": True, "next": None}
    assert nodes[1].run_papers(t=T + 200) is None  # caught up: the interval again
    assert nodes[1].run_papers(t=T + 240) == {"checked": 3, "made": 0, "bad": 0, "done": True, "next": None}
    # the walk is paged: two hosts a page, from after a host id
    assert paper_summaries.refresh(db_engine, t=T + 300, batch=2) == {"checked": 3, "made": 0, "bad": 0,
                                                                      "done": True, "next": None}
    assert paper_summaries.refresh(db_engine, t=T + 300, after=ids[0])["checked"] == 2
    off = Maintenance(db_engine, Settings(data_dir=str(tmp_path), paper_summary_interval=0, prune_interval=0,
                                          change_digest_interval=0))
    off.start()  # nothing to run: no thread
    assert off.thread is None


def test_the_rule_set_digests_are_kept_ahead_once_per_interval_between_the_nodes(db_engine, tmp_path):
    """Job ``rule_sets`` (store/coverage.py keep_ahead), at the working-paper job's interval and budget: one
    node a run keeps the digest of each host whose profiles' latest reports changed, so that the coverage
    view after it makes none and says what it would have said; SQLite keeps none (it reads the results)."""
    from sqlalchemy import event, text
    from scanner.server.store import coverage
    from scanner.server.store.scope import Scope
    hosts = enroll(db_engine, "/gov/finance", 3)
    put(db_engine, [item(a, T - DAY + k, seed=k)[0] for k, a in enumerate(hosts)])
    settings = Settings(data_dir=str(tmp_path), paper_summary_interval=60)
    nodes = [Maintenance(db_engine, settings) for _ in range(2)]
    pg = db_engine.dialect.name == "postgresql"
    done = {"checked": 3 if pg else 0, "made": 0, "done": True, "next": None}
    assert nodes[0].run_rule_sets(t=T) == dict(done, made=3 if pg else 0)
    assert nodes[1].run_rule_sets(t=T + 30) is None  # not due
    assert nodes[1].run_rule_sets(t=T + 60) == done
    assert jobs.state(db_engine, coverage.JOB)["runs"] == 2
    with db_engine.connect() as conn:
        kept = sorted(conn.execute(select(db.host_rule_sets.c.host_id, db.host_rule_sets.c.digest)).all())
    assert len(kept) == (3 if pg else 0)
    everything = Scope.everything()
    statements = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)
    event.listen(db_engine, "before_cursor_execute", seen)
    try:
        ahead = coverage.coverage(db_engine, everything, "mlps-l3", org="/gov/finance")
    finally:
        event.remove(db_engine, "before_cursor_execute", seen)
    assert not [x for x in statements if "sha256" in x]  # the view made no digest: it read the kept ones
    with db_engine.begin() as conn:
        conn.execute(db.host_rule_sets.delete())
    assert coverage.coverage(db_engine, everything, "mlps-l3", org="/gov/finance") == ahead and ahead["hosts"] == 3
    with db_engine.connect() as conn:  # the view made again what the job had made
        assert sorted(conn.execute(select(db.host_rule_sets.c.host_id, db.host_rule_sets.c.digest)).all()) == kept
    if not pg:
        return
    # a new report of the second host (in id order) makes its digest stale: a run without budget stops before
    # the page holding it and says where (here the start); a walk a host a page stops after the first; the
    # next run starts there and makes that one only
    ids = sorted(a.host_id for a in hosts)
    second = [a for a in hosts if a.host_id == ids[1]][0]
    put(db_engine, [item(second, T + 100, seed=7, fail_rules=["mlps.au.auditd-enabled"])[0]])
    spent = Maintenance(db_engine, Settings(data_dir=str(tmp_path), paper_summary_budget=0))
    assert spent.run_rule_sets(t=T + 120) == {"checked": 0, "made": 0, "done": False, "next": None}
    assert spent.run_rule_sets(t=T + 120) is None and spent.run_rule_sets(t=T + 121)["done"] is False  # catching up
    assert coverage.keep_ahead(db_engine, budget=0, batch=1) == {"checked": 1, "made": 0, "done": False,
                                                                 "next": ids[0]}
    assert coverage.keep_ahead(db_engine, after=ids[0]) == {"checked": 2, "made": 1, "done": True, "next": None}
    with db_engine.connect() as conn:
        now_kept = dict(conn.execute(text("SELECT host_id, profiles FROM host_rule_sets")).all())
        keys = dict(conn.execute(text("SELECT host_id, string_agg(profile || ' ' || report_id, E'\\n' ORDER BY "
                                      "profile) FROM host_profiles GROUP BY host_id")).all())
    assert now_kept == keys  # every kept digest under its host's profiles' latest reports
    assert coverage.keep_ahead(db_engine, batch=1) == {"checked": 3, "made": 0, "done": True, "next": None}
