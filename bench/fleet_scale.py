#!/usr/bin/env python3
"""The fleet side at scale: seed a PostgreSQL aggregator with N hosts and D days of history in
seconds, then time every fleet page and API and the full findings export against their floor.

    python bench/fleet_scale.py                               # 1,000 hosts x 30 days (a quick run)
    python bench/fleet_scale.py --hosts 10000 --days 90       # the issue's fleet
    python bench/fleet_scale.py --template R.json             # a real report (xcscan scan --profile all --format json)
    python bench/fleet_scale.py --before ../main              # also main's code on a copy, interleaved

Seeding does not post reports over HTTP (600k of them would take hours): a few report documents
(synthetic fleet reports, or copies of ``--template``) go through the intake's own ``derive`` and
the batch writer's ``store_batch`` once, so every latest-state row has exactly the shape intake
writes; PostgreSQL then copies those rows to every host with ``generate_series`` (statuses flipped
for a stable, per host and rule pseudo-random subset so hosts differ), recomputes the profile
counts from them, and writes D daily history rows per host (scalars as intake writes them; the
latest report's stored body is the seed report's, older ones' a stub: no page reads bodies). Waivers are
made through the workflow's ``create_waiver`` (which points the covered rows at them).

Then a real ``xcscan server serve`` (one worker, TLS) answers the pages and APIs; each timed
request is interleaved with its floor, the bare SQL that reads the same rows (psycopg, no
application), and the report gives p50/p95 of both and their ratio. The full findings CSV
export is streamed by the client, which counts its rows (compared with the table's count); the
server's peak RSS is sampled during it; its floor is ``COPY (the same join) TO STDOUT``.

The database is a throw-away one (``xcscan_fleetbench_<random>``) created and dropped here.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import http.client
import io
import json
import os
import random
import re
import secrets
import shutil
import socket
import ssl
import statistics
import subprocess
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
ADMIN_PW = "bench-admin-password"
DEPTS = ("finance", "health", "education", "transport", "tax", "police", "water", "energy", "culture", "audit")
UNITS = ("hq", "east", "west", "north", "south", "city1", "city2", "city3", "city4", "city5")
PROFILES = ("mlps-l3", "mlps-l3", "xinchuang")
# the stored body of history reports older than the latest: no page reads it, and copying a real
# one to every row would make the bench database tens of GB (storage is measured elsewhere)
STUB_BODY = gzip.compress(b"{}")


def pct(values, p):
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


def ms(values):
    return {"p50": round(1000 * statistics.median(values), 1), "p95": round(1000 * pct(values, 95), 1)}


# --- seeding ----------------------------------------------------------------------------------------
def seed_documents(opts):
    """One seed document per profile: synthetic fleet reports or copies of ``--template``."""
    docs = []
    for k, profile in enumerate(sorted(set(PROFILES))):
        if opts.template:
            doc = json.load(open(opts.template, encoding="utf-8"))
            doc["summary"]["profile"] = profile
        else:
            doc = make_report("seed%d" % k, machine_id=uuid.uuid4().hex, rng=random.Random(k), profile=profile)
        docs.append(doc)
    return docs


# one host in twenty replaced a foreign operating system by Kylin on one day of the history (its records only:
# a foreign component gone, a domestic one new, in one category; the 信创 page's substitutions)
SUBSTITUTIONS = """
    INSERT INTO component_changes (host_id, at, op, category, comp_key, product_id, name_zh, name_en, origin,
                                   version, substitutes, prev_at)
    SELECT f.id, %(now)s - ((f.i / 20) %% (%(last)s + 1)) * 86400 - (f.i %% 7200) - 30, o.op, 'os', o.k, o.k,
           o.zh, o.en, o.origin, o.v, o.subs, -1
    FROM fleet f CROSS JOIN (VALUES ('remove', 'legacy-os', '旧操作系统', 'Legacy OS', 'foreign', '7', '["kylin"]'),
                                    ('add', 'kylin', '银河麒麟', 'Kylin', 'domestic', 'V10', '[]'))
                            AS o(op, k, zh, en, origin, v, subs)
    WHERE f.i %% 20 = 0"""


def seed_changes(cur, now, opts):
    """The change records (store/changes.py) of that history, shaped as intake writes them: on every
    report after a host's first, ``--changes`` of its rules (picked per host and day) flip pass <-> fail,
    each record naming its key's change before it (``prev_at``, -1 for none); every tenth report also
    replaces one component by a newer version (removed and added), and one host in twenty replaced a foreign
    OS by a domestic one on one day (SUBSTITUTIONS). And each host's first report time
    (host_firsts)."""
    cur.execute("CREATE TEMP TABLE seed_rules AS SELECT row_number() OVER (PARTITION BY profile ORDER BY rule_id) - 1 "
                "AS k, profile, rule_id, severity, title_zh, title_en FROM results "
                "WHERE host_id IN (SELECT host_id FROM seed_map)")
    cur.execute("""
        INSERT INTO result_changes (host_id, profile, rule_id, at, status_before, status_after, severity,
                                    title_zh, title_en, prev_at)
        SELECT host_id, profile, rule_id, at,
               CASE WHEN n %% 2 = 1 THEN 'pass' ELSE 'fail' END, CASE WHEN n %% 2 = 1 THEN 'fail' ELSE 'pass' END,
               severity, title_zh, title_en, prev_at
        FROM (SELECT x.*, row_number() OVER w AS n, coalesce(lag(at) OVER w, -1) AS prev_at
              FROM (SELECT DISTINCT f.id AS host_id, r.profile, r.rule_id, r.severity, r.title_zh, r.title_en,
                           %(now)s - d * 86400 - (f.i %% 7200) - 60 AS at
                    FROM fleet f CROSS JOIN generate_series(0, %(last)s) AS d CROSS JOIN generate_series(1, %(per)s) AS j
                    JOIN (SELECT profile, count(*) AS nr FROM seed_rules GROUP BY profile) c ON c.profile = f.profile
                    JOIN seed_rules r ON r.profile = f.profile AND r.k = abs(hashtext(f.id || ':' || d || ':' || j)) %% c.nr) x
              WINDOW w AS (PARTITION BY host_id, profile, rule_id ORDER BY at)) y
        ORDER BY at""", {"now": now, "last": opts.days - 2, "per": opts.changes})
    cur.execute("""
        INSERT INTO component_changes (host_id, at, op, category, comp_key, product_id, name_zh, name_en, origin,
                                       version, substitutes, prev_at)
        SELECT host_id, at, op, category, comp_key, product_id, name_zh, name_en, origin,
               CASE op WHEN 'remove' THEN version || '.' || (d + 1) ELSE version || '.' || d END, substitutes,
               coalesce(lag(at) OVER (PARTITION BY host_id, category, comp_key ORDER BY at, op DESC), -1)
        FROM (SELECT f.id AS host_id, %(now)s - d * 86400 - (f.i %% 7200) - 60 AS at, d, o.op, c.category,
                     coalesce(c.product_id, c.name_en) AS comp_key, c.product_id, c.name_zh, c.name_en, c.origin,
                     c.version, c.substitutes
              FROM fleet f CROSS JOIN generate_series(0, %(last)s) AS d
              JOIN components c ON c.host_id = f.id AND c.seq = abs(hashtext(f.id || ':' || d)) %%
                   (SELECT count(*) FROM components x WHERE x.host_id = f.id)
              CROSS JOIN (VALUES ('remove'), ('add')) AS o(op)
              WHERE (f.i + d) %% 10 = 0) z
        ORDER BY at, op DESC""", {"now": now, "last": opts.days - 2})
    cur.execute(SUBSTITUTIONS, {"now": now, "last": opts.days - 2})
    cur.execute("INSERT INTO host_firsts (host_id, first_collected) SELECT host_id, min(collected_at) FROM reports "
                "WHERE host_id IN (SELECT id FROM fleet) GROUP BY host_id")


def seed(engine, url, opts, log):
    """Seed hosts, latest state and history; return facts the measurements need."""
    import psycopg
    from scanner.server.access import accounts
    from scanner.server.intake import ingest
    from scanner.server.intake.batch import Item, store_batch
    from scanner.server.store import db
    from scanner.server.store.scope import Scope
    from scanner.server.workflow import waivers

    t0 = time.time()
    orgs = ["/gov/%s/%s" % (d, u) for d in DEPTS[:opts.depts] for u in UNITS[:opts.units]]
    # 1. one enrolled host per seed document, through the project's own enrollment and store
    seeds = []
    now = int(time.time())
    for k, doc in enumerate(seed_documents(opts)):
        a = Agent("seed-%d" % k, machine_id=doc["host"].get("machine_id") or uuid.uuid4().hex)
        tok = accounts.create_token(engine, orgs[0], scope=Scope.everything())["token"]
        a.host_id = ingest.enroll(engine, tok, a.hostname, a.machine_id, a.public_key)["host_id"]
        doc["report_id"] = str(uuid.uuid4())
        doc["host"]["machine_id"] = a.machine_id
        body = body_of(doc)
        gz = gzip.compress(body, 6)
        item = Item(doc["report_id"], a.host_id, now, now - 3600, ingest.derive(ingest.parse_report(body)), gz,
                    len(body), hashlib.sha256(body).hexdigest())
        with db.write_tx(engine) as conn:
            out = store_batch(conn, [item])
            assert not isinstance(out[0], Exception), out
        seeds.append((a.host_id, doc["summary"]["profile"]))
    log("seed documents stored: %d (%.1fs)" % (len(seeds), time.time() - t0))

    # 2. copy them to N hosts x D days inside PostgreSQL
    n, days = opts.hosts, opts.days
    with psycopg.connect(url, autocommit=False) as c:
        cur = c.cursor()
        cur.execute("CREATE TEMP TABLE seed_map (k int, host_id text, profile text)")
        with cur.copy("COPY seed_map FROM STDIN") as cp:
            for k, (hid, prof) in enumerate(seeds):
                cp.write_row((k, hid, prof))
        cur.execute("CREATE TEMP TABLE orgs (k int, path text)")
        with cur.copy("COPY orgs FROM STDIN") as cp:
            for k, path in enumerate(orgs):
                cp.write_row((k, path))
        # profile of host i: PROFILES[i % 3] -> seed index
        prof_seed = {p: k for k, (_h, p) in enumerate(seeds)}
        cur.execute("CREATE TEMP TABLE fleet AS SELECT i, "
                    "md5('host' || i)::uuid::text AS id, "
                    "(SELECT host_id FROM seed_map WHERE k = (ARRAY%s)[i %% 3 + 1]) AS seed_id, "
                    "(ARRAY%s)[i %% 3 + 1] AS profile, "
                    "(SELECT path FROM orgs WHERE k = i %% %d) AS org_path "
                    "FROM generate_series(0, %d) AS i" % (
                        [prof_seed[p] for p in PROFILES], list(PROFILES), len(orgs), n - 1))
        t1 = time.time()
        cur.execute("""
            INSERT INTO hosts (id, hostname, machine_id, org_path, public_key, token_id, enrolled_at, last_seen,
                               latest_report_id, latest_collected, os_name, os_family, loc_domestic, loc_foreign,
                               loc_unknown, loc_rate)
            SELECT f.id, 'host-' || lpad(f.i::text, 6, '0') || '.gov.cn', md5('m' || f.i), f.org_path,
                   s.public_key, s.token_id, %(now)s - %(days)s * 86400 - 86400,
                   %(now)s - (f.i %% 7200), md5('r' || f.i || '-0')::uuid::text, %(now)s - (f.i %% 7200) - 60,
                   s.os_name, s.os_family, s.loc_domestic, s.loc_foreign, s.loc_unknown, s.loc_rate
            FROM fleet f JOIN hosts s ON s.id = f.seed_id""", {"now": now, "days": days})
        cur.execute("""
            INSERT INTO components (host_id, seq, category, product_id, name_zh, name_en, vendor_en, vendor_zh,
                                    origin, version, evidence, substitutes)
            SELECT f.id, c.seq, c.category, c.product_id, c.name_zh, c.name_en, c.vendor_en, c.vendor_zh,
                   CASE WHEN abs(hashtext(f.id || c.seq)) % 5 = 0 THEN 'foreign' ELSE c.origin END,
                   c.version, c.evidence, c.substitutes
            FROM fleet f JOIN components c ON c.host_id = f.seed_id""")
        # statuses: a stable pseudo-random ~flip_pct % of each host's results flip pass <-> fail
        cur.execute("""
            INSERT INTO results (host_id, profile, rule_id, title_zh, title_en, category, severity, status,
                                 actual, expected, evidence, waiver_id, waiver_until)
            SELECT f.id, r.profile, r.rule_id, r.title_zh, r.title_en, r.category, r.severity,
                   CASE WHEN abs(hashtext(f.id || r.rule_id)) %% 100 < %(flip)s
                        THEN CASE r.status WHEN 'pass' THEN 'fail' WHEN 'fail' THEN 'pass' ELSE r.status END
                        ELSE r.status END,
                   r.actual, r.expected, r.evidence, NULL, NULL
            FROM fleet f JOIN results r ON r.host_id = f.seed_id""", {"flip": opts.flip})
        log("latest state copied (%.1fs)" % (time.time() - t1))
        t1 = time.time()
        cur.execute("""
            INSERT INTO host_profiles (host_id, profile, report_id, collected_at, score, score_without_waivers,
                                       passed, failed, errors, other)
            SELECT h.id, f.profile, h.latest_report_id, h.latest_collected,
                   round((100.0 * x.passed / greatest(x.passed + x.failed, 1))::numeric, 2),
                   round((100.0 * x.passed / greatest(x.passed + x.failed, 1))::numeric, 2),
                   x.passed, x.failed, x.errors, x.total - x.passed - x.failed - x.errors
            FROM fleet f JOIN hosts h ON h.id = f.id
            JOIN (SELECT host_id, count(*) FILTER (WHERE status = 'pass') AS passed,
                         count(*) FILTER (WHERE status = 'fail') AS failed,
                         count(*) FILTER (WHERE status = 'error') AS errors, count(*) AS total
                  FROM results GROUP BY host_id) x ON x.host_id = f.id""")
        # history: one report per host and day, newest (day 0) is the latest state's
        cur.execute("""
            INSERT INTO reports (id, host_id, received_at, collected_at, profile, score, loc_rate, fail_count,
                                 size, sha256, body_gz)
            SELECT md5('r' || f.i || '-' || d)::uuid::text, f.id,
                   %(now)s - d * 86400 - (f.i %% 7200), %(now)s - d * 86400 - (f.i %% 7200) - 60, f.profile,
                   greatest(0, least(100, hp.score + (abs(hashtext(f.id || d)) %% 1000) / 100.0 - 5 + d / 10.0)),
                   h.loc_rate, hp.failed, s.size, md5('r' || f.i || '-' || d) || md5('s' || f.i || '-' || d),
                   CASE WHEN d = 0 THEN s.body_gz ELSE %(stub)s END
            FROM fleet f JOIN hosts h ON h.id = f.id JOIN host_profiles hp ON hp.host_id = f.id
            JOIN reports s ON s.host_id = f.seed_id
            CROSS JOIN generate_series(0, %(last)s) AS d""", {"now": now, "last": days - 1, "stub": STUB_BODY})
        log("history: %d reports (%.1fs)" % (n * days, time.time() - t1))
        t1 = time.time()
        seed_changes(cur, now, opts)
        log("change records: %d results, %d components (%.1fs)" % (
            cur.execute("SELECT count(*) FROM result_changes").fetchone()[0],
            cur.execute("SELECT count(*) FROM component_changes").fetchone()[0], time.time() - t1))
        # the seed hosts leave the fleet (they were only templates); their latest rows and change records
        # have no foreign key to cascade from (migration 0031)
        for table in ("results", "components", "result_changes", "component_changes"):
            cur.execute("DELETE FROM %s WHERE host_id IN (SELECT host_id FROM seed_map)" % table)
        cur.execute("DELETE FROM hosts WHERE id IN (SELECT host_id FROM seed_map)")
        c.commit()
    # the maintained aggregates (store/aggregates.py) of the rows copied above, as the migration
    # that introduced them counts them; from here on the workflow keeps them
    try:
        from scanner.server.store import aggregates
    except ImportError:
        aggregates = None
    if aggregates is not None:
        t1 = time.time()
        with db.write_tx(engine) as conn:
            aggregates.rebuild(conn)
            aggregates.refresh_profiles(conn)
        log("aggregates counted (%.1fs)" % (time.time() - t1))
    # 3. waivers, through the workflow (points the covered failures at them)
    t1 = time.time()
    with engine.connect() as conn:
        top = conn.exec_driver_sql("SELECT rule_id FROM results WHERE status = 'fail' GROUP BY rule_id "
                                   "ORDER BY count(*) DESC, rule_id LIMIT 3").all()
    for k, (rule_id,) in enumerate(top):
        scope, value = (("org", "/gov/%s" % DEPTS[k]) if k < 2 else ("all", None))
        waivers.create_waiver(engine, {"rule_id": rule_id, "scope": scope, "scope_value": value,
                                       "justification": "bench", "approver": "bench",
                                       "expires_at": now + 30 * 86400}, "bench", scope=Scope.everything())
    log("waivers: %d (%.1fs)" % (len(top), time.time() - t1))
    with psycopg.connect(url, autocommit=True) as c:
        t1 = time.time()
        c.execute("VACUUM ANALYZE")
        log("vacuum analyze (%.1fs)" % (time.time() - t1))
        counts = {t: c.execute("SELECT count(*) FROM %s" % t).fetchone()[0]
                  for t in ("hosts", "results", "components", "host_profiles", "reports")}
        size = c.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return {"seed_s": round(time.time() - t0, 1), "rows": counts, "db_bytes": size, "orgs": orgs}


# --- the server and its clients -----------------------------------------------------------------------
class Https(object):
    def __init__(self, port, ca):
        self.port, self.ctx = port, ssl.create_default_context(cafile=ca)
        self.c = None

    def request(self, method, path, body=None, headers=None):
        for attempt in (1, 2):
            if self.c is None:
                self.c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=600)
            try:
                self.c.request(method, path, body=body, headers=headers or {})
                resp = self.c.getresponse()
                return resp.status, resp.read(), resp
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = None
                if attempt == 2:
                    raise


def start_server(tmp, url, port, src=None):
    """The server runs this checkout's code, or ``src``'s (another checkout, e.g. main's for a
    before/after run), whatever the installed package is."""
    env = dict(os.environ, XCSCAN_ADMIN_PASSWORD=ADMIN_PW, PYTHONPATH=os.path.abspath(src or os.path.dirname(HERE)))
    base = [sys.executable, "-m", "scanner", "server"]
    log = open(os.path.join(tmp, "serve.log"), "w")
    proc = subprocess.Popen(base + ["serve", "--data-dir", tmp, "--port", str(port), "--workers", "1",
                                    "--log-level", "warning", "--db", url], stdout=log, stderr=subprocess.STDOUT,
                            env=env, cwd=tmp)
    conn = Https(port, os.path.join(tmp, "ca.pem"))
    deadline = time.time() + 180  # a loaded machine
    while time.time() < deadline:
        try:
            conn.request("GET", "/api/v1/openapi.json")
            return proc, conn
        except OSError:
            time.sleep(0.2)
    log.close()
    raise SystemExit("server did not start:\n%s" % open(log.name, encoding="utf-8", errors="replace").read()[-3000:])


def web_session(conn):
    st, text, resp = conn.request("GET", "/login")
    cookie = resp.getheader("set-cookie").split(";")[0]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', text.decode()).group(1)
    form = "username=admin&password=%s&csrf_token=%s&next=/" % (ADMIN_PW, csrf)
    st, _b, resp = conn.request("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded",
                                                        "Cookie": cookie})
    return [c.split(";")[0] for c in resp.headers.get_all("set-cookie") if c.startswith("xcscan_session")][0]


def targets(facts):
    """(name, path, floor SQL): each page or API and the bare SQL reading what it shows."""
    org = "/gov/%s" % DEPTS[1]
    rule = facts["top_rule"]
    fail_top = ("SELECT rule_id, count(*) FROM results WHERE status = 'fail' GROUP BY rule_id "
                "ORDER BY 2 DESC LIMIT 10")
    hosts50 = ("SELECT * FROM hosts WHERE retired_at IS NULL ORDER BY org_path, hostname LIMIT 50")
    find50 = ("SELECT * FROM results r JOIN hosts h ON h.id = r.host_id WHERE r.status = 'fail' "
              "ORDER BY h.org_path, h.hostname, r.profile, r.rule_id LIMIT 50")
    orgs = "SELECT org_path, count(*) FROM hosts WHERE retired_at IS NULL GROUP BY org_path"
    week = "SELECT count(*) FROM result_changes WHERE at > extract(epoch from now())::bigint - 7 * 86400"
    host, report = facts["host"], facts["report"]
    loc = "SELECT category, origin, count(*) FROM components GROUP BY 1, 2"
    return [
        ("change page", "/changes", week),  # its default view, counted ahead (store/change_digest.py)
        ("change page, page 2", "/changes?new_page=2&fixed_page=2", week),  # a list's next page, kept too
        ("change page (live)", "/changes?live=1", week),
        ("change page (live), one department", "/changes?live=1&org=" + org, week),  # a department's fold
        ("change page (live), one unit", "/changes?live=1&org=%s/%s" % (org, UNITS[0]), week),  # 1/100 of it
        ("changes api", "/api/v1/changes?limit=1000", week),  # its first page: the fold, not the whole feed
        ("overview page", "/", fail_top),
        ("overview api", "/api/v1/overview", fail_top),
        ("org overview page", "/?org=" + org, fail_top),
        ("orgs page", "/orgs", orgs),
        ("orgs api", "/api/v1/orgs", orgs),
        ("hosts page", "/hosts", hosts50),
        ("hosts api", "/api/v1/hosts?limit=50", hosts50),
        ("hosts page, one department", "/hosts?org=" + org, hosts50),
        ("findings page (fail), one department", "/findings?status=fail&org=" + org, find50),
        ("hosts search", "/hosts?q=host-0012", "SELECT * FROM hosts WHERE hostname LIKE '%host-0012%' LIMIT 50"),
        ("findings page (fail)", "/findings?status=fail", find50),
        ("findings api (fail)", "/api/v1/findings?status=fail&limit=50", find50),
        # sorted by another column: read one value of it at a time (queries._buckets)
        ("findings page (fail) by rule", "/findings?status=fail&sort=rule", find50),
        ("findings page (all) by status, descending", "/findings?filtered=1&sort=status&desc=1", find50),
        ("findings api by status", "/api/v1/findings?sort=status&limit=50", find50),
        ("rule page", "/rules/" + rule, "SELECT * FROM results WHERE rule_id = '%s'" % rule),
        ("host page", "/hosts/" + host, "SELECT * FROM results WHERE host_id = '%s'" % host),
        ("host drift page", "/hosts/%s/drift?a=%s&b=%s" % (host, facts["previous"], report),  # its last two
         "SELECT body_gz FROM reports WHERE host_id = '%s' ORDER BY collected_at DESC LIMIT 2" % host),
        ("working paper", "/reports/%s/paper" % report, "SELECT body_gz FROM reports WHERE id = '%s'" % report),
        ("unit controls page", "/orgs/controls?org=%s/%s" % (org, UNITS[0]),  # a unit's latest documents
         "SELECT r.body_gz FROM hosts h JOIN reports r ON r.id = h.latest_report_id WHERE h.org_path = '%s/%s'"
         % (org, UNITS[0])),
        ("coverage page, one unit", "/coverage?org=%s/%s" % (org, UNITS[0]),
         "SELECT rule_id, status, count(*) FROM results GROUP BY 1, 2"),
        ("coverage page, one department", "/coverage?org=" + org,
         "SELECT rule_id, status, count(*) FROM results GROUP BY 1, 2"),
        ("coverage page", "/coverage", "SELECT rule_id, status, count(*) FROM results GROUP BY 1, 2"),  # every host
        ("department controls page", "/orgs/controls?org=" + org,  # 1,000 hosts' latest documents
         "SELECT r.body_gz FROM hosts h JOIN reports r ON r.id = h.latest_report_id WHERE h.org_path LIKE '%s/%%'"
         % org),
        ("localization page", "/localization", loc),
        ("localization components page", "/localization/components",
         "SELECT * FROM components WHERE origin = 'foreign' LIMIT 50"),
        ("waivers page", "/waivers", "SELECT * FROM waivers"),
        ("audit page", "/audit", "SELECT * FROM audit_log ORDER BY id DESC LIMIT 100"),
    ]


def run_sql(pg, sql):
    t = time.perf_counter()
    pg.execute(sql).fetchall()
    return time.perf_counter() - t


def measure_pages(servers, pg, facts, samples, log, before_samples=None, only=None):
    """``servers``: [(label, web, api, cookie, auth)]; each sample requests the page from every
    server in turn (interleaved, so a before/after pair sees the same machine load), then its floor.
    ``before_samples``: fewer samples of the "before" server (when it takes seconds a page);
    ``only``: the pages whose name holds one of these texts (default: all)."""
    out = {}
    for name, path, floor in targets(facts):
        if only and not any(o in name for o in only):
            continue
        times, floors, size, first = {label: [] for label, *_x in servers}, [], {}, {}
        for i in range(samples + 2):
            for label, web, api, cookie, auth in servers:
                if label == "before" and before_samples is not None and i >= before_samples + 2:
                    continue
                headers = {"Cookie": cookie} if not path.startswith("/api/") else auth
                conn = api if path.startswith("/api/") else web
                t = time.perf_counter()
                st, body, _r = conn.request("GET", path, headers=headers)
                dt = time.perf_counter() - t
                if st != 200:
                    raise SystemExit("%s (%s): HTTP %d %s" % (path, label, st, body[:300]))
                size[label] = len(body)
                if i == 0:  # the first view (what a page keeps between views is not there yet)
                    first[label] = round(dt * 1000.0, 1)
                if i >= 2:
                    times[label].append(dt)
            fl = run_sql(pg, floor)
            if i >= 2:
                floors.append(fl)
        entry = {"path": path, "floor_ms": ms(floors)}
        for label, *_x in servers:
            entry[label] = {"ms": ms(times[label]), "first_ms": first[label], "bytes": size[label],
                            "ratio_p95": round(pct(times[label], 95) / max(pct(floors, 95), 1e-6), 1)}
        out[name] = entry
        log("%-22s %s   floor p95 %6.1f ms" % (name, "   ".join(
            "%s p50 %7.1f p95 %7.1f ms x%s (first %.0f ms)" % (
                label, entry[label]["ms"]["p50"], entry[label]["ms"]["p95"], entry[label]["ratio_p95"],
                entry[label]["first_ms"]) for label, *_x in servers),
            entry["floor_ms"]["p95"]))
    return out


def db_exists(name):
    import psycopg
    with psycopg.connect(PG_BASE, autocommit=True) as c:
        return c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def make_before_db(url, name, src, log):
    """A copy of the seeded database at ``src``'s schema: CREATE DATABASE .. TEMPLATE, then this
    checkout's migrations downgraded to ``src``'s head (what that code knows)."""
    import psycopg
    from scanner.server.store import db, migrate
    env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
    head = subprocess.run([sys.executable, "-c", "from scanner.server.store.migrate import head_revision; "
                           "print(head_revision())"], env=env, cwd=os.path.abspath(src), check=True,
                          capture_output=True, text=True).stdout.strip()
    before = name + "_before"
    t = time.time()
    with psycopg.connect(PG_BASE, autocommit=True) as c:
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        c.execute('CREATE DATABASE "%s" TEMPLATE "%s"' % (before, name))
    burl = url.rsplit("/", 1)[0] + "/" + before
    engine = db.make_engine(burl)
    if migrate.current_revision(engine) != head:
        from alembic import command
        cfg = migrate.alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, head)
    engine.dispose()
    with psycopg.connect(burl, autocommit=True) as c:
        c.execute("VACUUM ANALYZE")
    log("before database %s at revision %s (%.1fs)" % (before, head, time.time() - t))
    return before, burl


COMPONENTS_EXPORT = ("/api/v1/export/components?format=csv&origin=any",  # every live host's components
                     "SELECT count(*) FROM components c JOIN hosts h ON h.id = c.host_id WHERE h.retired_at IS NULL",
                     "COPY (SELECT h.hostname, h.org_path, c.* FROM components c JOIN hosts h ON h.id = c.host_id "
                     "ORDER BY c.category, h.org_path, h.hostname, h.id, c.seq) TO STDOUT (FORMAT CSV)")


def measure_export(port, tmp, auth, server_pid, url, log, what=None):
    """Stream the full findings CSV (or ``what``: (path, its row count's SQL, its floor's COPY)); count its
    rows; sample the server's RSS meanwhile."""
    import psutil
    import psycopg
    proc = psutil.Process(server_pid)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                rss = sum(p.memory_info().rss for p in [proc] + proc.children(recursive=True))
                peak[0] = max(peak[0], rss)
            except psutil.Error:
                pass
            time.sleep(0.05)
    base_rss = sum(p.memory_info().rss for p in [proc] + proc.children(recursive=True))
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=3600,
                                    context=ssl.create_default_context(cafile=os.path.join(tmp, "ca.pem")))
    t = time.perf_counter()
    c.request("GET", what[0] if what else "/api/v1/export/findings?format=csv", headers=auth)
    resp = c.getresponse()
    status = resp.status
    # the download is timed (to its last byte, kept in a file); the rows are counted afterwards, so
    # this client's CSV parsing (as much CPU as the server's work on this machine) is not in the time
    with tempfile.TemporaryFile() as spool:
        nbytes = 0
        while True:
            chunk = resp.read(1 << 20)
            if not chunk:
                break
            nbytes += len(chunk)
            spool.write(chunk)
        wall = time.perf_counter() - t
        done.set()
        th.join()
        spool.seek(0)
        reader = csv.reader(io.TextIOWrapper(spool, encoding="utf-8-sig", newline=""))
        rows = -1  # the header
        for _row in reader:
            rows += 1
    with psycopg.connect(url) as pg:
        expected = pg.execute(what[1] if what else "SELECT count(*) FROM results r JOIN hosts h ON h.id = r.host_id "
                              "WHERE h.retired_at IS NULL").fetchone()[0]
        t = time.perf_counter()
        n = 0
        with pg.cursor().copy(what[2] if what else
                              "COPY (SELECT h.id, h.hostname, h.org_path, r.profile, r.rule_id, r.title_en, r.title_zh, "
                              "r.category, r.severity, r.status, r.status, r.actual, r.expected, r.waiver_id FROM results r "
                              "JOIN hosts h ON h.id = r.host_id ORDER BY h.org_path, h.hostname, r.profile, r.rule_id) "
                              "TO STDOUT (FORMAT CSV)") as cp:
            for chunk in cp:
                n += len(chunk)
        floor = time.perf_counter() - t
    out = {"status": status, "rows": rows, "table_rows": expected, "complete": rows == expected,
           "mb": round(nbytes / 2**20), "s": round(wall, 2), "floor_copy_s": round(floor, 2), "ratio": round(wall / max(floor, 1e-6), 1),
           "server_rss_mb": {"before": round(base_rss / 2**20), "peak": round(peak[0] / 2**20)}}
    log("export%s: %s" % (" " + what[0] if what else "", json.dumps(out)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--depts", type=int, default=10, help="departments (/gov/<dept>), up to 10")
    ap.add_argument("--units", type=int, default=10, help="units per department, up to 10")
    ap.add_argument("--flip", type=int, default=12, help="percent of each host's results flipped pass <-> fail")
    ap.add_argument("--changes", type=int, default=2, help="results changed per report after a host's first")
    ap.add_argument("--samples", type=int, default=20, help="timed requests per page")
    ap.add_argument("--template", default=None, help="a real report to seed from (else synthetic fleet reports)")
    ap.add_argument("--no-export", action="store_true", help="skip the full export")
    ap.add_argument("--page", action="append", metavar="TEXT",
                    help="time only the pages whose name holds TEXT (repeatable; e.g. --page 'change page')")
    ap.add_argument("--keep", action="store_true", help="keep the database and data directory")
    ap.add_argument("--reuse", metavar="DB:DIR", default=None,
                    help="measure an already seeded database and its data directory (kept with --keep) instead "
                         "of seeding; with --before, DB_before and DIR-before too")
    ap.add_argument("--before-samples", type=int, default=None,
                    help="timed requests per page of the --before server (default: --samples); the first ones "
                         "are interleaved with this checkout's")
    ap.add_argument("--before", metavar="CHECKOUT", default=None,
                    help="also serve a copy of the database with another checkout's code (e.g. main) and time "
                         "both, interleaved request by request")
    opts = ap.parse_args()
    import psycopg
    from scanner.server.store import db

    def log(msg):
        print("# " + msg, file=sys.stderr, flush=True)
    if opts.reuse:
        name, tmp = opts.reuse.split(":", 1)
        opts.keep = True
    else:
        tmp = tempfile.mkdtemp(prefix="xcscan-fleetbench-")
        name = "xcscan_fleetbench_%s" % secrets.token_hex(4)
    url = PG_BASE.rsplit("/", 1)[0] + "/" + name
    if not opts.reuse:
        with psycopg.connect(PG_BASE, autocommit=True) as c:
            c.execute('CREATE DATABASE "%s"' % name)
    proc = before_proc = None
    before_name = before_tmp = None
    try:
        if opts.reuse:
            with psycopg.connect(url) as pg:
                facts = {"seed_s": None, "db_bytes": pg.execute("SELECT pg_database_size(current_database())").fetchone()[0],
                         "rows": {t: pg.execute("SELECT count(*) FROM %s" % t).fetchone()[0]
                                  for t in ("hosts", "results", "components", "host_profiles", "reports")}}
        else:
            env = dict(os.environ, XCSCAN_ADMIN_PASSWORD=ADMIN_PW)
            subprocess.run([sys.executable, "-m", "scanner", "server", "init", "--data-dir", tmp, "--db", url],
                           check=True, env=env, capture_output=True)
            engine = db.make_engine(url)
            facts = seed(engine, url, opts, log)
            engine.dispose()
        with psycopg.connect(url) as pg:
            facts["top_rule"] = pg.execute("SELECT rule_id FROM results WHERE status = 'fail' GROUP BY rule_id "
                                           "ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
            # a host of a unit with its 90 days of history, and its latest report (the host pages, the paper)
            facts["host"], facts["report"] = pg.execute(
                "SELECT id, latest_report_id FROM hosts WHERE org_path = %s AND latest_report_id IS NOT NULL "
                "ORDER BY hostname LIMIT 1", ("/gov/%s/%s" % (DEPTS[1], UNITS[0]),)).fetchone()
            facts["previous"] = pg.execute("SELECT id FROM reports WHERE host_id = %s AND id <> %s ORDER BY "
                                           "collected_at DESC LIMIT 1", (facts["host"], facts["report"])).fetchone()[0]
        log("seeded in %ss: %s, %.0f MB" % (facts["seed_s"], facts["rows"], facts["db_bytes"] / 2**20))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if opts.before and opts.reuse and os.path.isdir(tmp + "-before") and db_exists(name + "_before"):
            before_name, before_tmp = name + "_before", tmp + "-before"
            before_url = url + "_before"
        elif opts.before:  # (with --reuse: the first run against this checkout makes the copy it keeps)
            before_name, before_url = make_before_db(url, name, opts.before, log)
            before_tmp = tmp + "-before"
            shutil.copytree(tmp, before_tmp)
            # server.json as the other checkout knows it (it refuses settings it does not have)
            known = json.loads(subprocess.run(
                [sys.executable, "-c", "import dataclasses, json; from scanner.server.settings import Settings; "
                 "print(json.dumps([f.name for f in dataclasses.fields(Settings)]))"],
                env=dict(os.environ, PYTHONPATH=os.path.abspath(opts.before)), cwd=before_tmp, check=True,
                capture_output=True, text=True).stdout)
            cfg = os.path.join(before_tmp, "server.json")
            data = json.load(open(cfg, encoding="utf-8"))
            json.dump({k: v for k, v in data.items() if k in known}, open(cfg, "w", encoding="utf-8"), indent=2)
        # the change page's default view counted ahead, as the server's job does every 5 minutes (claimed
        # here, so the server's first poll finds it done; the change pages are timed first, while it is fresh)
        from scanner.server.store import change_digest, jobs
        engine = db.make_engine(url)
        t1 = time.time()
        jobs.claim(engine, change_digest.JOB, 0)
        built = change_digest.build(engine, change_digest.KEPT)
        jobs.finish(engine, change_digest.JOB, built)
        facts["change_digest"] = dict(built, build_s=round(time.time() - t1, 2))
        log("change digest: %s" % facts["change_digest"])
        # the working-paper summaries made ahead, as the server's job does (a minute's budget at a time,
        # store/paper_summaries.py): pages are timed in the steady state, not while the job catches up
        # with the seed's 10,000 new reports (bench/fleet_rollups.py --case controls-cold:ORG times that)
        from scanner.server.store import paper_summaries
        t1 = time.time()
        jobs.claim(engine, paper_summaries.JOB, 0)
        made = paper_summaries.refresh(engine, budget=10 ** 9)
        jobs.finish(engine, paper_summaries.JOB, made)
        engine.dispose()
        facts["paper_summaries"] = dict(made, s=round(time.time() - t1, 2))
        log("working-paper summaries made ahead: %s" % facts["paper_summaries"])
        proc, api = start_server(tmp, url, port)
        servers = [("after" if opts.before else "this", port, tmp, api)]
        if opts.before:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                bport = s.getsockname()[1]
            before_proc, bapi = start_server(before_tmp, before_url, bport, src=opts.before)
            servers.insert(0, ("before", bport, before_tmp, bapi))
        clients = []
        for label, sport, sdir, sapi in servers:
            st, body, _r = sapi.request("POST", "/api/v1/session",
                                        json.dumps({"username": "admin", "password": ADMIN_PW}),
                                        {"Content-Type": "application/json"})
            sauth = {"Authorization": "Bearer " + json.loads(body)["token"]}
            sweb = Https(sport, os.path.join(sdir, "ca.pem"))
            clients.append((label, sweb, sapi, web_session(sweb), sauth))
        auth = clients[-1][4]
        with psycopg.connect(url, autocommit=True) as pg:
            pages = measure_pages(clients, pg, facts, opts.samples, log, opts.before_samples, opts.page)
        export = None if opts.no_export else measure_export(port, tmp, auth, proc.pid, url, log)
        if export is not None and opts.before:  # the same export from the other checkout, after this one's
            export = {"after": export, "before": measure_export(bport, before_tmp, clients[0][4], before_proc.pid,
                                                                before_url, log)}
        if export is not None:  # the components export (its rows made in Python: substitutes named)
            export = {"findings": export, "components": measure_export(port, tmp, auth, proc.pid, url, log,
                                                                       COMPONENTS_EXPORT)}
            if opts.before:
                export["components"] = {"after": export["components"], "before": measure_export(
                    bport, before_tmp, clients[0][4], before_proc.pid, before_url, log, COMPONENTS_EXPORT)}
        # (--reuse: the seed's options are not known here; the rows counted are)
        result = {"hosts": facts["rows"]["hosts"] if opts.reuse else opts.hosts,
                  "days": None if opts.reuse else opts.days,
                  "template": opts.template or (None if opts.reuse else "synthetic"),
                  "before": opts.before and os.path.abspath(opts.before),
                  "seed_s": facts["seed_s"], "rows": facts["rows"], "change_digest": facts["change_digest"], "db_mb": round(facts["db_bytes"] / 2**20),
                  "machine_load_avg_1m": round(os.getloadavg()[0], 2), "pages": pages, "export": export}
        print(json.dumps(result), flush=True)
    finally:
        for p in (proc, before_proc):
            if p is not None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        if opts.keep:
            log("kept database %s%s and %s" % (name, " and %s" % before_name if before_name else "", tmp))
        else:
            with psycopg.connect(PG_BASE, autocommit=True) as c:
                for dbname in filter(None, (name, before_name)):
                    c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,))
                    c.execute('DROP DATABASE IF EXISTS "%s"' % dbname)
            for d in filter(None, (tmp, before_tmp)):
                shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
