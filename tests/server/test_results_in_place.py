"""A report that changes results' statuses rewrites those rows in place on PostgreSQL: no index
holds status (migration 0027) and results keeps room on each page (fillfactor 80), so every such
update is heap-only (HOT: no new index entry, the old version reclaimed at the next visit to the
page). With status in an index none was, and results kept its old versions until VACUUM."""
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
    # the rows say what the last reports said
    with db_engine.connect() as conn:
        stored = {(h, p, r): s for h, p, r, s in conn.execute(select(db.results.c.host_id, db.results.c.profile,
                                                                       db.results.c.rule_id, db.results.c.status))}
    for a, doc in fleet:
        profile = doc["summary"]["profile"]
        for r in doc["results"]:
            assert stored[(a.host_id, profile, r["rule_id"])] == r["status"]
    assert flipped >= 120


def ingest_uuid(rng):
    import uuid
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
