"""Retention of stored report bodies (scanner/server/store/retention.py, `xcscan server prune`) on a
real SQLite file and on the PostgreSQL at 127.0.0.1:5432: bodies past the period are dropped, the
history's scalars stay, the report a host's latest state comes from is kept however old, reading a
pruned report is a clear 410, and one node at a time does the job."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from scanner.server.errors import ApiError
from scanner.server.store import db, queries, retention
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
    r = db.reports
    with engine.connect() as conn:
        return conn.execute(select(func.sum(func.length(r.c.body_gz)))).scalar()


def test_prune_drops_old_bodies_and_keeps_history_and_latest(engine):
    a, b = enroll(engine, "/gov/finance", 2)
    for d in range(10, 0, -1):  # a: a report a day for 10 days
        put(engine, [item(a, T - d * DAY, seed=d)[0]])
    put(engine, [item(b, T - 30 * DAY, seed=99)[0]])  # b: silent for a month; its latest is old
    before_bytes = body_bytes(engine)
    history = queries.host_history(engine, EVERYTHING, a.host_id)
    assert len(history) == 10
    out = retention.prune(engine, 5, t=T)
    assert out["reports"] == 5 and out["bytes"] > 0 and not out["skipped"]  # days 10..6 of host a
    assert body_bytes(engine) == before_bytes - out["bytes"]
    after = queries.host_history(engine, EVERYTHING, a.host_id)
    assert [(x["id"], x["score"], x["fail_count"]) for x in after] == [(x["id"], x["score"], x["fail_count"])
                                                                       for x in history]
    r = db.reports
    with engine.connect() as conn:
        pruned = dict(conn.execute(select(r.c.id, r.c.pruned_at).where(r.c.pruned_at.is_not(None))).all())
        latest_b = conn.execute(select(db.hosts.c.latest_report_id).where(db.hosts.c.id == b.host_id)).scalar()
    assert set(pruned.values()) == {T}
    assert latest_b not in pruned
    oldest = history[-1]["id"]
    assert oldest in pruned
    with pytest.raises(ApiError) as err:
        readable_document(queries.get_report(engine, EVERYTHING, oldest))
    assert err.value.status == 410
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
