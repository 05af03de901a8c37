#!/usr/bin/env python3
"""Aggregator intake without HTTP: the application's own cost per report.

N hosts enroll, then T threads (like the ASGI thread pool) call ``ingest.submit`` with
pre-signed, gzip'd reports, through the same batch writer the server uses. Prints reports/s and
this process's CPU milliseconds per report (decompress, verify, parse, derive, store, commit),
plus PostgreSQL's CPU per report. Use it to iterate on the store path; bench/server_load.py
measures the whole server over TLS.

    python bench/server_store.py --db postgres --hosts 300 --reports 5 --threads 8
    python bench/server_store.py --db postgres --hosts 300 --reports 5 --drift 3   # hosts reporting again

``--drift N``: each host's later reports are its previous one with N result statuses drawn again (a
host whose state moves a little each day, as real hosts do) instead of a fresh random report each
time (about two thirds of a synthetic report's results change from one report to the next).
"""
from __future__ import annotations

import argparse
import collections
import copy
import gzip
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "server"))
from fleet import Agent, body_of, make_report  # noqa: E402

PG_BASE = os.environ.get("XCSCAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_cpu():
    import psutil
    total = 0.0
    for p in psutil.process_iter(["name"]):
        if (p.info.get("name") or "").startswith("postgres"):
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except Exception:  # noqa: BLE001 - gone
                pass
    return total


def run(kind, opts):
    from scanner.server.store import db
    from scanner.server.intake import ingest
    from scanner.server.store import migrate
    from scanner.server.access import accounts
    from scanner.server.store.scope import Scope
    from scanner.server.settings import Settings
    tmp = tempfile.mkdtemp(prefix="xcscan-store-bench-")
    pg_name = None
    if kind == "postgres":
        import psycopg
        pg_name = "xcscan_storebench_%s" % secrets.token_hex(4)
        with psycopg.connect(PG_BASE, autocommit=True) as c:
            c.execute('CREATE DATABASE "%s"' % pg_name)
        url = PG_BASE.rsplit("/", 1)[0] + "/" + pg_name
    else:
        url = os.path.join(tmp, "xcscan.db")
    try:
        settings = Settings(data_dir=tmp, db_url=url)
        engine = db.make_engine(url)
        migrate.upgrade(engine)
        rng = random.Random(7)
        agents = []
        for i in range(opts.hosts):
            org = "/gov/dept%d" % (i % 10)
            tok = accounts.create_token(engine, org, scope=Scope.everything())["token"]
            a = Agent("host%04d" % i, machine_id=secrets.token_hex(16))
            a.host_id = ingest.enroll(engine, tok, a.hostname, a.machine_id, a.public_key)["host_id"]
            agents.append(a)
        work = []
        body_bytes = 0
        template = open(opts.template, encoding="utf-8").read() if opts.template else None
        previous = {}
        base = int(time.time()) - opts.reports * 3600
        for k in range(opts.reports):
            for a in agents:
                if template is not None:
                    doc = json.loads(template)
                    doc["report_id"] = str(uuid.uuid4())
                    doc["host"]["hostname"] = a.hostname
                    doc["host"]["machine_id"] = a.machine_id
                elif opts.drift is not None and k > 0:
                    doc = copy.deepcopy(previous[a.host_id])
                    doc["report_id"] = str(uuid.uuid4())
                    for r in rng.sample(doc["results"], min(opts.drift, len(doc["results"]))):
                        r["status"] = rng.choice(["pass", "fail", "error", "pass"])
                else:
                    doc = make_report(a.hostname, machine_id=a.machine_id, rng=rng,
                                      profile=rng.choice(["mlps-l3", "mlps-l3", "xinchuang"]))
                previous[a.host_id] = doc
                body = body_of(doc)
                h = a.headers(body, timestamp=base + k * 3600)
                work.append((gzip.compress(body, 6), h))
                body_bytes += len(body)
        work = collections.deque(work)
        intake = ingest.Intake(engine, settings)
        lock = threading.Lock()
        errors = []

        def client():
            while True:
                with lock:
                    if not work:
                        return
                    raw, h = work.popleft()  # in the order made: each host's reports oldest first
                try:
                    intake.submit(raw, "gzip", h["X-Xcscan-Host"], h["X-Xcscan-Timestamp"], h["X-Xcscan-Signature"])
                except Exception as exc:  # noqa: BLE001 - counted
                    errors.append(repr(exc))

        n = len(work)
        threads = [threading.Thread(target=client) for _ in range(opts.threads)]
        pg0, cpu0, t0 = postgres_cpu(), time.process_time(), time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall, cpu, pg = time.perf_counter() - t0, time.process_time() - cpu0, postgres_cpu() - pg0
        engine.dispose()
        return {"db": kind, "template": opts.template or "synthetic", "drift": opts.drift, "body_bytes_avg": body_bytes // n, "reports": n, "threads": opts.threads, "errors": len(errors), "first_errors": errors[:3],
                "reports_per_s": round(n / wall, 1), "app_cpu_ms_per_report": round(1000 * cpu / n, 3),
                "postgres_cpu_ms_per_report": round(1000 * pg / n, 3) if kind == "postgres" else None}
    finally:
        if pg_name:
            import psycopg
            with psycopg.connect(PG_BASE, autocommit=True) as c:
                c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (pg_name,))
                c.execute('DROP DATABASE IF EXISTS "%s"' % pg_name)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--hosts", type=int, default=300)
    ap.add_argument("--reports", type=int, default=5, help="reports per host")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--drift", type=int, default=None, metavar="N",
                    help="later reports: the host's previous one with N statuses drawn again (default: a fresh report)")
    ap.add_argument("--template", default=None,
                    help="a real report (xcscan scan --format json > FILE) to send instead of the synthetic fleet "
                         "reports; each copy gets its own report_id and host")
    opts = ap.parse_args()
    for kind in (["sqlite", "postgres"] if opts.db == "both" else [opts.db]):
        print(json.dumps(run(kind, opts)), flush=True)


if __name__ == "__main__":
    main()
