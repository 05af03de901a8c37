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
    out = retention.prune(engine, 5, t=T)
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
        assert out == {"reports": 0, "bytes": 0, "skipped": True}
        other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": retention.LOCK_KEY})
    assert retention.prune(engine, 1, t=T)["reports"] == 3
