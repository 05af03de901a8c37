#!/usr/bin/env python3
"""Stored bytes and dead rows of daily reports, and what retention does to them, on PostgreSQL.

H hosts send one report a day for D days through intake's own ``derive`` and ``store_batch`` (a
real report with ``--template``, else a synthetic one); each day a few results change status and
a package version changes, as on a real host. Then it prints, per report: bytes of every table
(pg_total_relation_size after VACUUM, with indexes and TOAST; ``all_tables_bytes_per_report`` sums
every table of the database, report_bodies' partitions included), the stored body bytes (inline
gzip, bases and deltas: store/bodies.py), and the dead-row ratio of the
latest-state tables before VACUUM ((live + dead) / live: 1.0 means no rewritten rows), the share of
their updates that were HOT (heap-only: no index entry written, the old version reclaimed by the
next visit to its page) and their size before VACUUM over their size rewritten compactly (VACUUM
FULL: 1.0 means no bloat); then runs
retention (``--retention-days``, store/retention.py) and VACUUM FULL (which gives the freed space
back to the file system; a plain VACUUM only makes it reusable) and prints the same again. The
retention job compacts the bodies into deltas first (store/bodies.py); ``prune`` says how many,
into how many bytes, and the job's CPU and wall time.

    python bench/storage.py --hosts 20 --days 30 --template REPORT.json --retention-days 7
    python bench/storage.py --src ../main ...                 # another checkout's store code

The database is a throw-away one (``xcscan_storagebench_<random>``), dropped at the end.
"""
from __future__ import annotations

import argparse
import copy
import gzip
import hashlib
import json
import os
import random
import secrets
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
PG_BASE = os.environ.get("XCSCAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
TABLES = ("reports", "report_bases", "report_bodies", "results", "components", "host_profiles", "hosts")
LATEST = ("results", "components", "host_profiles")
# every table of the database with its indexes and TOAST; report_bodies' partitions (PostgreSQL) count
# under report_bodies
ALL_SIZES = """SELECT CASE WHEN c.relname LIKE 'report_bodies_%%' THEN 'report_bodies' ELSE c.relname END,
                      sum(pg_total_relation_size(c.oid))
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind = 'r' GROUP BY 1"""
BODY_BYTES = ("SELECT coalesce(sum(length(body_gz)), 0) FROM reports",
              "SELECT coalesce(sum(length(data)), 0) FROM report_bases",
              "SELECT coalesce(sum(length(data)), 0) FROM report_bodies")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--template", default=None)
    ap.add_argument("--retention-days", type=int, default=7)
    ap.add_argument("--changes", type=int, default=3, help="results flipped per host and day")
    ap.add_argument("--src", default=None, help="use this checkout's scanner package (e.g. main's)")
    ap.add_argument("--keep", action="store_true", help="keep the database (its URL goes to stderr) to look into")
    opts = ap.parse_args()
    root = os.path.abspath(opts.src) if opts.src else os.path.dirname(HERE)
    sys.path.insert(0, root)
    sys.path.insert(1, os.path.join(os.path.dirname(HERE), "tests", "server"))
    import psycopg
    from fleet import Agent, body_of, make_report
    from scanner.server.access import accounts
    from scanner.server.intake import ingest
    from scanner.server.intake.batch import Item, store_batch
    from scanner.server.store import db, migrate
    from scanner.server.store.scope import Scope
    try:
        from scanner.server.store import retention
    except ImportError:
        retention = None

    name = "xcscan_storagebench_%s" % secrets.token_hex(4)
    url = PG_BASE.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(PG_BASE, autocommit=True) as c:
        c.execute('CREATE DATABASE "%s"' % name)
    out = {"src": root, "hosts": opts.hosts, "days": opts.days, "template": opts.template or "synthetic"}
    try:
        engine = db.make_engine(url)
        migrate.upgrade(engine)
        base = json.load(open(opts.template, encoding="utf-8")) if opts.template else make_report("h", rng=random.Random(1))
        agents = []
        for i in range(opts.hosts):
            a = Agent("host-%03d" % i, machine_id=uuid.uuid4().hex)
            tok = accounts.create_token(engine, "/gov/dept%d" % (i % 3), scope=Scope.everything())["token"]
            a.host_id = ingest.enroll(engine, tok, a.hostname, a.machine_id, a.public_key)["host_id"]
            agents.append((a, copy.deepcopy(base)))
        rng = random.Random(7)
        t0 = int(time.time()) - opts.days * 86400
        cpu = 0.0
        for day in range(opts.days):
            items = []
            for a, doc in agents:
                doc["report_id"] = str(uuid.uuid4())
                doc["host"]["hostname"], doc["host"]["machine_id"] = a.hostname, a.machine_id
                for r in rng.sample(doc["results"], min(opts.changes, len(doc["results"]))):
                    r["status"] = {"pass": "fail", "fail": "pass"}.get(r["status"], r["status"])
                pk = ((doc.get("facts") or {}).get("packages") or {}).get("items") or []
                if pk:
                    p = rng.choice(pk)
                    p["version"] = "%s.%d" % (p.get("version") or "1", day)
                body = body_of(doc)
                t = t0 + day * 86400 + rng.randint(0, 3600)
                items.append(Item(doc["report_id"], a.host_id, t, t, ingest.derive(ingest.parse_report(body)),
                                  gzip.compress(body, 6), len(body), hashlib.sha256(body).hexdigest()))
            c0 = time.process_time()
            for i in range(0, len(items), 16):
                with db.write_tx(engine) as conn:
                    res = store_batch(conn, items[i:i + 16])
                    assert not any(isinstance(x, Exception) for x in res), res
            cpu += time.process_time() - c0
        engine.dispose()
        n = opts.hosts * opts.days
        out["store_cpu_ms_per_report"] = round(1000 * cpu / n, 2)

        def measure(label, full=False):
            with psycopg.connect(url, autocommit=True) as c:
                dead, hot, heap, exact = {}, {}, {}, {}
                try:  # the dead versions really there (the statistics can count a flushed-late update twice)
                    c.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
                    for t in LATEST + ("hosts", "reports"):
                        live, d = c.execute("SELECT tuple_count, dead_tuple_count FROM pgstattuple(%s)", (t,)).fetchone()
                        exact[t] = round((live + d) / live, 2) if live else None
                except psycopg.Error:
                    exact = None
                for t in LATEST + ("hosts", "reports"):
                    live, d, upd, hot_upd = c.execute(
                        "SELECT n_live_tup, n_dead_tup, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                        "WHERE relname = %s", (t,)).fetchone()
                    dead[t] = round((live + d) / live, 2) if live else None
                    hot[t] = round(hot_upd / upd, 2) if upd else None
                    heap[t] = c.execute("SELECT pg_total_relation_size(%s)", (t,)).fetchone()[0]
                c.execute("VACUUM FULL ANALYZE" if full else "VACUUM ANALYZE")
                every = dict(c.execute(ALL_SIZES).fetchall())
                sizes = {t: every.get(t, 0) for t in TABLES}
                bodies = 0
                for q in BODY_BYTES:
                    try:
                        bodies += c.execute(q).fetchone()[0]
                    except psycopg.errors.UndefinedTable:  # another checkout's store code (--src)
                        pass
                if not full:  # the same tables rewritten compactly: what the dead rows and free space cost
                    c.execute("VACUUM FULL %s" % ", ".join(heap))
                    packed = {t: c.execute("SELECT pg_total_relation_size(%s)", (t,)).fetchone()[0] for t in heap}
                rows = {}
                for t in sorted(every):
                    if t in TABLES or every[t] >= 50 * n:
                        rows[t] = c.execute('SELECT count(*) FROM "%s"' % t).fetchone()[0]
                store = None
                try:  # the body store (store/bodies.py): how many of each and their average bytes
                    store = {k: c.execute(q).fetchone() for k, q in (
                        ("deltas", "SELECT count(*), round(avg(length(data))) FROM report_bodies"),
                        ("roots", "SELECT count(*), round(avg(length(data))) FROM report_bases WHERE parent_id IS NULL"),
                        ("bases_on_a_root", "SELECT count(*), round(avg(length(data))) FROM report_bases "
                                            "WHERE parent_id IS NOT NULL"))}
                    store = {k: {"rows": v[0], "avg_bytes": int(v[1] or 0)} for k, v in store.items()}
                except psycopg.Error:
                    pass
            out[label] = {"dead_row_ratio_before_vacuum": dead, "rows": rows, "body_store": store, "dead_row_ratio_pgstattuple": exact, "bytes_per_report": {t: round(v / n) for t, v in sizes.items()},
                          "all_tables_bytes_per_report": round(sum(every.values()) / n),
                          "other_tables_bytes_per_report": round(sum(v for t, v in every.items() if t not in TABLES) / n),
                          "other_tables": {t: round(v / n) for t, v in sorted(every.items()) if t not in TABLES and v >= 50 * n},
                          "stored_body_bytes_per_report": round(bodies / n), "hot_update_share": hot}
            if not full:
                out[label]["size_before_vacuum_over_packed"] = {t: round(heap[t] / packed[t], 2) for t in heap}
            print("# %s: %s" % (label, json.dumps(out[label])), file=sys.stderr, flush=True)
        time.sleep(1)  # statistics collector
        measure("stored")
        if retention is not None and opts.retention_days:
            engine = db.make_engine(url)
            c0, w0 = time.process_time(), time.time()
            pr = retention.prune(engine, opts.retention_days)  # compacts first, where the store code does
            engine.dispose()
            out["prune"] = dict(pr, cpu_s=round(time.process_time() - c0, 1), wall_s=round(time.time() - w0, 1))
            measure("after_retention_%dd" % opts.retention_days, full=True)
        print(json.dumps(out), flush=True)
    finally:
        if opts.keep:
            print("# kept: %s" % url, file=sys.stderr)
            return
        with psycopg.connect(PG_BASE, autocommit=True) as c:
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            c.execute('DROP DATABASE IF EXISTS "%s"' % name)


if __name__ == "__main__":
    main()
