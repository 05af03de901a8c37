"""What a foreign key costs PostgreSQL per inserted row of a host's latest state.

A host's first report inserts one ``results`` row per rule (158 for ``xcscan scan --profile all``).
Migration 0031 dropped the foreign key from ``results``, ``components`` and the change records to
``hosts``: PostgreSQL checks such a key with a query per inserted row (an RI trigger selecting the
host row FOR KEY SHARE). This bench stores the template report once through the project's own
store path (``store_batch``) on a throw-away database migrated to head, then inserts that host's
rows under other enrolled hosts, ``--rounds`` times each, interleaved, into ``results`` as it is and
into a copy of it with the foreign key put back (``LIKE results INCLUDING ALL`` plus the key), each
insert in its own transaction rolled back, and prints the medians (one connection, nothing else
running: its wall time is PostgreSQL's work).

    xcscan scan --profile all --format json > REPORT.json
    python bench/row_checks.py --template REPORT.json [--rounds 40]
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import secrets
import statistics
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "server"))

PG_BASE = os.environ.get("XCSCAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", required=True)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--hosts", type=int, default=40)
    opts = ap.parse_args()
    import psycopg
    from fleet import Agent
    from scanner.server.access import accounts
    from scanner.server.intake import ingest
    from scanner.server.intake.batch import Item, store_batch
    from scanner.server.store import db, migrate
    from scanner.server.store.scope import Scope
    name = "xcscan_rowchecks_%s" % secrets.token_hex(4)
    with psycopg.connect(PG_BASE, autocommit=True) as c:
        c.execute('CREATE DATABASE "%s"' % name)
    url = PG_BASE.rsplit("/", 1)[0] + "/" + name
    engine = db.make_engine(url, pool_size=2)
    try:
        migrate.upgrade(engine)
        token = accounts.create_token(engine, "/bench", uses=opts.hosts + 1, scope=Scope.everything())["token"]
        hosts = []
        for i in range(opts.hosts + 1):
            a = Agent("rowchecks-%d" % i, machine_id=uuid.uuid4().hex)
            hosts.append(ingest.enroll(engine, token, a.hostname, a.machine_id, a.public_key)["host_id"])
        doc = json.load(open(opts.template, encoding="utf-8"))
        doc["report_id"] = str(uuid.uuid4())
        body = json.dumps(doc).encode()
        with db.write_tx(engine) as conn:
            out = store_batch(conn, [Item(doc["report_id"], hosts[0], int(time.time()), int(time.time()) - 60,
                                          ingest.derive(doc), gzip.compress(body), len(body),
                                          hashlib.sha256(body).hexdigest())])
        assert not isinstance(out[0], Exception), out
        engine.dispose()
        with psycopg.connect(url) as c:
            rows = c.execute("SELECT count(*) FROM results WHERE host_id = %s", (hosts[0],)).fetchone()[0]
            c.execute("CREATE TABLE results_fk (LIKE results INCLUDING ALL)")
            c.execute("ALTER TABLE results_fk ADD FOREIGN KEY (host_id) REFERENCES hosts (id) ON DELETE CASCADE")
            c.commit()
            cols = [r[0] for r in c.execute("SELECT column_name FROM information_schema.columns WHERE table_name = "
                                            "'results' ORDER BY ordinal_position")]
            rest = ", ".join(x for x in cols if x != "host_id")
            times = {"results (no key)": [], "results with the key": []}
            for i in range(opts.rounds):
                host = hosts[1 + i % opts.hosts]
                for table, label in (("results", "results (no key)"), ("results_fk", "results with the key")):
                    with c.transaction() as tx:
                        t0 = time.perf_counter()
                        c.execute("INSERT INTO %s (host_id, %s) SELECT %%s, %s FROM results WHERE host_id = %%s"
                                  % (table, rest, rest), (host, hosts[0]))
                        times[label].append((time.perf_counter() - t0) * 1000.0)
                        raise psycopg.Rollback(tx)
        med = {k: round(statistics.median(v), 3) for k, v in times.items()}
        print(json.dumps({"rows_per_insert": rows, "rounds": opts.rounds, "median_ms": med,
                          "key_us_per_row": round((med["results with the key"] - med["results (no key)"]) * 1000.0
                                                  / rows, 1)}))
    finally:
        engine.dispose()
        with psycopg.connect(PG_BASE, autocommit=True) as c:
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            c.execute('DROP DATABASE IF EXISTS "%s"' % name)


if __name__ == "__main__":
    main()
