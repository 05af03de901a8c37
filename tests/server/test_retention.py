"""Retention of stored report bodies (scanner/server/store/retention.py, `xcscan server prune`) on a
real SQLite file and on the PostgreSQL at 127.0.0.1:5432: bodies past the period are dropped, the
history's scalars stay, the report a host's latest state comes from is kept however old, reading a
pruned report is a clear 410, and one node at a time does the job."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, text

from scanner.server.errors import ApiError
from scanner.server.store import bodies, db, queries, retention
from scanner.server.store.reports import readable_document
from scanner.server.store.scope import Scope
from test_batch_store import enroll, item, put

EVERYTHING = Scope.everything()
DAY = 86400
T = 1_800_000_000


@pytest.fixture
def engine(db_engine):
    return db_engine


def body_bytes(engine):
    """Stored body bytes: inline (gzip) and compacted (bases and deltas, store/bodies.py)."""
    with engine.connect() as conn:
        return sum(bodies.stored_bytes(conn).values())


def test_prune_drops_old_bodies_and_keeps_history_and_latest(engine):
    a, b = enroll(engine, "/gov/finance", 2)
    for d in range(10, 0, -1):  # a: a report a day for 10 days, the same facts each day
        put(engine, [item(a, T - d * DAY, seed=1, report_id=str(uuid.uuid4()))[0]])
    put(engine, [item(b, T - 30 * DAY, seed=99)[0]])  # b: silent for a month; its latest is old
    inline_bytes = body_bytes(engine)
    done = retention.prune(engine, 0, t=T)  # 0: keep every body; compact them
    assert (done["compacted"], done["bases"]) == (11, 2)
    before_bytes = body_bytes(engine)
    assert before_bytes < inline_bytes / 4
    history = queries.host_history(engine, EVERYTHING, a.host_id)
    assert len(history) == 10
    out = retention.prune(engine, 5, t=T, batch=2)  # (a few rows a transaction: every step loops)
    # days 9..6 of host a (deltas; on PostgreSQL their days' partitions); day 10 is the base the kept
    # deltas of days 5..1 are made against
    gone = (9, 8, 7, 6)
    assert out["reports"] == len(gone) and out["bytes"] > 0 and not out["skipped"]
    assert out["partitions"] == (len(gone) if engine.dialect.name == "postgresql" else 0)
    assert body_bytes(engine) == before_bytes - out["bytes"]
    after = queries.host_history(engine, EVERYTHING, a.host_id)
    assert [(x["id"], x["score"], x["fail_count"]) for x in after] == [(x["id"], x["score"], x["fail_count"])
                                                                       for x in history]
    r = db.reports
    with engine.connect() as conn:
        pruned = dict(conn.execute(select(r.c.id, r.c.pruned_at).where(r.c.pruned_at.is_not(None))).all())
        latest_b = conn.execute(select(db.hosts.c.latest_report_id).where(db.hosts.c.id == b.host_id)).scalar()
    assert set(pruned.values()) == {T}
    assert {x["id"] for x in history if (T - x["collected_at"]) // DAY in gone} == set(pruned)
    assert latest_b not in pruned
    oldest, base = history[-2]["id"], history[-1]["id"]
    assert oldest in pruned and base not in pruned
    with pytest.raises(ApiError) as err:
        readable_document(queries.get_report(engine, EVERYTHING, oldest))
    assert err.value.status == 410
    assert readable_document(queries.get_report(engine, EVERYTHING, base))["report_id"] == base
    assert readable_document(queries.get_report(engine, EVERYTHING, history[0]["id"]))["report_id"] == history[0]["id"]
    assert readable_document(queries.get_report(engine, EVERYTHING, latest_b))
    assert retention.prune(engine, 5, t=T)["reports"] == 0  # nothing left to do
    assert retention.prune(engine, 0, t=T)["reports"] == 0  # 0: keep everything


@pytest.mark.parametrize("db_engine", ["postgres"], indirect=True)
def test_a_second_node_does_not_prune_at_the_same_time(db_engine):
    engine = db_engine
    (a,) = enroll(engine, "/gov/finance", 1)
    for d in range(4, 0, -1):
        put(engine, [item(a, T - d * DAY, seed=d)[0]])
    with engine.connect() as other:  # another node holds the job
        assert other.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": retention.LOCK_KEY}).scalar()
        out = retention.prune(engine, 1, t=T)
        assert out == {"reports": 0, "bytes": 0, "changes": 0, "skipped": True}
        other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": retention.LOCK_KEY})
    assert retention.prune(engine, 1, t=T)["reports"] == 3


def _rollups(engine, days):
    """The roll-up rows of ``days`` computed afresh from the reports (rolled back)."""
    from scanner.server.store import rollups
    with engine.connect() as conn:
        with conn.begin() as tx:
            for day in days:
                rollups.compute_day(conn, day)
            got = (sorted(tuple(x) for x in conn.execute(select(db.daily_rollups).where(db.daily_rollups.c.day.in_(days)))),
                   sorted(tuple(x) for x in conn.execute(select(db.daily_loc).where(db.daily_loc.c.day.in_(days)))))
            tx.rollback()
    return got


def test_past_the_period_a_host_keeps_its_last_report_of_each_day_and_profile(engine):
    (a,) = enroll(engine, "/gov/finance", 1)
    start = T // DAY * DAY - 10 * DAY  # midnight, 10 days before T's day
    for d in range(10):  # three reports a day (mlps-l3 at 01:00, 09:00, 17:00) and a xinchuang one at 12:00
        for k, hour in enumerate((1, 9, 17)):
            put(engine, [item(a, start + d * DAY + hour * 3600, seed=d * 10 + k + 1)[0]])
        put(engine, [item(a, start + d * DAY + 12 * 3600, profile="xinchuang", seed=d * 10 + 9)[0]])
    r = db.reports
    days = [start // DAY + d for d in range(10)]
    before = _rollups(engine, days)
    assert before[0] and before[1]

    def rows_by_day():
        with engine.connect() as conn:
            got = {}
            for at, profile, kind in conn.execute(select(r.c.collected_at, r.c.profile, r.c.body_kind)):
                got.setdefault((at - start) // DAY, []).append(((at - start) % DAY // 3600, profile, kind))
        return {d: sorted(v) for d, v in got.items()}

    def rows(by_day):
        return {d: [x[:2] for x in v] for d, v in by_day.items()}
    everything = rows(rows_by_day())
    assert all(len(v) == 4 for v in everything.values()) and len(everything) == 10
    def pending():
        with engine.connect() as conn:
            return sorted(tuple(x) for x in conn.execute(select(db.summary_pending)))
    # the period of 9 days: day 0 goes, without summaries: every row stays, and the day waits
    out = retention.prune(engine, 9, t=T, summaries=False)
    assert out["reports"] > 0 and out["summarized"] == 0 and rows(rows_by_day()) == everything
    assert pending() == [(a.host_id, start // DAY)]
    # 5 days: days 1..4 go, with summaries: of each day (and of day 0, pruned while they were off) the
    # 17:00 mlps-l3 row and the 12:00 xinchuang row stay, and a row whose body is still needed (a base
    # kept deltas are made against)
    out = retention.prune(engine, 5, t=T, batch=2)  # (a few rows a transaction: every step loops)
    after = rows_by_day()
    assert pending() == []
    deleted = 0
    for d in range(10):
        if d <= 4:
            assert {(12, "xinchuang"), (17, "mlps-l3")} <= set(rows(after)[d])
            extra = [x for x in after[d] if x[:2] not in ((12, "xinchuang"), (17, "mlps-l3"))]
            assert all(kind != bodies.DROPPED for _h, _p, kind in extra), (d, after[d])
            deleted += 4 - len(after[d])
        else:
            assert rows(after)[d] == everything[d]
    assert out["summarized"] == deleted >= 4
    assert _rollups(engine, days) == before  # the trends read the same rows


def test_change_records_past_their_period_go_and_the_feed_says_from_when_it_knows(engine):
    """change_retention_days: the change records (the change feed's rows) stamped before the start of
    the UTC day that many days ago are deleted, a batch a transaction, the newer ones stay, and the
    feed of a window reaching back before that day says from when it knows (change_epoch); a window
    after it answers as before. 0 keeps every record."""
    from scanner.server.store import changes
    (a,) = enroll(engine, "/gov/changes", 1)
    rules = ["mlps.ia.ssh-root-login", "mlps.ia.password-max-age", "mlps.au.auditd-running"]
    for k, d in enumerate((40, 30, 20, 10, 3)):  # each report fails another pair of rules: a few changes each
        put(engine, [item(a, T - d * DAY, seed=7, fail_rules=[rules[k % 3], rules[(k + 1) % 3]])[0]])

    def stamps():
        with engine.connect() as conn:
            return sorted(conn.execute(select(db.result_changes.c.at)).scalars())
    before = stamps()
    assert {T - d * DAY for d in (30, 20, 10, 3)} <= set(before)
    recent = changes.feed(engine, EVERYTHING, None, T - 12 * DAY, T)
    assert recent["counts"]["new"] and "recorded_since" not in recent
    assert retention.prune(engine, 0, t=T, compact=False)["changes"] == 0  # 0: keep them all
    out = retention.prune(engine, 0, t=T, compact=False, change_days=15, batch=2)
    cutoff = retention.cutoff_of(T, 15)
    assert out["changes"] == sum(1 for at in before if at < cutoff) > 2  # more than one batch
    assert stamps() == [at for at in before if at >= cutoff]
    assert changes.feed(engine, EVERYTHING, None, T - 12 * DAY, T) == recent
    older = changes.feed(engine, EVERYTHING, None, T - 25 * DAY, T)
    assert older["recorded_since"] == cutoff
    assert retention.prune(engine, 0, t=T, compact=False, change_days=15)["changes"] == 0  # nothing left
    with engine.connect() as conn:
        assert conn.execute(select(db.change_epoch.c.since)).scalar() == cutoff
