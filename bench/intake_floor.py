#!/usr/bin/env python3
"""Report intake against its floor, in one interleaved run (PostgreSQL).

The floor of one report is what no intake can skip: inflate the gzip body, ``orjson.loads`` it,
check its Ed25519 signature over the exact bytes, and one ``COPY ... (FORMAT BINARY)`` of the row
the aggregator keeps for it (the ``reports`` columns, the gzip body included) into a table shaped
like ``reports``. The intake is ``Intake.submit`` of the same kind of report (each copy with its own
report id, from its own enrolled host, hosts reporting again round after round so the latest-state
rows are compared, not rewritten), through the server's batch writer, from ``--threads`` threads
like the server's thread pool, with the server's garbage-collector settings (``app.tune_gc``).

Rounds alternate floor and intake on fresh reports; the medians of this process's CPU per report
are printed, and the ratio as the median of each round's intake over the floor run just before it
(``ratio_intake_to_floor``: this machine's speed moves by up to a third within a minute, and a pair
of rounds shares the moment; the ratio of the two medians is printed too) (PostgreSQL's own CPU is printed too, read from its backends' /proc
entries, so other databases on the machine do not count). This is the application's cost without
HTTP/TLS; bench/server_load.py measures the whole server over HTTPS (its CPU per report, against this floor).

    xcscan scan --profile all --format json > REPORT.json
    python bench/intake_floor.py --template REPORT.json [--hosts 40] [--rounds 5] [--threads 4]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "server"))
from fleet import Agent  # noqa: E402

PG_BASE = os.environ.get("XCSCAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
SIGN_PREFIX = b"xcscan-report/1\n"
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def backend_cpu(pids):
    """CPU seconds of these PostgreSQL backends (this benchmark's connections only)."""
    total = 0.0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / float(_HZ)
        except (OSError, IndexError, ValueError):
            pass
    return total


class Floor(object):
    """gunzip + orjson.loads + Ed25519 verify + one binary COPY of the report's row, per report."""

    COLS = ("id", "host_id", "received_at", "collected_at", "profile", "score", "loc_rate", "fail_count", "size",
            "sha256", "body_gz", "loc_cats")
    TYPES = ("text", "text", "int8", "int8", "text", "float8", "float8", "int4", "int8", "text", "bytea", "text")

    def __init__(self, url):
        import psycopg
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("CREATE TEMP TABLE floor_reports (id text PRIMARY KEY, host_id text, received_at int8, "
                          "collected_at int8, profile text, score float8, loc_rate float8, fail_count int4, "
                          "size int8, sha256 text, body_gz bytea, loc_cats text)")
        self.sql = "COPY floor_reports (%s) FROM STDIN (FORMAT BINARY)" % ", ".join(self.COLS)

    @property
    def pid(self):
        return self.conn.info.backend_pid

    def one(self, raw, host_id, timestamp, signature, key):
        import base64
        import zlib
        import orjson
        from scanner.server.intake.ingest import _INFLATE  # the fastest inflate installed, as intake's
        d = _INFLATE(16 + zlib.MAX_WBITS)
        body = d.decompress(raw)
        doc = orjson.loads(body)
        key.verify(base64.b64decode(signature), SIGN_PREFIX + host_id.encode() + b"\n" + timestamp.encode()
                   + b"\n" + body)
        row = (doc["report_id"], host_id, int(time.time()), int(timestamp), "all", 80.0, 0.5, 3, len(body),
               "0" * 64, raw, "{}")
        with self.conn.cursor() as cur:
            with cur.copy(self.sql) as copy:
                copy.set_types(self.TYPES)
                copy.write_row(row)

    def run(self, requests, keys):
        """CPU seconds of this process and of the backend for ``requests`` [(raw, headers)]."""
        self.conn.execute("TRUNCATE floor_reports")
        pg0, t0 = backend_cpu([self.pid]), time.process_time()
        for raw, h in requests:
            self.one(raw, h["X-Xcscan-Host"], h["X-Xcscan-Timestamp"], h["X-Xcscan-Signature"],
                     keys[h["X-Xcscan-Host"]])
        return time.process_time() - t0, backend_cpu([self.pid]) - pg0

    def close(self):
        self.conn.close()


def real_requests(template, agents, reports, base_ts):
    """[[(gzip body, headers)] per round]: every agent's report k, a re-addressed copy of ``template``."""
    rounds = []
    for k in range(reports):
        work = []
        for a in agents:
            doc = json.loads(template)
            doc["report_id"] = str(uuid.uuid4())
            doc["host"]["hostname"], doc["host"]["machine_id"] = a.hostname, a.machine_id
            body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
            work.append((gzip.compress(body, 6), a.headers(body, timestamp=base_ts + k * 3600)))
        rounds.append(work)
    return rounds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", required=True, help="a real report: xcscan scan --profile all --format json > FILE")
    ap.add_argument("--hosts", type=int, default=40, help="reports per round (one per host)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (the first one is each host's first report)")
    ap.add_argument("--threads", type=int, default=4)
    opts = ap.parse_args()

    import psycopg
    from scanner.server.access import accounts
    from scanner.server.app import tune_gc
    from scanner.server.intake import ingest
    from scanner.server.settings import Settings
    from scanner.server.store import db, migrate
    from scanner.server.store.scope import Scope

    tmp = tempfile.mkdtemp(prefix="xcscan-floor-")
    name = "xcscan_floor_%s" % secrets.token_hex(4)
    with psycopg.connect(PG_BASE, autocommit=True) as c:
        c.execute('CREATE DATABASE "%s"' % name)
    url = PG_BASE.rsplit("/", 1)[0] + "/" + name
    floor = engine = None
    try:
        engine = db.make_engine(url)
        migrate.upgrade(engine)
        settings = Settings(data_dir=tmp, db_url=url)
        agents, keys = [], {}
        for i in range(opts.hosts):
            tok = accounts.create_token(engine, "/gov/dept%d" % (i % 10), scope=Scope.everything())["token"]
            a = Agent("host%04d" % i, machine_id=secrets.token_hex(16))
            a.host_id = ingest.enroll(engine, tok, a.hostname, a.machine_id, a.public_key)["host_id"]
            keys[a.host_id] = ingest.load_public_key(a.public_key)
            agents.append(a)
        with open(opts.template, encoding="utf-8") as fh:
            template = fh.read()
        rounds = real_requests(template, agents, opts.rounds + 1, int(time.time()) - 86400)
        raw_size = len(gzip.decompress(rounds[0][0][0]))
        wire = len(rounds[0][0][0])
        floor = Floor(url)
        intake = ingest.Intake(engine, settings)
        intake.submit(*_args(rounds[0][0]))  # warm: imports, prepared statements, the key cache
        for a in agents:
            intake.hosts.get(a.host_id)
        floor.run(rounds[0][:4], keys)
        rounds[0] = rounds[0][1:]
        tune_gc()
        errors = []

        def submit_all(work):
            lock = threading.Lock()
            queue = list(reversed(work))

            def client():
                while True:
                    with lock:
                        if not queue:
                            return
                        req = queue.pop()
                    try:
                        intake.submit(*_args(req))
                    except Exception as exc:  # noqa: BLE001 - counted
                        errors.append(repr(exc))
            threads = [threading.Thread(target=client) for _ in range(opts.threads)]
            [t.start() for t in threads]
            [t.join() for t in threads]

        res = {"floor": [], "intake": [], "floor_pg": [], "intake_pg": []}
        for k, work in enumerate(rounds):
            if k == 0:
                submit_all(work)  # each host's first report: everything inserted (not a steady state)
                continue
            f_cpu, f_pg = floor.run(work, keys)
            res["floor"].append(1000 * f_cpu / len(work))
            res["floor_pg"].append(1000 * f_pg / len(work))
            pids = _backends(url)
            pg0, t0 = backend_cpu(pids), time.process_time()
            submit_all(work)
            res["intake"].append(1000 * (time.process_time() - t0) / len(work))
            res["intake_pg"].append(1000 * (backend_cpu(_backends(url)) - pg0) / len(work))
        med = {k: statistics.median(v) for k, v in res.items()}
        print(json.dumps({
            "template": opts.template, "report_bytes": raw_size, "wire_bytes": wire, "hosts": opts.hosts,
            "rounds": opts.rounds, "threads": opts.threads, "errors": len(errors), "first_errors": errors[:3],
            "floor_cpu_ms_per_report": round(med["floor"], 2), "intake_cpu_ms_per_report": round(med["intake"], 2),
            "ratio_intake_to_floor": round(statistics.median(i / f for i, f in zip(res["intake"], res["floor"])), 2),
            "ratio_of_medians": round(med["intake"] / med["floor"], 2),
            "floor_postgres_cpu_ms": round(med["floor_pg"], 2), "intake_postgres_cpu_ms": round(med["intake_pg"], 2),
            "rounds_ms": {k: [round(x, 2) for x in v] for k, v in res.items()},
            "machine_load_avg_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}))
    finally:
        if floor is not None:
            floor.close()
        if engine is not None:
            engine.dispose()
        with psycopg.connect(PG_BASE, autocommit=True) as c:
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            c.execute('DROP DATABASE IF EXISTS "%s"' % name)
        shutil.rmtree(tmp, ignore_errors=True)


def _args(req):
    raw, h = req
    return raw, "gzip", h["X-Xcscan-Host"], h["X-Xcscan-Timestamp"], h["X-Xcscan-Signature"]


def _backends(url):
    """Process ids of the PostgreSQL backends connected to this benchmark's database."""
    import psycopg
    dbname = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_BASE, autocommit=True) as c:
        return [r[0] for r in c.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> "
                                        "pg_backend_pid()", (dbname,))]


if __name__ == "__main__":
    main()
