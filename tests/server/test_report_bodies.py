"""Compacted report bodies (scanner/server/store/bodies.py) and retention by partition (store/retention.py)
on a real SQLite file and on the PostgreSQL at 127.0.0.1:5432: every stored body reads back byte for byte
after compaction, rebases and retention, and its Ed25519 signature still verifies; a damaged delta or base
is an error, never other bytes; on PostgreSQL retention drops daily partitions, keeps what the hosts'
latest state needs readable and makes the rest 410; two nodes at once compact each body once; the
migration carries existing bodies over."""
from __future__ import annotations

import copy
import gzip
import hashlib
import json
import random
import threading
import uuid

import pytest
from sqlalchemy import func, select, update

from scanner.server.errors import ApiError
from scanner.server.intake import ingest
from scanner.server.intake.batch import Item
from scanner.server.store import bodies, db, migrate, queries, retention
from scanner.server.store.reports import Pruned, readable_document
from scanner.server.store.scope import Scope
from test_batch_store import enroll, put

EVERYTHING = Scope.everything()
DAY = 86400
T = 1_800_000_000


@pytest.fixture
def engine(db_engine):
    return db_engine


class Fleet(object):
    """Hosts whose daily reports change a little each day (a few results flip, a package version moves),
    signed as the agent signs them; keeps every body and signature."""

    def __init__(self, engine, n, org="/gov/finance"):
        from fleet import make_report
        self.engine = engine
        self.agents = enroll(engine, org, n)
        self.docs = [make_report(a.hostname, machine_id=a.machine_id, rng=random.Random(i), profile="mlps-l3")
                     for i, a in enumerate(self.agents)]
        self.sent = {}  # report id -> (agent, timestamp, body, signature)
        self.rng = random.Random(5)

    def day(self, t, which=None, churn=False):
        items = []
        for i, a in enumerate(self.agents):
            if which is not None and i not in which:
                continue
            doc = self.docs[i]
            doc["report_id"] = str(uuid.uuid4())
            if churn:  # a different host altogether: the delta is too big, a rebase
                from fleet import make_report
                doc = self.docs[i] = make_report(a.hostname, machine_id=a.machine_id, rng=random.Random(t),
                                                 profile="mlps-l3")
            for r in self.rng.sample(doc["results"], min(2, len(doc["results"]))):
                r["status"] = {"pass": "fail", "fail": "pass"}.get(r["status"], r["status"])
            doc.setdefault("facts", {})["day"] = t  # what changes every day
            body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
            ts = str(t)
            sig = a.key.sign(ingest.SIGN_PREFIX + a.host_id.encode() + b"\n" + ts.encode() + b"\n" + body)
            self.sent[doc["report_id"]] = (a, ts, body, sig)
            items.append(Item(doc["report_id"], a.host_id, t, t, ingest.derive(copy.deepcopy(doc)), gzip.compress(body),
                              len(body), hashlib.sha256(body).hexdigest()))
        assert not any(isinstance(x, Exception) for x in put(self.engine, items))


def kinds(engine):
    r = db.reports
    with engine.connect() as conn:
        return dict(conn.execute(select(r.c.body_kind, func.count()).group_by(r.c.body_kind)).all())


def check_all(engine, fleet, pruned=()):
    """Every sent report reads back exactly (or is pruned, when listed in ``pruned``); returns how many read."""
    n = 0
    with engine.connect() as conn:
        for rid, (a, ts, body, sig) in fleet.sent.items():
            if rid in pruned:
                with pytest.raises(Pruned):
                    bodies.signed_body(conn, rid)
                continue
            got = bodies.signed_body(conn, rid)
            assert got == body, rid
            ingest.verify_signature(a.public_key, a.host_id, ts, got, sig)  # raises if it does not verify
            n += 1
    for rid in list(fleet.sent)[:5]:
        if rid not in pruned:
            assert readable_document(queries.get_report(engine, EVERYTHING, rid)) == json.loads(fleet.sent[rid][2])
    return n


def pruned_ids(engine):
    r = db.reports
    with engine.connect() as conn:
        return {x[0] for x in conn.execute(select(r.c.id).where(r.c.pruned_at.is_not(None)))}


def test_every_body_reads_back_byte_for_byte_through_compaction_rebase_and_retention(engine):
    fleet = Fleet(engine, 3)
    for d in range(20, 0, -1):
        fleet.day(T - d * DAY, churn=(d in (12, 4)))  # two days every host changes wholesale: rebases
    assert check_all(engine, fleet) == 60  # inline (gzip), as intake stored them
    with engine.connect() as conn:  # closed before the job runs: an open read would block its partition attach
        inline = bodies.stored_bytes(conn)["inline"]
    out = retention.prune(engine, 0, t=T)
    assert out["compacted"] == 60 and out["bases"] == 9 and out["unreadable"] == 0  # first + 2 rebases a host
    assert kinds(engine) == {bodies.STORED: 60}
    with engine.connect() as conn:
        stored = bodies.stored_bytes(conn)
    assert stored["inline"] == 0 and stored["bases"] + stored["deltas"] < inline / 3
    assert check_all(engine, fleet) == 60
    # new reports after compaction are deltas against the current (rebased) base
    fleet.day(T)
    assert retention.prune(engine, 0, t=T)["bases"] == 0
    assert check_all(engine, fleet) == 63
    out = retention.prune(engine, 7, t=T + 1)
    gone = pruned_ids(engine)
    assert out["reports"] == len(gone) > 0
    assert check_all(engine, fleet, pruned=gone) == 63 - len(gone)
    with engine.connect() as conn:  # nothing within the period is gone, nor any latest state
        young = {x[0] for x in conn.execute(select(db.reports.c.id).where(db.reports.c.collected_at >= T + 1 - 7 * DAY))}
        latest = {x[0] for x in conn.execute(bodies.latest_ids())}
    assert not gone & (young | latest)
    with engine.connect() as conn:  # everything else older than the cutoff is gone, but for the bases still needed
        old = {x[0] for x in conn.execute(select(db.reports.c.id).where(
            db.reports.c.collected_at < retention.cutoff_of(T + 1, 7)))}
        kept_bases = {x[0] for x in conn.execute(select(db.report_bases.c.report_id))}
    assert gone == old - latest - kept_bases
    with pytest.raises(ApiError) as err:
        readable_document(queries.get_report(engine, EVERYTHING, sorted(gone)[0]))
    assert err.value.status == 410


def test_a_damaged_delta_or_base_is_an_error_never_other_bytes(engine):
    fleet = Fleet(engine, 1)
    for d in range(5, 0, -1):
        fleet.day(T - d * DAY)
    retention.prune(engine, 0, t=T)
    b, dl = db.report_bases, db.report_bodies
    with engine.connect() as conn:
        base_id, base_data = conn.execute(select(b.c.report_id, b.c.data)).one()
        deltas = conn.execute(select(dl.c.report_id, dl.c.data).order_by(dl.c.collected_at)).all()
    assert len(deltas) == 4
    # 1. a flipped byte in a delta
    bad = bytearray(deltas[0][1])
    bad[len(bad) // 2] ^= 0xFF
    # 2. a well-formed delta of other bytes (decompresses fine): only the SHA-256 tells
    import zstandard
    base_raw = fleet.sent[base_id][2]
    other = zstandard.ZstdCompressor(level=3, dict_data=bodies._dict(base_raw)).compress(base_raw.replace(b"pass", b"fail"))
    with db.write_tx(engine) as conn:
        conn.execute(update(dl).where(dl.c.report_id == deltas[0][0]).values(data=bytes(bad)))
        conn.execute(update(dl).where(dl.c.report_id == deltas[1][0]).values(data=other))
    for rid in (deltas[0][0], deltas[1][0]):
        with engine.connect() as conn:
            with pytest.raises(bodies.Corrupt):
                bodies.signed_body(conn, rid)
        with pytest.raises(ApiError) as err:
            readable_document(queries.get_report(engine, EVERYTHING, rid))
        assert err.value.status == 422 and "cannot be read back" in err.value.message
    with engine.connect() as conn:  # the others are untouched
        assert bodies.signed_body(conn, deltas[2][0]) == fleet.sent[deltas[2][0]][2]
    # 3. a damaged base: it and every delta made against it are errors
    with db.write_tx(engine) as conn:
        conn.execute(update(b).where(b.c.report_id == base_id).values(data=base_data[:-7] + b"garbage"))
    for rid in [base_id] + [x[0] for x in deltas[2:]]:
        with engine.connect() as conn:
            with pytest.raises(bodies.Corrupt):
                bodies.signed_body(conn, rid)
        with pytest.raises(ApiError) as err:
            readable_document(queries.get_report(engine, EVERYTHING, rid))
        assert err.value.status == 422
    # the next report is never built on the damaged base: it becomes a base of its own
    fleet.day(T)
    assert retention.prune(engine, 0, t=T)["bases"] == 1
    latest = list(fleet.sent)[-1]
    with engine.connect() as conn:
        assert bodies.signed_body(conn, latest) == fleet.sent[latest][2]


def test_a_body_that_does_not_match_its_digest_is_left_inline(engine):
    fleet = Fleet(engine, 1)
    fleet.day(T - DAY)
    rid = list(fleet.sent)[0]
    with db.write_tx(engine) as conn:
        conn.execute(update(db.reports).where(db.reports.c.id == rid).values(body_gz=gzip.compress(b'{"other": 1}')))
    out = retention.prune(engine, 0, t=T)
    assert (out["compacted"], out["unreadable"]) == (0, 1)
    assert kinds(engine) == {bodies.INLINE: 1}


@pytest.mark.parametrize("db_engine", ["postgres"], indirect=True)
def test_retention_drops_daily_partitions_on_postgres(db_engine):
    engine = db_engine
    fleet = Fleet(engine, 3)
    for d in range(20, 0, -1):  # hosts 0 and 1 daily for 20 days; host 2 went silent after its first day
        fleet.day(T - d * DAY, which=None if d == 20 else (0, 1))
    silent = list(fleet.sent)[2]
    assert fleet.sent[silent][0] is fleet.agents[2]
    retention.prune(engine, 0, t=T)
    with engine.connect() as conn:
        parts = bodies.partitions(conn)
        default_rows = conn.exec_driver_sql("SELECT count(*) FROM report_bodies_default").scalar()
    assert len(parts) == 19 and default_rows == 0  # day 20: bases only
    cutoff = retention.cutoff_of(T, 7)
    out = retention.prune(engine, 7, t=T)
    with engine.connect() as conn:
        left = bodies.partitions(conn)
        tables = {x[0] for x in conn.exec_driver_sql("SELECT tablename FROM pg_tables WHERE tablename LIKE "
                                                      "'report_bodies_d%%'")}
        silent_base = conn.execute(select(func.count()).select_from(db.report_bases)
                                   .where(db.report_bases.c.report_id == silent)).scalar()
    assert out["partitions"] == len(parts) - len(left) == 12  # the days 19..8 ago
    assert all(lo >= cutoff for _name, lo, _hi in left) and len(left) == 7
    assert tables == {name for name, _lo, _hi in left} | {"report_bodies_default"}  # dropped, not only detached
    gone = pruned_ids(engine)
    assert silent not in gone and silent_base == 1  # the silent host's latest: kept as a base of its own
    assert check_all(engine, fleet, pruned=gone) == len(fleet.sent) - len(gone)
    r = db.reports
    with engine.connect() as conn:
        old = {x[0] for x in conn.execute(select(r.c.id).where(r.c.collected_at < left[0][1]))}
    # what the dropped days held is pruned, but for the latest states and the bases kept deltas need
    with engine.connect() as conn:
        kept_bases = {x[0] for x in conn.execute(select(db.report_bases.c.report_id))}
    assert old - kept_bases == gone - kept_bases and old - kept_bases
    assert retention.prune(engine, 7, t=T)["partitions"] == 0  # nothing left to do


def test_two_nodes_at_once_compact_and_prune_once(engine):
    fleet = Fleet(engine, 4)
    for d in range(12, 0, -1):
        fleet.day(T - d * DAY)
    results, errors = [], []

    def node():
        try:
            results.append(retention.prune(engine, 5, t=T))
        except Exception as exc:  # noqa: BLE001 - the test asserts there is none
            errors.append(exc)
    threads = [threading.Thread(target=node) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert sum(x.get("compacted", 0) for x in results) == 48
    gone = pruned_ids(engine)
    assert sum(x["reports"] for x in results) == len(gone) > 0
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(db.report_bases)).scalar() + \
            conn.execute(select(func.count()).select_from(db.report_bodies)).scalar()
    assert stored == 48 - len(gone)  # each body once
    assert check_all(engine, fleet, pruned=gone) == 48 - len(gone)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_migration_carries_existing_bodies_over(backend, tmp_path, request):
    url = request.getfixturevalue("pg_url_fresh") if backend == "postgres" else str(tmp_path / "old.db")
    engine = db.make_engine(url)
    try:
        # a database of 0023 with reports, one pruned by the old retention: stored by today's intake,
        # then taken down to 0023 (bodies inline, as intake stored them then; today's writer needs
        # the tables and columns of the migrations since)
        migrate.upgrade(engine)
        fleet = Fleet(engine, 2)
        r = db.reports
        cols = [c for c in r.c if c.name != "body_kind"]
        for d in range(4, 0, -1):
            fleet.day(T - d * DAY)
        migrate_down(engine, "0023")
        with db.write_tx(engine) as conn:
            first = conn.execute(select(r.c.id).order_by(r.c.collected_at).limit(1)).scalar()
            conn.execute(update(r).where(r.c.id == first).values(body_gz=b"", pruned_at=T))
            assert len(conn.execute(select(*cols)).all()) == 8
        migrate.upgrade(engine)
        assert kinds(engine) == {bodies.INLINE: 7, bodies.DROPPED: 1}
        assert check_all(engine, fleet, pruned={first}) == 7
        assert retention.prune(engine, 0, t=T)["compacted"] == 7
        assert kinds(engine) == {bodies.STORED: 7, bodies.DROPPED: 1}
        assert check_all(engine, fleet, pruned={first}) == 7
        with pytest.raises(Exception, match="compacted report bodies would be lost"):
            migrate_down(engine, "0023")
    finally:
        engine.dispose()


def migrate_down(engine, revision):
    from alembic import command
    cfg = migrate.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_bases_of_hosts_of_one_build_share_a_root(engine):
    fleet = Fleet(engine, 3)
    for i in (1, 2):  # hosts 1 and 2 run what host 0 runs: the same report but for the host's own names
        doc = fleet.docs[i] = copy.deepcopy(fleet.docs[0])
        doc["host"]["hostname"], doc["host"]["machine_id"] = fleet.agents[i].hostname, fleet.agents[i].machine_id
    for d in range(10, 0, -1):
        fleet.day(T - d * DAY)
    out = retention.prune(engine, 0, t=T)
    assert out["bases"] == 3
    b = db.report_bases
    with engine.connect() as conn:
        rows = {x.host_id: x for x in conn.execute(select(b.c.report_id, b.c.host_id, b.c.parent_id,
                                                          func.length(b.c.data).label("n")))}
    (root,) = [x for x in rows.values() if x.parent_id is None]  # the first host compacted
    first = [i for i, a in enumerate(fleet.agents) if a.host_id == root.host_id][0]
    others = [x for x in rows.values() if x is not root]
    assert [x.parent_id for x in others] == [root.report_id] * 2
    assert all(x.n < root.n / 10 for x in others)
    assert check_all(engine, fleet) == 30
    # the first host becomes another machine altogether (a new root for it); its old root stays as long as
    # the other hosts' bases are made against it, however old
    fleet.day(T, which=(first,), churn=True)
    assert retention.prune(engine, 0, t=T)["bases"] == 1
    with engine.connect() as conn:
        assert conn.execute(select(b.c.parent_id).where(b.c.host_id == root.host_id)
                            .order_by(b.c.collected_at.desc()).limit(1)).scalar() is None
    retention.prune(engine, 2, t=T + DAY)
    gone = pruned_ids(engine)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(b).where(b.c.report_id == root.report_id)).scalar() == 1
    assert root.report_id not in gone and gone
    assert check_all(engine, fleet, pruned=gone) == 31 - len(gone)
    # a damaged root: every body made against it (through host 1's and 2's bases) is an error
    with db.write_tx(engine) as conn:
        conn.execute(update(b).where(b.c.report_id == root.report_id).values(data=b"\x28\xb5\x2f\xfd garbage"))
    hurt = [rid for rid, (a, _ts, _b, _s) in fleet.sent.items() if a.host_id != root.host_id and rid not in gone]
    assert hurt
    for rid in hurt:
        with engine.connect() as conn:
            with pytest.raises(bodies.Corrupt):
                bodies.signed_body(conn, rid)


def test_a_base_older_than_a_month_is_replaced(engine):
    fleet = Fleet(engine, 1)
    for d in (70, 60, 45, 38, 30, 10, 1):  # bases: day 70, day 38 (32 days on), day 1 (37 days on)
        fleet.day(T - d * DAY)
    assert retention.prune(engine, 0, t=T)["bases"] == 3
    b = db.report_bases
    with engine.connect() as conn:
        at = sorted((T - x[0]) // DAY for x in conn.execute(select(b.c.collected_at)))
        rows = conn.execute(select(b.c.report_id, b.c.parent_id).order_by(b.c.collected_at)).all()
    assert at == [1, 38, 70]
    # the host changed little: its later bases are small deltas against the first, a root
    assert [x[1] for x in rows] == [None, rows[0][0], rows[0][0]]
    assert check_all(engine, fleet) == 7


@pytest.mark.parametrize("db_engine", ["postgres"], indirect=True)
def test_rows_in_the_default_partition_read_back_move_into_their_day_and_go_with_retention(db_engine):
    engine = db_engine
    fleet = Fleet(engine, 2)
    for d in range(6, 0, -1):
        fleet.day(T - d * DAY)
    retention.prune(engine, 0, t=T)
    day = (T - 5 * DAY) // bodies.PART
    name = "report_bodies_d%d" % day
    with db.write_tx(engine) as conn:  # that day's rows end up in the default partition (no partition for it)
        conn.exec_driver_sql("CREATE TEMP TABLE moved AS SELECT * FROM %s" % name)
        conn.exec_driver_sql("DROP TABLE %s" % name)
        conn.exec_driver_sql("INSERT INTO report_bodies SELECT * FROM moved")
        in_default = conn.exec_driver_sql("SELECT count(*) FROM report_bodies_default").scalar()
    assert in_default == 2
    assert check_all(engine, fleet) == 12
    with db.write_tx(engine) as conn:
        bodies.ensure_partitions(conn, {day})
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM report_bodies_default").scalar() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM %s" % name).scalar() == 2
    assert check_all(engine, fleet) == 12
    with db.write_tx(engine) as conn:  # and rows left in the default partition are deleted by retention
        conn.exec_driver_sql("CREATE TEMP TABLE moved2 AS SELECT * FROM %s" % name)
        conn.exec_driver_sql("DROP TABLE %s" % name)
        conn.exec_driver_sql("INSERT INTO report_bodies SELECT * FROM moved2")
    out = retention.prune(engine, 3, t=T)
    gone = pruned_ids(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM report_bodies_default").scalar() == 0
        old = {x[0] for x in conn.execute(select(db.reports.c.id).where(
            db.reports.c.collected_at < retention.cutoff_of(T, 3)))}
        kept_bases = {x[0] for x in conn.execute(select(db.report_bases.c.report_id))}
    assert gone == old - kept_bases and out["reports"] == len(gone)
    assert check_all(engine, fleet, pruned=gone) == 12 - len(gone)


@pytest.mark.parametrize("db_engine", ["postgres"], indirect=True)
def test_an_open_reader_delays_a_partition_not_the_job(db_engine, monkeypatch):
    """A reader of report_bodies with its transaction open (a slow client, a long export) holds the lock the
    new day's attach needs: the job waits at most ATTACH_WAIT_MS, stores that day's deltas in the default
    partition (they read back), and a later run attaches the day and moves them in."""
    import time
    engine = db_engine
    monkeypatch.setattr(bodies, "ATTACH_WAIT_MS", 300)
    fleet = Fleet(engine, 2)
    for d in range(3, 1, -1):
        fleet.day(T - d * DAY)
    retention.prune(engine, 0, t=T)
    fleet.day(T - DAY)  # a new day: its deltas need a partition
    day = (T - DAY) // bodies.PART
    name = "report_bodies_d%d" % day
    reader = engine.connect()
    try:
        reader.exec_driver_sql("SELECT count(*) FROM report_bodies").scalar()   # transaction left open
        t0 = time.monotonic()
        out = retention.prune(engine, 0, t=T)
        waited = time.monotonic() - t0
    finally:
        reader.close()
    assert out["compacted"] == 2 and waited < 10
    with engine.connect() as conn:
        assert name not in {p[0] for p in bodies.partitions(conn)}
        assert conn.exec_driver_sql("SELECT count(*) FROM report_bodies_default").scalar() == 2
        assert conn.exec_driver_sql("SHOW lock_timeout").scalar() in ("0", "0ms")
    assert check_all(engine, fleet) == 6
    fleet.day(T)  # the next run, nobody reading: both days attached, the waiting rows moved in
    retention.prune(engine, 0, t=T + 1)
    with engine.connect() as conn:
        assert name in {p[0] for p in bodies.partitions(conn)}
        assert conn.exec_driver_sql("SELECT count(*) FROM report_bodies_default").scalar() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM %s" % name).scalar() == 2
    assert check_all(engine, fleet) == 8
