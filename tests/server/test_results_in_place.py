"""A report that changes results' statuses can rewrite those rows in place on PostgreSQL: no index
holds status (migration 0027), so wherever the row's page has room the update is heap-only (HOT: no new
index entry, the old version reclaimed at the next visit to the page). With status in an index none
was, and results kept its old versions until VACUUM. The table keeps the default fillfactor (0028:
room on every page cost more bytes per report than it saved); the test gives the pages room itself,
so that only an index on status can make an update not HOT"""
from __future__ import annotations

import gzip
import hashlib
import json
import random

import pytest
from sqlalchemy import select, text

from fleet import Agent, make_report
from scanner.server.access import accounts
from scanner.server.intake import ingest
from scanner.server.intake.batch import Item, store_batch
from scanner.server.store import db
from scanner.server.store.scope import Scope


@pytest.mark.parametrize("db_engine", ["postgres"], indirect=True)
def test_status_changes_are_heap_only_updates(db_engine):
    counts = text("SELECT pg_stat_get_xact_tuples_updated('results'::regclass), "
                  "pg_stat_get_xact_tuples_hot_updated('results'::regclass)")
    fleet = []
    for i in range(40):
        a = Agent("inplace-host%d" % i, machine_id="inplace-m%d" % i)
        tok = accounts.create_token(db_engine, "/gov/a", scope=Scope.everything())["token"]
        a.host_id = ingest.enroll(db_engine, tok, a.hostname, a.machine_id, a.public_key)["host_id"]
        fleet.append((a, make_report(a.hostname, machine_id=a.machine_id, rng=random.Random(i))))
    rng = random.Random(7)
    flipped = 0
    with db_engine.begin() as conn:   # room on each page for this test's rows (reset below)
        conn.execute(text("ALTER TABLE results SET (fillfactor = 70)"))
    try:
        flipped = _four_days(db_engine, fleet, rng, counts)
    finally:
        with db_engine.begin() as conn:
            conn.execute(text("ALTER TABLE results RESET (fillfactor)"))
    # the rows say what the last reports said
    with db_engine.connect() as conn:
        stored = {(h, p, r): s for h, p, r, s in conn.execute(select(db.results.c.host_id, db.results.c.profile,
                                                                       db.results.c.rule_id, db.results.c.status))}
    for a, doc in fleet:
        profile = doc["summary"]["profile"]
        for r in doc["results"]:
            assert stored[(a.host_id, profile, r["rule_id"])] == r["status"]
    assert flipped >= 120


@pytest.mark.parametrize("db_engine", ["postgres"], indirect=True)
def test_no_results_index_holds_status(db_engine):
    """The indexes of results as PostgreSQL has them: none on status, in its columns or its predicate
    (the condition of heap-only updates above); waiver_until's only where a waiver covers the row."""
    with db_engine.connect() as conn:
        defs = dict(conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'results'")).all())
        options = conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'results'")).scalar()
    assert defs and not [d for d in defs.values() if "status" in d], defs
    assert "WHERE (waiver_until IS NOT NULL)" in defs["ix_results_waiver_until"]
    assert not options or not any(o.startswith("fillfactor") for o in options), options


def _four_days(db_engine, fleet, rng, counts):
    flipped = 0
    for day in range(4):
        items = []
        for a, doc in fleet:
            doc["report_id"] = ingest_uuid(rng)
            if day:
                for r in rng.sample(doc["results"], 3):
                    r["status"] = {"pass": "fail", "fail": "pass"}.get(r["status"], r["status"])
            body = json.dumps(doc).encode()
            t = 1_700_000_000 + day * 86400
            items.append(Item(doc["report_id"], a.host_id, t, t, ingest.derive(doc), gzip.compress(body), len(body),
                              hashlib.sha256(body).hexdigest()))
        with db.write_tx(db_engine) as conn:
            before = conn.execute(counts).one()
            outs = store_batch(conn, items)
            assert not any(isinstance(o, Exception) for o in outs)
            after = conn.execute(counts).one()
        updated, hot = after[0] - before[0], after[1] - before[1]
        if day:
            assert updated >= 40 and hot == updated, (day, updated, hot)
            flipped += updated
    return flipped


def ingest_uuid(rng):
    import uuid
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
