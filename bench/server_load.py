#!/usr/bin/env python3
"""Aggregator load benchmark: N hosts enroll, then M signed, gzip'd reports each are sent by C
concurrent clients over real HTTPS to `xcscan server serve`; then the overview page is timed at that
fleet size. Runs against SQLite and/or PostgreSQL (a throw-away database at 127.0.0.1:5432).

    python bench/server_load.py                       # both databases, 1,000 hosts x 10 reports, 8 clients
    python bench/server_load.py --db postgres --workers 3 --hosts 200 --reports 5

Prints one JSON line per database with reports/s, latency percentiles and overview p95, and the
CPU per report of the server's processes, of the PostgreSQL backends serving this benchmark's
database (not the machine's other databases) and of the load generator itself, for all reports and
apart for each host's first report (``first_reports``: the host joins, every latest row is inserted)
and for the reports of hosts already known (``repeat_reports``: the daily steady state, and a
fleet's catch-up after an outage), sent one phase after the other.
Report generation and signing happen before the clock starts; the clients use keep-alive
connections (like an agent draining its spool).
"""
from __future__ import annotations

import argparse
import gzip
import http.client
import json
import multiprocessing
import os
import random
import secrets
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "server"))
from fleet import Agent, body_of, make_report  # noqa: E402

PG_BASE = os.environ.get("XCSCAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
ADMIN_PW = "bench-admin-password"


def pct(values, p):
    values = sorted(values)
    if not values:
        return None
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


_TEMPLATE = None


def _gen(args):
    hostname, machine_id, k, seed = args
    if _TEMPLATE is not None:  # a real report, re-addressed
        doc = json.loads(_TEMPLATE)
        doc["report_id"] = str(uuid.uuid4())
        doc["host"]["hostname"], doc["host"]["machine_id"] = hostname, machine_id
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        return body, gzip.compress(body, 6)
    rng = random.Random(seed)
    doc = make_report(hostname, machine_id=machine_id, rng=rng, profile=rng.choice(["mlps-l3", "mlps-l3", "xinchuang"]),
                      domestic_bias=0.3 + 0.06 * k)
    body = body_of(doc)
    return body, gzip.compress(body, 6)


class Conn(object):
    """One keep-alive HTTPS connection."""

    def __init__(self, port, ca):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.c = None

    def request(self, method, path, body=None, headers=None):
        for attempt in (1, 2):
            if self.c is None:
                self.c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=120)
            try:
                self.c.request(method, path, body=body, headers=headers or {})
                resp = self.c.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = None
                if attempt == 2:
                    raise


def cpu_seconds(procs):
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except Exception:  # noqa: BLE001 - a process that went away
            pass
    return total


def server_procs(pid):
    import psutil
    root = psutil.Process(pid)
    return [root] + root.children(recursive=True)


def postgres_procs(dbname=None):
    """PostgreSQL's processes: with ``dbname``, only the backends connected to that database (the
    server's connection pools), so other databases' work on a shared machine is not counted."""
    import psutil
    if dbname is None:
        return [p for p in psutil.process_iter(["name"]) if (p.info.get("name") or "").startswith("postgres")]
    import psycopg
    with psycopg.connect(PG_BASE, autocommit=True) as c:
        pids = [r[0] for r in c.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (dbname,))]
    out = []
    for pid in pids:
        try:
            out.append(psutil.Process(pid))
        except psutil.Error:
            pass
    return out


def start_server(data_dir, db_url, port, workers):
    env = dict(os.environ, XCSCAN_ADMIN_PASSWORD=ADMIN_PW)
    base = [sys.executable, "-m", "scanner", "server"]
    dbargs = ["--db", db_url] if db_url else []
    subprocess.run(base + ["init", "--data-dir", data_dir] + dbargs, check=True, env=env, capture_output=True)
    log = open(os.path.join(data_dir, "serve.log"), "w")
    proc = subprocess.Popen(base + ["serve", "--data-dir", data_dir, "--port", str(port), "--workers", str(workers),
                                    "--log-level", "warning"] + dbargs, stdout=log, stderr=subprocess.STDOUT)
    conn = Conn(port, os.path.join(data_dir, "ca.pem"))
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            conn.request("GET", "/api/v1/openapi.json")
            return proc, conn
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start; see %s" % log.name)


def _set_template(path):
    global _TEMPLATE
    _TEMPLATE = open(path, encoding="utf-8").read() if path else None


def run(kind, opts):
    tmp = tempfile.mkdtemp(prefix="xcscan-bench-")
    db_url = None
    pg_name = None
    if kind == "postgres":
        import psycopg
        pg_name = "xcscan_bench_%s" % secrets.token_hex(4)
        with psycopg.connect(PG_BASE, autocommit=True) as c:
            c.execute('CREATE DATABASE "%s"' % pg_name)
        db_url = PG_BASE.rsplit("/", 1)[0] + "/" + pg_name
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc, admin = start_server(tmp, db_url, port, opts.workers)
    try:
        st, body = admin.request("POST", "/api/v1/session", json.dumps({"username": "admin", "password": ADMIN_PW}),
                                 {"Content-Type": "application/json"})
        auth = {"Authorization": "Bearer " + json.loads(body)["token"], "Content-Type": "application/json"}
        orgs = ["/gov/%s/%s" % (d, u) for d in ("finance", "health", "education", "transport", "tax")
                for u in ("hq", "east", "west", "north")]
        agents = []
        tokens = {}
        for org in orgs:
            st, body = admin.request("POST", "/api/v1/tokens", json.dumps({"org": org, "uses": opts.hosts}), auth)
            tokens[org] = json.loads(body)["token"]
        for i in range(opts.hosts):
            a = Agent("host-%04d.%s" % (i, "gov.cn"), machine_id=uuid.uuid4().hex)
            a.org = orgs[i % len(orgs)]
            agents.append(a)

        def enroll(chunk):
            conn = Conn(port, os.path.join(tmp, "ca.pem"))
            for a in chunk:
                st, body = conn.request("POST", "/api/v1/enroll", json.dumps(a.enroll_body(tokens[a.org])),
                                        {"Content-Type": "application/json"})
                assert st == 201, body
                a.host_id = json.loads(body)["host_id"]
        threads = [threading.Thread(target=enroll, args=(agents[i::opts.clients],)) for i in range(opts.clients)]
        t0 = time.time()
        [t.start() for t in threads]
        [t.join() for t in threads]
        enroll_s = time.time() - t0

        # pre-generate: report k of every host, oldest day first (a fleet reporting daily)
        t0 = time.time()
        jobs = [(a.hostname, a.machine_id, k, "%s-%d" % (a.hostname, k)) for k in range(opts.reports) for a in agents]
        with multiprocessing.Pool(min(4, os.cpu_count() or 2), initializer=_set_template,
                                  initargs=(opts.template,)) as pool:
            bodies = pool.map(_gen, jobs, chunksize=64)
        now = time.time()
        requests = []
        for (hostname, _m, k, _s), (raw, gz) in zip(jobs, bodies):
            a = agents[int(hostname.split("-")[1].split(".")[0])]
            ts = now - (opts.reports - k) * 86400 * (12.0 / max(opts.reports, 1)) + random.random() * 3600
            h = a.headers(raw, timestamp=ts)
            h["Content-Encoding"] = "gzip"
            requests.append((gz, h))
        gen_s = time.time() - t0
        wire = sum(len(g) for g, _h in requests)
        raw_total = sum(len(r) for r, _g in bodies)
        del bodies

        errors = []

        def send(batch):
            """Send ``batch`` from the clients; (latencies, seconds, server, PostgreSQL and client CPU seconds)."""
            latencies = []
            lock = threading.Lock()
            queue = list(reversed(batch))

            def client():
                conn = Conn(port, os.path.join(tmp, "ca.pem"))
                mine = []
                while True:
                    with lock:
                        if not queue:
                            break
                        gz, h = queue.pop()
                    t1 = time.perf_counter()
                    st, body = conn.request("POST", "/api/v1/reports", gz, h)
                    mine.append(time.perf_counter() - t1)
                    if st != 200:
                        errors.append((st, body[:200]))
                with lock:
                    latencies.extend(mine)
            threads = [threading.Thread(target=client) for _ in range(opts.clients)]
            procs, pg_procs = server_procs(proc.pid), postgres_procs(pg_name) if kind == "postgres" else []
            cpu0, pg0 = cpu_seconds(procs), cpu_seconds(pg_procs)
            client0 = time.process_time()  # this process: the load generator's clients
            t0 = time.time()
            [t.start() for t in threads]
            [t.join() for t in threads]
            seconds = time.time() - t0
            client_cpu = time.process_time() - client0
            # backends the pools opened during the load count from zero
            pg_new = [p for p in postgres_procs(pg_name) if p.pid not in {q.pid for q in pg_procs}] if pg_name else []
            return (latencies, seconds, cpu_seconds(procs) - cpu0, cpu_seconds(pg_procs) - pg0 + cpu_seconds(pg_new),
                    client_cpu)

        # each host's first report (it joins: every latest row inserted), then the reports of hosts
        # already known (the daily steady state, and an outage's catch-up), measured apart and together
        phases = [send(requests[:opts.hosts])]
        if len(requests) > opts.hosts:
            phases.append(send(requests[opts.hosts:]))
        latencies = [x for ph in phases for x in ph[0]]
        load_s, server_cpu, pg_cpu, client_cpu = (sum(ph[i] for ph in phases) for i in range(1, 5))

        def phase(ph):
            n = max(len(ph[0]), 1)
            return {"reports": len(ph[0]), "reports_per_s": round(len(ph[0]) / ph[1], 1),
                    "server_cpu_ms_per_report": round(1000 * ph[2] / n, 2),
                    "postgres_cpu_ms_per_report": round(1000 * ph[3] / n, 2) if kind == "postgres" else None,
                    "client_cpu_ms_per_report": round(1000 * ph[4] / n, 2),
                    "cpu_bound_capacity_with_clients_per_s": round((os.cpu_count() or 1) / max(
                        (ph[2] + ph[3] + ph[4]) / n, 1e-9), 1)}
        import psutil
        load_avg = os.getloadavg()[0]

        # overview at this size: the web page (what an officer opens) and its API twin
        st, body = admin.request("GET", "/login")
        import re
        csrf = re.search(rb'name="csrf_token" value="([^"]+)"', body).group(1).decode()
        cookie = admin.c.sock and None
        page_times, api_times = [], []
        web = Conn(port, os.path.join(tmp, "ca.pem"))
        web.c = http.client.HTTPSConnection("127.0.0.1", port, context=web.ctx, timeout=60)
        web.c.request("GET", "/login")
        resp = web.c.getresponse()
        resp.read()
        login_cookie = resp.getheader("set-cookie").split(";")[0]
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', resp.read().decode() or "") if False else csrf
        web.c.request("GET", "/login")
        resp = web.c.getresponse()
        text = resp.read().decode()
        login_cookie = resp.getheader("set-cookie").split(";")[0]
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)
        form = "username=admin&password=%s&csrf_token=%s&next=/" % (ADMIN_PW, csrf)
        web.c.request("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded", "Cookie": login_cookie})
        resp = web.c.getresponse()
        resp.read()
        session_cookie = [c.split(";")[0] for c in resp.headers.get_all("set-cookie") if c.startswith("xcscan_session")][0]
        for i in range(opts.samples + 3):
            t1 = time.perf_counter()
            st, body = web.request("GET", "/", headers={"Cookie": session_cookie})
            dt = time.perf_counter() - t1
            assert st == 200 and b"host-count" in body, (st, body[:300])
            if i >= 3:
                page_times.append(dt)
            t1 = time.perf_counter()
            st, body = admin.request("GET", "/api/v1/overview", headers=auth)
            dt = time.perf_counter() - t1
            if i >= 3:
                api_times.append(dt)
        ov = json.loads(body)
        st, body = admin.request("GET", "/api/v1/hosts?limit=1", headers=auth)
        result = {
            "db": kind, "template": opts.template or "synthetic", "workers": opts.workers, "clients": opts.clients, "hosts": opts.hosts,
            "reports": len(latencies), "errors": len(errors), "first_errors": [str(e) for e in errors[:3]],
            "report_bytes_avg": int(raw_total / max(len(requests), 1)), "wire_bytes_avg": int(wire / max(len(requests), 1)),
            "enroll_s": round(enroll_s, 2), "pregen_s": round(gen_s, 2),
            "load_s": round(load_s, 2), "reports_per_s": round(len(latencies) / load_s, 1),
            "first_reports": phase(phases[0]), "repeat_reports": phase(phases[1]) if len(phases) > 1 else None,
            # CPU actually spent per report, independent of what else runs on the machine, and the
            # throughput that implies for this machine's cores if nothing else competed for them
            "server_cpu_ms_per_report": round(1000 * server_cpu / max(len(latencies), 1), 2),
            "postgres_cpu_ms_per_report": round(1000 * pg_cpu / max(len(latencies), 1), 2) if kind == "postgres" else None,
            "client_cpu_ms_per_report": round(1000 * client_cpu / max(len(latencies), 1), 2),
            "cpu_bound_capacity_per_s": round((os.cpu_count() or 1) / max((server_cpu + pg_cpu) / max(len(latencies), 1), 1e-9), 1),
            # the same with the load generator's own CPU counted (it shares this machine's cores)
            "cpu_bound_capacity_with_clients_per_s": round((os.cpu_count() or 1) / max(
                (server_cpu + pg_cpu + client_cpu) / max(len(latencies), 1), 1e-9), 1),
            "machine_load_avg_1m": round(load_avg, 2), "cpus": os.cpu_count(),
            "latency_ms": {"p50": round(1000 * statistics.median(latencies), 1), "p95": round(1000 * pct(latencies, 95), 1),
                           "p99": round(1000 * pct(latencies, 99), 1), "max": round(1000 * max(latencies), 1)},
            "overview_page_ms": {"p50": round(1000 * statistics.median(page_times), 1), "p95": round(1000 * pct(page_times, 95), 1)},
            "overview_api_ms": {"p50": round(1000 * statistics.median(api_times), 1), "p95": round(1000 * pct(api_times, 95), 1)},
            "overview_hosts": ov["hosts"],
        }
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if pg_name and not opts.keep:
            import psycopg
            with psycopg.connect(PG_BASE, autocommit=True) as c:
                c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (pg_name,))
                c.execute('DROP DATABASE IF EXISTS "%s"' % pg_name)
        if not opts.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept %s%s" % (tmp, " and the database " + db_url if db_url else ""), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--reports", type=int, default=10, help="reports per host")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=None,
                    help="uvicorn worker processes (default: 1 for SQLite, whose writes serialise anyway; one per CPU plus one "
                         "for PostgreSQL, which measured best: docs/server.md)")
    ap.add_argument("--samples", type=int, default=50, help="overview page requests to time")
    ap.add_argument("--keep", action="store_true", help="keep the data directory (and the PostgreSQL database)")
    ap.add_argument("--template", default=None,
                    help="send copies of this real report (xcscan scan --format json > FILE) instead of the "
                         "synthetic ~50 KB fleet reports")
    opts = ap.parse_args()
    workers = opts.workers
    for kind in (["sqlite", "postgres"] if opts.db == "both" else [opts.db]):
        opts.workers = workers or (1 if kind == "sqlite" else (os.cpu_count() or 1) + 1)
        print(json.dumps(run(kind, opts)), flush=True)


if __name__ == "__main__":
    main()
