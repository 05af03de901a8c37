#!/usr/bin/env python3
"""The change feed, the 信创 progress view and scores with recorded verdicts, timed at N hosts.

    python bench/progress_feed.py                       # 500 hosts on SQLite (a temporary file)
    python bench/progress_feed.py --hosts 2000 --pg     # 2000 hosts on a throw-away PostgreSQL database

Each host is enrolled and gets two reports a week apart through the intake's own ``derive`` and the
batch writer's ``store_batch`` (synthetic fleet reports, tests/server/fleet.py, ~50 results, 7
components); a department-wide verdict for a manual item is recorded through the workflow. Then the
store calls behind the pages are timed (median of 5): the change feed of the last 7 days (reads two
stored report documents per host), the progress view (rates per org unit and category, targets,
90-day substitutions: the same history read), and the org tree with the verdict applied to every
host's mlps-l3 score (reads those hosts' results) against the org tree without a verdict."""
from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "server"))
from fleet import Agent, body_of, make_report  # noqa: E402

PG_BASE = os.environ.get("XCSCAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
DAY = 86400


def timed(fn, n=5):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=500)
    ap.add_argument("--pg", action="store_true")
    opts = ap.parse_args()
    from scanner.server.access import accounts
    from scanner.server.intake import ingest
    from scanner.server.intake.batch import Item, store_batch
    from scanner.server.store import changes, db, localization, migrate, queries
    from scanner.server.store.scope import Scope
    from scanner.server.workflow import assessments, targets
    tmp = tempfile.mkdtemp()
    dbname = None
    if opts.pg:
        import psycopg
        dbname = "xcscan_progbench_%s" % secrets.token_hex(4)
        with psycopg.connect(PG_BASE, autocommit=True) as c:
            c.execute('CREATE DATABASE "%s"' % dbname)
        url = PG_BASE.rsplit("/", 1)[0] + "/" + dbname
    else:
        url = os.path.join(tmp, "bench.db")
    engine = db.make_engine(url)
    migrate.upgrade(engine)
    everything = Scope.everything()
    try:
        t0 = time.time()
        now = int(time.time())
        orgs = ["/gov/d%d/u%d" % (i % 5, i % 20) for i in range(20)]
        tokens = {o: accounts.create_token(engine, o, uses=10**6, scope=everything)["token"] for o in set(orgs)}
        for i in range(opts.hosts):
            a = Agent("h%05d" % i, machine_id=uuid.uuid4().hex)
            a.host_id = ingest.enroll(engine, tokens[orgs[i % 20]], a.hostname, a.machine_id, a.public_key)["host_id"]
            items = []
            for age, bias in ((9 * DAY, 0.4), (2 * DAY, 0.7)):
                doc = make_report(a.hostname, a.machine_id, domestic_bias=bias, packages=20)
                doc["report_id"] = str(uuid.uuid4())
                body = body_of(doc)
                items.append(Item(doc["report_id"], a.host_id, now, now - age, ingest.derive(ingest.parse_report(body)),
                                  gzip.compress(body, 6), len(body), hashlib.sha256(body).hexdigest()))
            with db.write_tx(engine) as conn:
                store_batch(conn, items[:1])
                store_batch(conn, items[1:])
        print("seeded %d hosts x 2 reports (%s) in %.1fs" % (opts.hosts, "PostgreSQL" if opts.pg else "SQLite",
                                                              time.time() - t0))
        targets.set_target(engine, {"org": "/gov/d1", "category": "os", "target": 1.0, "deadline": now + 300 * DAY},
                           "bench", scope=everything, role="admin")
        print("overview (worst hosts, top rules): %.3fs" % timed(lambda: queries.overview(engine, everything)))
        def part(fn):
            with engine.connect() as conn:
                return fn(conn)
        print("  of which worst hosts:          %.3fs" % timed(lambda: part(
            lambda conn: queries.worst_hosts(conn, everything, None, "mlps-l3"))))
        print("  of which top failing rules:    %.3fs" % timed(lambda: part(
            lambda conn: queries.top_failing_rules(conn, everything))))
        print("org tree, no verdict:            %.3fs" % timed(lambda: queries.org_tree(engine, everything)))
        assessments.record_assessment(engine, {"item_id": "L3-CES1-29", "target_kind": "org", "target": "/gov",
                                               "verdict": "nonconform", "record": "bench",
                                               "valid_until": now + DAY}, "bench", scope=everything, role="admin")
        print("org tree, verdict on every host: %.3fs" % timed(lambda: queries.org_tree(engine, everything)))
        got = changes.feed(engine, everything)
        print("change feed, 7 days:             %.3fs  (%d new, %d fixed, %d substitutions)" % (
            timed(lambda: changes.feed(engine, everything)), got["counts"]["new"], got["counts"]["fixed"],
            got["counts"]["substitutions"]))
        print("progress view:                   %.3fs" % timed(lambda: localization.progress(engine, everything)))
    finally:
        engine.dispose()
        if dbname:
            import psycopg
            with psycopg.connect(PG_BASE, autocommit=True) as c:
                c.execute('DROP DATABASE IF EXISTS "%s"' % dbname)


if __name__ == "__main__":
    main()
