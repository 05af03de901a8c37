#!/usr/bin/env python3
"""The fleet views that judge every host of an org subtree, in process: their time and the worker
memory they take (the peak RSS of a fresh process running one of them, over the same process having
imported the server and connected), against a database seeded by bench/fleet_scale.py.

- ``controls``: the summary by 控制点 (web/rollup.py over store/paper_summaries.py: each host's kept
  summary, made from its latest report when none matches; a checkout from before it: every host's latest
  report document read and assessed); ``controls-cold``: the same with the subtree's kept summaries
  dropped first (every summary made and kept, as on the first view after a day's reports);
- ``coverage``: the GB/T 28448 coverage (store/coverage.py: every host's results of the level's rules);
- ``substitutions``: the 信创 page's substitutions completed in the last 90 days (store/changes.py).

Each case runs in a process of its own, ``--rounds`` times, alternating this checkout and ``--before``'s
(a before/after pair sees the same machine load); medians are printed as one JSON line.

    python bench/fleet_scale.py --hosts 10000 --days 90 --keep --template R.json   # prints the database kept
    python bench/fleet_rollups.py --db xcscan_fleetbench_XXXX [--before ../main] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PG_BASE = os.environ.get("XCSCAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

CASE = r"""
import json, resource, sys, time
from scanner.server.store import changes, coverage, db, queries
from scanner.server.store.scope import Scope
from scanner.server.util import now
from scanner.server.web import rollup
kind, org, url = sys.argv[1], sys.argv[2] or None, sys.argv[3]
engine = db.make_engine(url)
everything = Scope.everything()
with engine.connect() as conn:
    conn.exec_driver_sql("SELECT 1")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if kind.startswith("controls"):
    try:
        from scanner.server.store import paper_summaries
    except ImportError:  # a checkout from before the kept summaries (migration 0035)
        paper_summaries = None
    if paper_summaries is None:
        count, rows = queries.latest_documents(engine, everything, org, rollup.MAX_HOSTS)  # (that checkout has it)
    else:
        count, hosts = queries.latest_hosts(engine, everything, org, rollup.MAX_HOSTS)
        if kind == "controls-cold":  # none kept: every summary made from its report (outside the timing)
            with engine.begin() as conn:
                conn.execute(db.host_papers.delete().where(db.host_papers.c.host_id.in_([h["host_id"] for h in hosts])))
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            t = time.perf_counter()
        rows = paper_summaries.latest(engine, hosts)
    got = rollup.controls_rollup(rows)
    answer = {"hosts": got["hosts"], "score": got["score"]}
elif kind == "coverage":
    got = coverage.coverage(engine, everything, "mlps-l3", org=org)
    answer = {"hosts": got["hosts"], "complete": [i["complete_hosts"] for i in got["items"]]}
else:
    t1 = now()
    got = changes.substitutions(engine, everything, org, t1 - 90 * 86400, t1)
    answer = {"count": got["count"], "by_category": got["by_category"]}
took = time.perf_counter() - t
print(json.dumps({"s": took, "mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024.0,
                  "answer": answer}))
"""


def run(checkout, kind, org, url):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout))
    out = subprocess.run([sys.executable, "-c", CASE, kind, org or "", url], env=env, check=True,
                         capture_output=True, text=True, cwd=HERE)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="a database kept by bench/fleet_scale.py --keep (its name)")
    ap.add_argument("--before", default=None, metavar="CHECKOUT", help="also another checkout's code, interleaved "
                    "(its database: the --before copy fleet_scale.py made, NAME_before, when it exists)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--case", action="append", default=None,
                    help="KIND:ORG (KIND controls, controls-cold, coverage or substitutions; ORG empty: the whole "
                         "fleet); default: controls (cold and kept) of /gov/health, coverage of /gov/health and "
                         "of the whole fleet, "
                         "substitutions of the whole fleet")
    opts = ap.parse_args()
    import psycopg
    url = PG_BASE.rsplit("/", 1)[0] + "/" + opts.db
    before_url = url
    if opts.before:
        with psycopg.connect(PG_BASE, autocommit=True) as c:
            if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (opts.db + "_before",)).fetchone():
                before_url = url + "_before"
    cases = [tuple(c.split(":", 1)) for c in opts.case] if opts.case else [
        ("controls-cold", "/gov/health"), ("controls", "/gov/health"), ("coverage", "/gov/health"), ("coverage", ""),
        ("substitutions", "")]
    sides = [("this", os.path.dirname(HERE), url)] + ([("before", opts.before, before_url)] if opts.before else [])
    out = {}
    for kind, org in cases:
        got = {label: [] for label, _c, _u in sides}
        for _ in range(opts.rounds):
            for label, checkout, db_url in sides:
                got[label].append(run(checkout, kind, org, db_url))
        entry = {}
        for label, runs in got.items():
            entry[label] = {"s": round(statistics.median(r["s"] for r in runs), 2),
                            "worker_mb": round(statistics.median(r["mb"] for r in runs)),
                            "answer": runs[0]["answer"]}
        if opts.before:  # the two checkouts' answers compared, not printed
            entry["same_answer"] = entry["this"].pop("answer") == entry["before"].pop("answer")
        out["%s %s" % (kind, org or "(whole fleet)")] = entry
        print("# %s %s: %s" % (kind, org or "(whole fleet)", json.dumps(entry)), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
