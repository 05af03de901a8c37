"""The batch writer's store path (scanner/server/batch.py + rawsql.py) on a real SQLite file and
on the PostgreSQL at 127.0.0.1:5432: several reports per transaction, decided like one at a time."""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import queue
import random
import threading
import time
from concurrent.futures import Future

import pytest
from sqlalchemy import func, select

from fleet import make_report
from scanner.server.store import db
from scanner.server.intake import ingest
from scanner.server.access import accounts
from scanner.server.store.scope import Scope
from scanner.server.workflow import waivers
from scanner.server.intake.batch import BatchWriter, Item, store_batch
from scanner.server.errors import ApiError


@pytest.fixture
def engine(db_engine):
    return db_engine


def enroll(engine, org, n):
    from fleet import Agent
    out = []
    for i in range(n):
        a = Agent("%s-host%d" % (org.strip("/").replace("/", "-"), i), machine_id="m%d%s" % (i, org))
        a.host_id = ingest.enroll(engine, accounts.create_token(engine, org, scope=Scope.everything())["token"], a.hostname, a.machine_id,
                                  a.public_key)["host_id"]
        out.append(a)
    return out


def item(agent, collected_at, profile="mlps-l3", report_id=None, fail_rules=None, seed=None, results=True):
    doc = make_report(agent.hostname, machine_id=agent.machine_id, rng=random.Random(seed or collected_at),
                      profile=profile, fail_rules=fail_rules, results=results)
    if report_id:
        doc["report_id"] = report_id
    body = json.dumps(doc).encode()
    return Item(doc["report_id"], agent.host_id, int(time.time()), collected_at, ingest.derive(doc),
                gzip.compress(body), len(body), hashlib.sha256(body).hexdigest()), doc


def put(engine, items):
    with db.write_tx(engine) as conn:
        return store_batch(conn, items)


def put_copy(engine, agent, doc, collected_at, edit=None):
    """Store a copy of ``doc`` as a new report of ``agent`` collected at ``collected_at`` (``edit(copy)``
    changes it first), as intake derives it; returns the copy."""
    d = json.loads(json.dumps(doc))
    d["report_id"] = str(__import__("uuid").uuid4())
    if edit is not None:
        edit(d)
    body = json.dumps(d).encode()
    out = put(engine, [Item(d["report_id"], agent.host_id, int(time.time()), collected_at, ingest.derive(d, lazy=True),
                            gzip.compress(body), len(body), hashlib.sha256(body).hexdigest())])
    assert not isinstance(out[0], Exception), out
    return d


def host_row(engine, host_id):
    with engine.connect() as conn:
        return conn.execute(select(db.hosts).where(db.hosts.c.id == host_id)).mappings().first()


def latest_results(engine, host_id, profile="mlps-l3"):
    r = db.results
    with engine.connect() as conn:
        return {row.rule_id: row for row in conn.execute(
            select(r).where(r.c.host_id == host_id, r.c.profile == profile))}


def count(engine, table, **where):
    q = select(func.count()).select_from(table)
    for k, v in where.items():
        q = q.where(table.c[k] == v)
    with engine.connect() as conn:
        return conn.execute(q).scalar()


def test_newest_report_of_a_batch_wins_whatever_the_arrival_order(engine):
    a, b = enroll(engine, "/gov/finance", 2)
    old, old_doc = item(a, 1000)
    new, new_doc = item(a, 2000, fail_rules=["mlps.ia.password-max-age"])
    other, _ = item(b, 1500, profile="xinchuang")
    acks = put(engine, [new, old, other])
    assert [x["report_id"] for x in acks] == [new.report_id, old.report_id, other.report_id]
    assert count(engine, db.reports) == 3
    h = host_row(engine, a.host_id)
    assert h["latest_report_id"] == new.report_id and h["latest_collected"] == 2000
    assert count(engine, db.components, host_id=a.host_id) == len(new_doc["inventory"]["components"])
    res = latest_results(engine, a.host_id)
    assert len(res) == len(new_doc["results"])
    assert res["mlps.ia.password-max-age"].status == "fail"
    assert {k: v.status for k, v in res.items()} == {x["rule_id"]: x["status"] for x in new_doc["results"]}
    hp = db.host_profiles
    with engine.connect() as conn:
        rows = conn.execute(select(hp.c.host_id, hp.c.profile, hp.c.report_id)).all()
    assert sorted(rows) == sorted([(a.host_id, "mlps-l3", new.report_id), (b.host_id, "xinchuang", other.report_id)])


def test_later_batches_replace_rows_and_keep_history(engine):
    (a,) = enroll(engine, "/gov/finance", 1)
    first, _ = item(a, 1000, seed=1)
    put(engine, [first])
    second, second_doc = item(a, 3000, seed=2)
    backlog, _ = item(a, 2000, seed=3)  # an older report drained from a spool after the newer one
    put(engine, [second])
    put(engine, [backlog])
    h = host_row(engine, a.host_id)
    assert h["latest_report_id"] == second.report_id
    assert h["last_seen"] is not None
    assert count(engine, db.reports, host_id=a.host_id) == 3
    assert count(engine, db.results, host_id=a.host_id) == len(second_doc["results"])  # replaced, not added
    assert count(engine, db.host_profiles, host_id=a.host_id) == 1
    with engine.connect() as conn:
        hp_report = conn.execute(select(db.host_profiles.c.report_id)).scalar()
    assert hp_report == second.report_id
    # a second profile is a second latest-state row beside the first
    xin, xin_doc = item(a, 4000, profile="xinchuang", seed=4)
    put(engine, [xin])
    assert count(engine, db.host_profiles, host_id=a.host_id) == 2
    assert count(engine, db.results, host_id=a.host_id) == len(second_doc["results"]) + len(xin_doc["results"])


def test_duplicates_in_and_across_batches_store_once(engine):
    a, b = enroll(engine, "/gov/finance", 2)
    one, _ = item(a, 1000)
    acks = put(engine, [one, one])
    assert acks[0] == acks[1]
    assert count(engine, db.reports) == 1
    again = put(engine, [one])
    assert again[0] == acks[0]
    stolen, _ = item(b, 1100, report_id=one.report_id)  # same id, other host
    fine, _ = item(b, 1200)
    out = put(engine, [stolen, fine])
    assert isinstance(out[0], ApiError) and out[0].status == 409
    assert out[1]["report_id"] == fine.report_id
    assert count(engine, db.reports) == 2
    assert host_row(engine, b.host_id)["latest_report_id"] == fine.report_id


def test_waivers_are_attached_at_intake_by_scope(engine):
    (a,) = enroll(engine, "/gov/finance/tax", 1)
    (b,) = enroll(engine, "/gov/health", 1)
    rule = "mlps.ia.password-max-age"
    t = int(time.time())
    w = waivers.create_waiver(engine, {"rule_id": rule, "scope": "org", "scope_value": "/gov/finance",
                                       "justification": "legacy system, replaced in Q3", "approver": "CISO",
                                       "expires_at": t + 86400}, actor="test", scope=Scope.everything())
    expired = waivers.create_waiver(engine, {"rule_id": "mlps.ia.ssh-root-login", "scope": "all",
                                             "justification": "short", "approver": "CISO",
                                             "expires_at": t + 2}, actor="test", scope=Scope.everything())
    time.sleep(2.1)
    ia, _ = item(a, 1000, fail_rules=[rule, "mlps.ia.ssh-root-login"])
    ib, _ = item(b, 1000, fail_rules=[rule])
    put(engine, [ia, ib])
    ra, rb = latest_results(engine, a.host_id), latest_results(engine, b.host_id)
    assert ra[rule].waiver_id == w["id"] and ra[rule].waiver_until == t + 86400
    assert rb[rule].waiver_id is None  # another org
    assert ra["mlps.ia.ssh-root-login"].waiver_id is None, expired  # expired before the report came


def test_inventory_only_report_leaves_results_alone(engine):
    (a,) = enroll(engine, "/gov/finance", 1)
    full, full_doc = item(a, 1000)
    put(engine, [full])
    inv, inv_doc = item(a, 2000, results=False, seed=9)
    put(engine, [inv])
    assert host_row(engine, a.host_id)["latest_report_id"] == inv.report_id
    assert count(engine, db.results, host_id=a.host_id) == len(full_doc["results"])
    assert count(engine, db.components, host_id=a.host_id) == len(inv_doc["inventory"]["components"])


def test_writer_retries_a_failed_batch_one_by_one(engine):
    a, b = enroll(engine, "/gov/finance", 2)
    good1, _ = item(a, 1000)
    broken, _ = item(a, 1100)
    broken = broken._replace(collected_at=None)  # no time to order it by: breaks its batch
    good2, _ = item(b, 1200)
    writer = BatchWriter(engine)
    futs = []
    for it in (good1, broken, good2):  # queued before the thread starts: one batch
        f = Future()
        writer.queue.put((it, f))
        futs.append(f)
    writer.thread = threading.Thread(target=writer._run, daemon=True)
    writer.thread.start()
    results = [f.result(timeout=30) for f in futs]
    assert results[0]["report_id"] == good1.report_id
    assert isinstance(results[1], Exception)
    assert results[2]["report_id"] == good2.report_id
    assert count(engine, db.reports) == 2
    assert writer.queue.qsize() == 0 and isinstance(writer.queue, queue.Queue)


HOST_ROW_TABLES = ("results", "components", "result_changes", "component_changes")


def orphans(engine):
    """Rows of the host-owned tables without a foreign key (migration 0031) whose host does not exist."""
    out = {}
    with engine.connect() as conn:
        for name in HOST_ROW_TABLES + ("reports", "host_profiles"):
            t = db.metadata.tables[name]
            out[name] = conn.execute(select(func.count()).select_from(t).where(
                ~t.c.host_id.in_(select(db.hosts.c.id)))).scalar()
    return out


def test_a_report_of_a_host_the_database_does_not_hold_is_refused_alone_and_writes_nothing(engine):
    """The host's latest rows and change records carry no foreign key (a check per row cost PostgreSQL
    more than the insert): the writer itself refuses a report whose host row it cannot lock, without
    failing the reports batched with it, and no row anywhere names a host that does not exist."""
    a, b = enroll(engine, "/gov/integrity", 2)
    first, doc = item(a, 1000, fail_rules=["mlps.ia.faillock"])
    ghost, _ = item(a, 1000, seed=7)
    ghost = ghost._replace(host_id="00000000-0000-4000-8000-000000000000")
    other, _ = item(b, 1000)
    out = put(engine, [first, ghost, other])
    assert out[0]["report_id"] == first.report_id and out[2]["report_id"] == other.report_id
    assert isinstance(out[1], ApiError) and (out[1].status, out[1].code) == (403, "unknown_host")
    # a later report that changes results and components: change records are written too
    put_copy(engine, a, doc, 2000, edit=lambda d: (d["results"][0].update(status="pass" if d["results"][0]["status"]
                                                                           != "pass" else "fail"),
                                                   d["inventory"]["components"].pop()))
    with engine.connect() as conn:
        for name in HOST_ROW_TABLES:
            t = db.metadata.tables[name]
            assert conn.execute(select(func.count()).select_from(t).where(t.c.host_id == a.host_id)).scalar() > 0, name
    assert orphans(engine) == {name: 0 for name in HOST_ROW_TABLES + ("reports", "host_profiles")}
    # a retired host's latest rows go with it (workflow/hosts.py deletes them; nothing cascades)
    from scanner.server.workflow.hosts import retire_host
    retire_host(engine, b.host_id, "decommissioned", "admin", scope=Scope.everything())
    with engine.connect() as conn:
        for name in ("results", "components"):
            t = db.metadata.tables[name]
            assert conn.execute(select(func.count()).select_from(t).where(t.c.host_id == b.host_id)).scalar() == 0
    assert orphans(engine) == {name: 0 for name in HOST_ROW_TABLES + ("reports", "host_profiles")}


def test_latest_state_keeps_evidence_of_open_results_only_and_bounded():
    from scanner.server.intake.ingest import LATEST_ITEMS, derive
    doc = make_report("trim", rng=random.Random(5))
    items = [{"key": "/etc/f%03d" % i, "status": "fail" if i % 2 else "pass"} for i in range(2 * LATEST_ITEMS + 50)]
    doc["results"][0].update(status="fail", items=items, evidence=[{"kind": "file", "value": "v%d" % i} for i in range(80)])
    doc["results"][1].update(status="pass", items=items[:10])
    local = {"justification": "local file", "approver": "ops", "expires": "2099-01-01"}
    doc["results"][2].update(status="waived", waiver=local)
    rows = {r["rule_id"]: json.loads(r["evidence"]) for r in derive(doc)["results"]}
    failed, passed = rows[doc["results"][0]["rule_id"]], rows[doc["results"][1]["rule_id"]]
    assert failed["items_total"] == len(items) and len(failed["items"]) == LATEST_ITEMS
    assert all(i["status"] == "fail" for i in failed["items"]) and len(failed["evidence"]) == 50
    assert failed["reason"]["en"].startswith(doc["results"][0]["rule_id"])
    assert "items" not in passed and "evidence" not in passed and passed["reason"]["en"]
    # the agent's local waiver is kept where there is one, and no "waiver": null where there is none
    assert rows[doc["results"][2]["rule_id"]]["waiver"] == local
    assert "waiver" not in failed and "waiver" not in passed


def test_reevaluating_a_retired_host_does_not_bring_its_latest_state_back(engine):
    from scanner.server.workflow.hosts import retire_host
    from scanner.server.intake.ingest import apply_latest
    a, b = enroll(engine, "/gov/finance", 2)
    it_a, _ = item(a, 1000)
    it_b, doc_b = item(b, 1000)
    put(engine, [it_a, it_b])
    retire_host(engine, a.host_id, "decommissioned", "test", scope=Scope.everything())
    assert count(engine, db.components, host_id=a.host_id) == 0
    for it in (it_a, it_b):  # what `xcscan server reevaluate` does for each stored report
        with db.write_tx(engine) as conn:
            apply_latest(conn, it.host_id, it.report_id, it.collected_at, it.derived)
    assert count(engine, db.components, host_id=a.host_id) == 0
    assert count(engine, db.results, host_id=a.host_id) == 0
    assert count(engine, db.results, host_id=b.host_id) == len(doc_b["results"])


@pytest.mark.parametrize("db_engine", ["postgres"], indirect=True)
def test_host_profile_rows_are_rewritten_in_place(db_engine):
    """Each report rewrites its host's profile row (report id, time): with room left on each page of
    host_profiles (fillfactor, migration 0022) every such update is heap-only (HOT: no new index
    entry; the next visit to the page reclaims the old version), also on pages filled by a first
    round of inserts, where a full page would move every updated row to another page."""
    from sqlalchemy import text
    # this backend's counts not yet flushed to the statistics may span transactions: the batch's
    # updates are the difference across it
    counts = text("SELECT pg_stat_get_xact_tuples_updated('host_profiles'::regclass), "
                  "pg_stat_get_xact_tuples_hot_updated('host_profiles'::regclass)")
    fleet = enroll(db_engine, "/gov/finance", 120)
    for day in (0, 1):
        with db.write_tx(db_engine) as conn:
            before = conn.execute(counts).one()
            outs = store_batch(conn, [item(a, 1_700_000_000 + day * 86400, seed=k + 1)[0] for k, a in enumerate(fleet)])
            assert not any(isinstance(o, Exception) for o in outs)
            after = conn.execute(counts).one()
        if day:
            assert (after[0] - before[0], after[1] - before[1]) == (120, 120)


@pytest.mark.parametrize("db_engine", ["postgres"], indirect=True)
def test_host_rows_are_rewritten_in_place(db_engine):
    """Each report sets its host's last_seen and latest report: no index covers those columns
    (ix_hosts_last_seen dropped, migration 0023) and each page of hosts keeps room for the new
    version (fillfactor 50), so from the second report on every such update is heap-only (HOT). With
    the index none was, and hosts kept ~31 dead rows per live one between vacuums. (The first report
    fills the latest-report columns an enrolled row has empty, so some rows outgrow their page.)"""
    from sqlalchemy import text
    # this backend's counts not yet flushed to the statistics (they may span transactions): the batch's
    # updates are the difference across it
    counts = text("SELECT pg_stat_get_xact_tuples_updated('hosts'::regclass), "
                  "pg_stat_get_xact_tuples_hot_updated('hosts'::regclass)")
    fleet = enroll(db_engine, "/gov/finance", 120)
    for day in (0, 1, 2):
        with db.write_tx(db_engine) as conn:
            before = conn.execute(counts).one()
            outs = store_batch(conn, [item(a, 1_700_000_000 + day * 86400, seed=k + 1)[0] for k, a in enumerate(fleet)])
            assert not any(isinstance(o, Exception) for o in outs)
            after = conn.execute(counts).one()
        updated, hot = after[0] - before[0], after[1] - before[1]
        assert updated == 120
        if day:
            assert hot == 120
    with db_engine.connect() as conn:
        latest = dict(conn.execute(select(db.hosts.c.id, db.hosts.c.latest_collected)).all())
    assert latest == {a.host_id: 1_700_000_000 + 2 * 86400 for a in fleet}


def test_hosts_that_stopped_reporting_are_counted_and_sorted_without_an_index(engine):
    """The views that read hosts.last_seen (no index on it since migration 0023): the overview's
    hosts that have not reported for 3 days (never reported counts too; per org subtree) and the
    hosts list sorted by last seen, both ways."""
    from scanner.server.store import queries
    fin, health = enroll(engine, "/gov/finance", 3), enroll(engine, "/gov/health", 2)
    put(engine, [item(a, 1_700_000_000, seed=k + 1)[0] for k, a in enumerate(fin + health[:1])])  # health[1]: never
    now = int(time.time())
    with db.write_tx(engine) as conn:
        for a, ago in ((fin[0], 4 * 86400), (fin[1], 2 * 86400), (health[0], 3 * 86400 + 600)):
            conn.execute(db.hosts.update().where(db.hosts.c.id == a.host_id).values(last_seen=now - ago))
    everything = Scope.everything()
    assert queries.overview(engine, everything)["stale_hosts"] == 3  # fin[0], health[0], health[1]
    assert queries.overview(engine, everything, org="/gov/finance")["stale_hosts"] == 1
    assert queries.overview(engine, everything, org="/gov/health")["stale_hosts"] == 2
    order = [fin[0].host_id, fin[1].host_id, fin[2].host_id]
    assert [h["id"] for h in queries.list_hosts(engine, everything, org="/gov/finance", sort="last_seen")] == order
    assert [h["id"] for h in queries.list_hosts(engine, everything, org="/gov/finance", sort="last_seen",
                                                 desc=True)] == order[::-1]


def test_lazy_rows_make_only_what_is_written_and_store_what_full_rows_would(engine, monkeypatch):
    """Intake derives result rows lazily (ingest.LatestRow): a row's texts (titles, actual, expected,
    evidence) are made only when the writer needs them, i.e. for rows it inserts or rewrites; an
    unchanged row is told by its digest of the report's result object. What is stored is exactly
    what the fully derived rows store, and a change in any field of a result object rewrites its row."""
    a, b = enroll(engine, "/gov/lazy", 2)
    made = []
    real = ingest.latest_texts
    monkeypatch.setattr(ingest, "latest_texts", lambda r: made.append(r["rule_id"]) or real(r))
    doc = make_report(a.hostname, machine_id=a.machine_id, rng=random.Random(5), fail_rules=[
        "mlps.ia.ssh-root-login"])

    def stored(host_id):
        cols = ("rule_id", "title_zh", "title_en", "category", "severity", "status", "actual", "expected",
                "evidence", "row_hash")
        return {rid: tuple(getattr(row, c) for c in cols) for rid, row in latest_results(engine, host_id).items()}

    def submit(agent, doc, t, lazy):
        doc = json.loads(json.dumps(doc))
        doc["report_id"] = str(__import__("uuid").uuid4())
        doc["host"]["machine_id"] = agent.machine_id
        derived = ingest.derive(doc, lazy=lazy)
        body = json.dumps(doc).encode()
        out = put(engine, [Item(doc["report_id"], agent.host_id, int(time.time()), t, derived, gzip.compress(body),
                                len(body), hashlib.sha256(body).hexdigest())])
        assert not isinstance(out[0], Exception), out
        return derived

    submit(a, doc, 1_700_000_000, lazy=True)
    assert sorted(made) == sorted(r["rule_id"] for r in doc["results"])  # a first report: every row inserted
    submit(b, doc, 1_700_000_000, lazy=False)
    assert stored(a.host_id) == stored(b.host_id)
    # the next report: one result's evidence text and another's status changed, the rest alike
    changed = [r for r in doc["results"] if r["status"] == "pass"][:2]
    changed[0]["evidence"] = ["a new piece of evidence"]
    changed[0]["status"] = "fail"
    changed[1]["expected"] = {"new": "expectation"}
    del made[:]
    submit(a, doc, 1_700_086_400, lazy=True)
    assert sorted(made) == sorted({changed[0]["rule_id"], changed[1]["rule_id"]})
    submit(b, doc, 1_700_086_400, lazy=False)
    now_a, now_b = stored(a.host_id), stored(b.host_id)
    assert now_a == now_b
    assert "a new piece of evidence" in now_a[changed[0]["rule_id"]][8]
    assert json.loads(now_a[changed[1]["rule_id"]][7]) == {"new": "expectation"}
    assert now_a[changed[0]["rule_id"]][5] == "fail"


def test_unchanged_profile_moves_nothing_but_a_round_trip_in_one_batch_is_recorded(engine):
    """A report whose results are all as stored writes no result row, moves no aggregate and
    records no change; a batch holding a change and its reversal for the same host (A stored, then
    B and A again in one batch) records both changes and leaves the aggregates equal to a recount."""
    from scanner.server.store import aggregates
    (a,) = enroll(engine, "/gov/roundtrip", 1)
    rule = "mlps.ia.ssh-root-login"
    first, doc = item(a, 1_700_000_000, fail_rules=[rule], seed=3)
    assert not isinstance(put(engine, [first])[0], Exception)

    def again(doc, t, status=None):
        doc = json.loads(json.dumps(doc))
        doc["report_id"] = str(__import__("uuid").uuid4())
        if status:
            next(r for r in doc["results"] if r["rule_id"] == rule)["status"] = status
        body = json.dumps(doc).encode()
        return Item(doc["report_id"], a.host_id, int(time.time()), t, ingest.derive(doc, lazy=True),
                    gzip.compress(body), len(body), hashlib.sha256(body).hexdigest())

    def snapshot():
        with engine.connect() as conn:
            return (aggregates.snapshot(conn), conn.execute(select(func.count()).select_from(db.result_changes)).scalar(),
                    latest_results(engine, a.host_id)[rule].status)

    before = snapshot()
    assert not isinstance(put(engine, [again(doc, 1_700_086_400)])[0], Exception)
    assert snapshot() == before  # nothing moved, nothing recorded
    outs = put(engine, [again(doc, 1_700_172_800, status="pass"), again(doc, 1_700_259_200)])
    assert not any(isinstance(o, Exception) for o in outs)
    aggs, n_changes, status = snapshot()
    assert (aggs, status) == (before[0], "fail") and n_changes == before[1] + 2
    with engine.connect() as conn:
        assert aggregates.check(conn) == []
        rows = conn.execute(select(db.result_changes.c.status_before, db.result_changes.c.status_after)
                            .where(db.result_changes.c.host_id == a.host_id, db.result_changes.c.rule_id == rule)
                            .order_by(db.result_changes.c.at)).all()
    assert [tuple(r) for r in rows] == [("fail", "pass"), ("pass", "fail")]


def test_a_report_that_changes_no_result_still_moves_its_waiver_pointers(engine):
    """A report whose results are all as stored (every digest the same) still rewrites a row whose
    waiver pointer differs: a waiver that expired since the last report is taken off the row, and one
    the stored rows do not show yet (approved while the report was on its way, before refresh_rule
    ran) is put on it. The aggregates stay equal to a recount."""
    from sqlalchemy import update
    from scanner.server.store import aggregates
    (a,) = enroll(engine, "/gov/pointers", 1)
    rule = "mlps.ia.ssh-root-login"
    first, doc = item(a, 1_700_000_000, fail_rules=[rule], seed=3)
    assert not isinstance(put(engine, [first])[0], Exception)

    def again(t):
        put_copy(engine, a, doc, t)
        with engine.connect() as conn:
            assert aggregates.check(conn) == []
        row = latest_results(engine, a.host_id)[rule]
        return row.waiver_id, row.waiver_until

    t = int(time.time())
    spec = {"rule_id": rule, "scope": "all", "justification": "replaced next quarter", "approver": "CISO"}
    short = waivers.create_waiver(engine, dict(spec, expires_at=t + 2), actor="test", scope=Scope.everything())
    assert latest_results(engine, a.host_id)[rule].waiver_id == short["id"]  # refresh_rule put it on
    time.sleep(2.1)
    assert again(1_700_086_400) == (None, None)  # expired: the same report takes it off
    late = waivers.request_waiver(engine, dict(spec, expires_at=t + 86400), actor="test", scope=Scope.everything())
    with db.write_tx(engine) as conn:  # approved, its refresh of the stored rows not run yet
        conn.execute(update(db.waivers).where(db.waivers.c.id == late["id"]).values(state="approved"))
    assert latest_results(engine, a.host_id)[rule].waiver_id is None
    assert again(1_700_172_800) == (late["id"], t + 86400)
    assert again(1_700_259_200) == (late["id"], t + 86400)  # and as stored after that


def test_a_rule_failing_in_two_profiles_stays_failing_until_both_fix_it(engine):
    """The writer moves the aggregates by the rows that changed alone (an unchanged row's counts
    cancel) and recomputes a host's failing map (a rule counts once, at its earliest cover and worst
    severity over the host's profiles) for the rules of those rows over all its profiles: a rule one
    profile fixes stays failing while the other still fails it, and stops when both fixed it. The
    aggregates equal a recount after every batch, and each report records the one change it made."""
    from scanner.server.store import aggregates
    (a,) = enroll(engine, "/gov/two-profiles", 1)
    rule = "mlps.ia.ssh-root-login"
    docs = {}
    for profile in ("mlps-l3", "xinchuang"):
        it, docs[profile] = item(a, 1_700_000_000, profile=profile, fail_rules=[rule], seed=11)
        assert not isinstance(put(engine, [it])[0], Exception)

    def report(profile, t, status):
        def edit(d):
            next(r for r in d["results"] if r["rule_id"] == rule)["status"] = status
        docs[profile] = put_copy(engine, a, docs[profile], t, edit)
        with engine.connect() as conn:
            assert aggregates.check(conn) == []
            failing = conn.execute(select(func.coalesce(func.sum(db.rule_failing.c.hosts), 0))
                                   .where(db.rule_failing.c.rule_id == rule)).scalar()
            recorded = conn.execute(select(db.result_changes.c.profile, db.result_changes.c.rule_id,
                                           db.result_changes.c.status_before, db.result_changes.c.status_after)
                                    .where(db.result_changes.c.at == t)).all()
        return failing, [tuple(r) for r in recorded]

    assert report("mlps-l3", 1_700_086_400, "pass") == (1, [("mlps-l3", rule, "fail", "pass")])
    assert report("xinchuang", 1_700_172_800, "pass") == (0, [("xinchuang", rule, "fail", "pass")])
    assert report("mlps-l3", 1_700_259_200, "fail") == (1, [("mlps-l3", rule, "pass", "fail")])


def test_org_sums_move_only_for_hosts_whose_counted_values_change(engine, monkeypatch):
    """The writer leaves out of the org sums' subtract-and-add-back the hosts whose latest values and
    host profiles stay as stored, and only those: a repeat report, then one changing only a
    component's origin (loc counts), only the score, only a waiver-free status flip, and a new
    profile each move their host, and the org sums equal a recount after every batch."""
    from scanner.server.store import aggregates
    from scanner.server.intake import batch
    a, b = enroll(engine, "/gov/orgsums", 2)
    first_a, doc_a = item(a, 1_700_000_000, seed=5)
    first_b, doc_b = item(b, 1_700_000_000, seed=6)
    assert not any(isinstance(o, Exception) for o in put(engine, [first_a, first_b]))
    adjusted = []
    real = batch._org_delta

    def recorded(changed, *args):
        delta = real(changed, *args)
        adjusted.append((list(changed), sorted(delta.oh), sorted(delta.op)))
        return delta
    monkeypatch.setattr(batch, "_org_delta", recorded)

    def again(agent, doc, t, change=None, profile=None):
        doc = json.loads(json.dumps(doc))
        doc["report_id"] = str(__import__("uuid").uuid4())
        if change:
            change(doc)
        if profile:
            doc["summary"]["profile"] = profile
        body = json.dumps(doc).encode()
        return Item(doc["report_id"], agent.host_id, int(time.time()), t, ingest.derive(doc, lazy=True),
                    gzip.compress(body), len(body), hashlib.sha256(body).hexdigest())

    def flip_origin(doc):
        c = doc["inventory"]["components"][0]
        c["origin"] = "foreign" if c.get("origin") == "domestic" else "domestic"

    def rescore(doc):
        doc["summary"]["score"] = (doc["summary"].get("score") or 0) + 1.5

    def flip_status(doc):
        r = doc["results"][0]
        r["status"] = "pass" if r["status"] == "fail" else "fail"

    t = 1_700_000_000
    for change, profile, moved in ((None, None, []), (flip_origin, None, [a.host_id]), (rescore, None, [a.host_id]),
                                   (flip_status, None, [a.host_id]), (None, None, []),
                                   (None, "mlps-l2", [a.host_id])):
        t += 86_400
        del adjusted[:]
        outs = put(engine, [again(a, doc_a, t, change, profile), again(b, doc_b, t)])
        assert not any(isinstance(o, Exception) for o in outs)
        assert [x[0] for x in adjusted] == [moved]
        oh, op = adjusted[0][1:]
        assert oh == (["/gov/orgsums"] if change is flip_origin else [])  # the loc counts: org_hosts only
        assert [k[:2] for k in op] == ([("/gov/orgsums", profile or "mlps-l3")] if moved and change is not flip_origin
                                       else [])
        if change:
            change(doc_a)
        with engine.connect() as conn:
            assert aggregates.check(conn) == []


def test_a_late_report_drops_the_rollups_from_its_day_on_in_every_table(engine):
    """A report collected on a day already rolled up drops that day and the later ones from
    daily_rollups, daily_loc and rollup_days (one statement on PostgreSQL), and keeps the days
    before it; the roll-ups computed again equal a fresh computation."""
    from scanner.server.store import rollups
    (a,) = enroll(engine, "/gov/late", 1)
    today = rollups.today()
    for d in range(6, 0, -1):
        outs = put(engine, [item(a, (today - d) * 86_400 + 3_600, seed=d)[0]])
        assert not isinstance(outs[0], Exception)
    assert rollups.ensure(engine, 6) == 6

    def days(table):
        with engine.connect() as conn:
            return sorted({row[0] for row in conn.execute(select(table.c.day))})

    assert days(db.rollup_days) == list(range(today - 6, today))
    assert days(db.daily_rollups) == days(db.daily_loc) == list(range(today - 6, today))
    late = (today - 3) * 86_400 + 7_200
    assert not isinstance(put(engine, [item(a, late, seed=99)[0]])[0], Exception)
    for table in rollups.INVALIDATED:
        assert days(table) == list(range(today - 6, today - 3)), table.name
    assert rollups.ensure(engine, 6) == 3
    assert days(db.rollup_days) == days(db.daily_rollups) == list(range(today - 6, today))


def _intake(engine, tmp_path, max_wait):
    from scanner.server.settings import Settings
    writer = BatchWriter(engine, max_wait=max_wait)
    sizes = []
    writer.on_batch = lambda n, _s: sizes.append(n)
    return ingest.Intake(engine, Settings(data_dir=str(tmp_path)), writer=writer), writer, sizes


def _signed(agent, doc=None, body=None):
    body = body if body is not None else json.dumps(doc or agent.report()).encode()
    h = agent.headers(body)
    return gzip.compress(body), "gzip", agent.host_id, h["X-Xcscan-Timestamp"], h["X-Xcscan-Signature"]


def test_reports_announced_while_one_is_stored_join_its_batch(engine, tmp_path, monkeypatch):
    """Group commit: a report whose request is being verified and derived when the writer takes an
    earlier one (announced by Intake before it queues for the CPU) is stored in the same transaction,
    and each is acknowledged after that commit."""
    a, b, c = enroll(engine, "/gov/group", 3)
    intake, writer, sizes = _intake(engine, tmp_path, max_wait=10)
    assert intake.submit(*_signed(c))["status"] == "accepted"  # the writer thread is running
    del sizes[:]
    real = ingest.derive

    def slow(doc, lazy=False):  # the second report's CPU work outlasts the first one's commit
        if doc["host"]["hostname"] != slow.first:
            time.sleep(0.3)
        return real(doc, lazy)
    slow.first = None
    monkeypatch.setattr(ingest, "derive", slow)
    real_parse = ingest.parse_report

    def parse(body):
        doc = real_parse(body)
        slow.first = slow.first or doc["host"]["hostname"]
        return doc
    monkeypatch.setattr(ingest, "parse_report", parse)
    acks = {}
    with intake.cpu:  # both requests announced, waiting for the CPU
        threads = [threading.Thread(target=lambda ag=ag: acks.__setitem__(ag.host_id, intake.submit(*_signed(ag))))
                   for ag in (a, b)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while writer.announced < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert writer.announced == 2
    started = time.monotonic()
    for t in threads:
        t.join(30)
    assert sorted(acks) == sorted([a.host_id, b.host_id])
    assert all(x["status"] == "accepted" for x in acks.values())
    assert sizes == [2]
    assert time.monotonic() - started < 10  # the second arrived: no wait for the bound
    assert writer.announced == 0
    assert count(engine, db.reports) == 3


def test_an_announcement_never_fulfilled_delays_a_batch_at_most_the_bound(engine):
    a, b = enroll(engine, "/gov/bound", 2)
    writer = BatchWriter(engine, max_wait=0.5)
    sizes = []
    writer.on_batch = lambda n, _s: sizes.append(n)
    writer.announce()  # a report that never comes
    started = time.monotonic()
    assert writer.write(item(a, 1000)[0])["status"] == "accepted"
    took = time.monotonic() - started
    assert 0.5 <= took < 5
    writer.withdraw()
    assert writer.announced == 0
    started = time.monotonic()  # nothing announced: committed at once
    assert writer.write(item(b, 1000)[0])["status"] == "accepted"
    assert time.monotonic() - started < 0.5
    assert sizes == [1, 1]


@pytest.mark.parametrize("linger", [0.4, 0])
def test_under_load_the_writer_lingers_for_the_next_report_and_not_after_a_quiet_spell(engine, linger):
    """Reports coming back to back (the first item of a batch came within ``busy_gap`` of the last
    acknowledgement): the writer waits up to ``linger`` for a report to be announced, and stores it
    in the same transaction. After a quiet spell a lone report commits at once."""
    a, b, c, d = enroll(engine, "/gov/linger%d" % int(linger * 10), 4)
    writer = BatchWriter(engine, max_wait=5, linger=linger, busy_gap=0.6)
    sizes = []
    writer.on_batch = lambda n, _s: sizes.append(n)
    started = time.monotonic()
    assert writer.write(item(a, 1000)[0])["status"] == "accepted"  # the first: nothing before it
    assert time.monotonic() - started < 0.35
    acks = []
    first = threading.Thread(target=lambda: acks.append(writer.write(item(b, 1000)[0])))
    first.start()  # at once: back to back
    time.sleep(0.1)
    writer.announce()  # the next report arrives while the writer has b
    time.sleep(0.05)
    second = threading.Thread(target=lambda: acks.append(writer.write(item(c, 1000)[0], announced=True)))
    second.start()
    first.join(10)
    second.join(10)
    assert [x["status"] for x in acks] == ["accepted", "accepted"]
    assert sizes == ([1, 2] if linger else [1, 1, 1])
    time.sleep(0.8)  # quiet
    started = time.monotonic()
    assert writer.write(item(d, 1000)[0])["status"] == "accepted"
    assert time.monotonic() - started < 0.35
    assert writer.announced == 0


def test_a_refused_report_leaves_no_announcement_behind(engine, tmp_path, monkeypatch):
    """Every way a submission fails before its item is queued ends its announcement: the next
    report is stored at once, not after the writer's maximum wait."""
    a, = enroll(engine, "/gov/refused", 1)
    intake, writer, sizes = _intake(engine, tmp_path, max_wait=10)
    raw, enc, host, ts, sig = _signed(a)
    bad_sig = base64.b64encode(b"\0" * 64).decode()
    refusals = [
        ((raw, enc, host, ts, bad_sig), "bad_signature"),
        (_signed(a, body=b'{"schema": "xcscan.report/1", '), "bad_json"),
        ((b"not gzip", enc, host, ts, sig), "bad_gzip"),
        (_signed(a, doc=dict(a.report(), host={"machine_id": "someone else"})), "host_mismatch"),
    ]
    for args, code in refusals:
        with pytest.raises(ApiError) as exc:
            intake.submit(*args)
        assert exc.value.code == code
        assert writer.announced == 0

    def broken(doc, lazy=False):
        raise RuntimeError("a bug in derive")
    monkeypatch.setattr(ingest, "derive", broken)
    with pytest.raises(RuntimeError):
        intake.submit(raw, enc, host, ts, sig)
    assert writer.announced == 0
    monkeypatch.undo()
    started = time.monotonic()
    assert intake.submit(raw, enc, host, ts, sig)["status"] == "accepted"
    assert time.monotonic() - started < 5
    assert writer.announced == 0 and sizes == [1]


def test_select_by_keys_finds_keys_that_need_quoting(engine):
    """rawsql's selects by key send strings as one text array literal on PostgreSQL: quotes,
    backslashes, commas, braces, spaces and the word NULL are elements like any other."""
    from types import SimpleNamespace
    from scanner.server.store import rawsql
    keys = ['a"b', "c\\d", "e,f", "{g}", " h ", "NULL", "", "中文", "it's", 'x\\"y']
    table = SimpleNamespace(name="xc_keys_test")
    with db.write_tx(engine) as conn:
        raw = conn.connection.driver_connection
        raw.execute("CREATE TEMP TABLE xc_keys_test (k TEXT, n INTEGER)")
        cur = raw.cursor()
        marks = "(%s, %s)" if engine.dialect.name == "postgresql" else "(?, ?)"
        cur.executemany("INSERT INTO xc_keys_test (k, n) VALUES " + marks, [(k, i) for i, k in enumerate(keys + ["other"])])
        cur.close()
        sql = rawsql.for_connection(conn)
        assert sorted(sql.select_in(table, ("k",), "k", keys)) == sorted((k,) for k in keys)
        assert sql.select_in(table, ("k",), "k", []) == []
        assert sorted(sql.select_in(table, ("n",), "n", [1, 3])) == [(1,), (3,)]  # not strings: a list
        got = sql.select_many([(table, ("k",), "k", keys[:3]), (table, ("k",), "k", ["other", "missing"], True)])
        assert sorted(got[0]) == sorted((k,) for k in keys[:3]) and got[1] == [("other",)]


@pytest.mark.parametrize("db_engine", ["postgres"], indirect=True)  # prepared statements are PostgreSQL's
def test_org_sums_are_written_from_the_values_read_never_from_a_join(db_engine):
    """The batch writer adds the org sums' changes it computed from the host and host profile rows
    it read under the host lock (aggregates.OrgDelta): one upsert per table whose rows come from its
    parameter. It used to subtract and add back each moved host's share with a join of hosts and
    host_profiles, planned per batch: psycopg prepares a query from its fifth run on a connection,
    and a generic plan of that join made while the tables were small seq-scanned both in a nested
    loop for every later batch (~100 ms of PostgreSQL CPU per report at 1,000 hosts)."""
    engine = db_engine
    assert engine.dialect.name == "postgresql"
    from scanner.server.store import aggregates, rawsql
    agents = enroll(engine, "/plans", 8)
    with db.write_tx(engine) as conn:
        for k in range(3):  # each batch moves the org sums: new host profiles, then changed scores
            for i, a in enumerate(agents):
                store_batch(conn, [item(a, 1700000000 + k * 3600 + i, seed="p%d-%d" % (k, i))[0]])
        raw = rawsql.for_connection(conn).raw
        prepared = [row[0] for row in raw.execute("SELECT statement FROM pg_prepared_statements").fetchall()]
    with engine.connect() as conn:
        assert aggregates.check(conn) == []
    org_sums = [s for s in prepared if "INSERT INTO org_profiles" in s or "INSERT INTO org_hosts" in s]
    # enrollment adds one host to org_hosts through aggregates.adjust_orgs (SQLAlchemy, its id IN (...))
    written = [s for s in org_sums if "IN (" not in s]
    assert len(written) == 2, org_sums  # both written by most batches (more than five times: prepared)
    assert all("json_to_recordset" in s and " JOIN " not in s and "FROM hosts" not in s for s in written), written


@pytest.mark.parametrize("db_engine", ["postgres"], indirect=True)  # the plan is PostgreSQL's
def test_updates_by_key_walk_the_key_index_not_the_table(db_engine):
    """PostgreSQL estimates a json_to_recordset at 100 rows whatever it holds; against a table of a few
    thousand rows (components at 1,000 hosts) the writer's UPDATE ... FROM the JSON rows then scanned
    and hashed the whole table for a handful of changed rows. rawsql gives the rows their count (a
    LIMIT), so the update and the delete by keys walk the key index, in the plan made for the values
    and in the generic one a prepared statement may keep."""
    import sqlalchemy as sa
    from psycopg import sql as psql
    from scanner.server.store import rawsql
    engine = db_engine
    table = sa.Table("xc_update_plan", sa.MetaData(), sa.Column("k", sa.String(36)), sa.Column("seq", sa.Integer),
                     sa.Column("v", sa.String(64)), prefixes=["TEMPORARY"])
    with db.write_tx(engine) as conn:
        table.create(conn)
        conn.execute(sa.text("CREATE UNIQUE INDEX ON xc_update_plan (k, seq)"))
        conn.execute(table.insert(), [{"k": "host-%04d" % i, "seq": j, "v": "1.%d" % j} for i in range(600)
                                      for j in range(6)])
        conn.execute(sa.text("ANALYZE xc_update_plan"))
        sql = rawsql.for_connection(conn)
        rows = [("host-%04d" % i, 2, "2.0") for i in (5, 77, 301)]
        text = sql.update_sql(table, ("k", "seq"), ("v",))
        param = json.dumps([dict(zip(("k", "seq", "v"), r)) for r in rows])
        raw = sql.raw
        raw.execute("PREPARE xc_upd (json, int) AS " + text.replace("%s", "$1", 1).replace("%s", "$2", 1))
        for mode in ("force_custom_plan", "force_generic_plan"):
            raw.execute("SET LOCAL plan_cache_mode = " + mode)
            plan = "\n".join(r[0] for r in raw.execute(psql.SQL("EXPLAIN EXECUTE xc_upd ({}, {})").format(
                psql.Literal(param), psql.Literal(len(rows)))))
            assert "Seq Scan on xc_update_plan" not in plan and "Index Scan" in plan, (mode, plan)
        raw.execute("DEALLOCATE xc_upd")
        sql.update(table, ("k", "seq"), ("v",), rows)
        sql.delete(table, ("k", "seq"), [("host-0005", 0), ("host-0077", 1)])
        got = conn.execute(sa.text("SELECT k, seq, v FROM xc_update_plan WHERE k IN ('host-0005', 'host-0077', "
                                   "'host-0301') AND seq < 3 ORDER BY k, seq")).all()
    assert [tuple(r) for r in got] == [("host-0005", 1, "1.1"), ("host-0005", 2, "2.0"), ("host-0077", 0, "1.0"),
                                       ("host-0077", 2, "2.0"), ("host-0301", 0, "1.0"), ("host-0301", 1, "1.1"),
                                       ("host-0301", 2, "2.0")]


def test_inserted_rows_keep_every_value_in_and_out_of_a_pipeline(engine):
    """rawsql.insert sends a few rows without a binary column as one JSON array on PostgreSQL (in a
    pipeline or not; more rows: COPY): every value comes back as given, whatever its characters,
    NULLs, 64-bit integers and floats to the last digit."""
    import sqlalchemy as sa
    from scanner.server.store import rawsql
    table = sa.Table("xc_insert_test", sa.MetaData(), sa.Column("k", sa.Integer), sa.Column("t", sa.Text),
                     sa.Column("v", sa.String(64)), sa.Column("big", sa.BigInteger), sa.Column("f", sa.Float),
                     prefixes=["TEMPORARY"])
    texts = ['a"b', "c\\d", "e\nf\tg", "中文：符合", "\u2028\u2029", "emoji \U0001F600", "{}[],:", "null", "",
             "\\u0000 as text", "x" * 5000]
    floats = [0.1, 85.3, 1e-300, -2.5e300, 100.0, 1 / 3.0]
    cols = ("k", "t", "v", "big", "f")
    rows = [(i, texts[i % len(texts)], None if i % 3 == 0 else "v%d" % i, 2 ** 62 + i if i % 2 else None,
             floats[i % len(floats)] if i % 4 else None) for i in range(60)]
    many = [(1000 + i, "row %d" % i, None, i, i / 7.0) for i in range(rawsql.PIPELINE_INSERT_ROWS + 1)]
    with db.write_tx(engine) as conn:
        table.create(conn)
        sql = rawsql.for_connection(conn)
        sql.insert(table, cols, rows[:20])  # outside a pipeline
        sql.begin_pipeline()
        sql.insert(table, cols, rows[20:50])  # riding one
        sql.insert(table, cols, many)  # more: COPY on PostgreSQL, between two pipelines
        sql.insert(table, cols, rows[50:])
        sql.end_pipeline()
        got = [tuple(r) for r in conn.execute(sa.text("SELECT k, t, v, big, f FROM xc_insert_test ORDER BY k"))]
    assert got == rows + many
