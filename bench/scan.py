#!/usr/bin/env python
"""Benchmark `xcscan scan --profile all` on this machine: wall time and peak RSS per run, plus a phase
breakdown (rule loading cold/warm cache, collection, classification, evaluation, rendering).

    python bench/scan.py [--runs 7] [--profile all] [--root /]

Targets (issue 4): live scan under 0.4 s wall and 45 MB peak RSS.
"""
from __future__ import print_function

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run_child(argv, env):
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8
    err = proc.stderr.read().decode("utf-8", "replace")
    proc.stderr.close()
    if proc.returncode not in (0, 3):
        raise SystemExit("scan failed (%d): %s" % (proc.returncode, err))
    return wall, usage.ru_maxrss / 1024.0  # Linux: KiB -> MiB


def phases(profile, root):
    from scanner.catalog import default_catalog
    from scanner.engine import evaluate, load_profile, load_ruleset
    from scanner.engine import rules as rules_mod
    from scanner.inventory import build_inventory
    from scanner.pipeline import collect
    from scanner.render import render
    from scanner.report import build_report
    out = {}
    cache = tempfile.mkdtemp(prefix="xcscan-bench-cache-")
    os.environ["XCSCAN_CACHE_DIR"] = cache
    try:
        t = time.perf_counter()
        load_ruleset()
        out["rules (cold: parse + validate %d files)" % len(load_ruleset())] = time.perf_counter() - t
        rules_mod._LOADED.clear()
        t = time.perf_counter()
        ruleset = load_ruleset()
        out["rules (warm: JSON cache)"] = time.perf_counter() - t
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    t = time.perf_counter()
    ctx, facts = collect(root)
    out["collect"] = time.perf_counter() - t
    t = time.perf_counter()
    catalog = default_catalog()
    inventory = build_inventory(facts, catalog)
    out["classify"] = time.perf_counter() - t
    prof = load_profile(profile)
    t = time.perf_counter()
    results, summary = evaluate(facts, inventory, ruleset, profile=prof, catalog=catalog)
    out["evaluate (%d rules)" % len(results)] = time.perf_counter() - t
    report = build_report(facts, inventory, root=root, live=ctx.live, results=results, summary=summary)
    for fmt in ("json", "table"):
        t = time.perf_counter()
        render(report, fmt, "en")
        out["render %s" % fmt] = time.perf_counter() - t
    slow = sorted(((v.get("seconds") or 0, k) for k, v in facts["collection"].items()), reverse=True)[:5]
    return out, slow


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--profile", default="all")
    ap.add_argument("--root", default="/")
    args = ap.parse_args()
    env = dict(os.environ)
    # An installed agent runs from compiled bytecode (pip writes .pyc at install); measure that, not
    # the compile-every-module cost of PYTHONDONTWRITEBYTECODE=1 shells.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    argv = [sys.executable, "-m", "scanner", "scan", "--profile", args.profile, "--root", args.root,
            "--format", "json"]
    run_child(argv, env)  # warm the rule cache, the bytecode cache and the page cache
    walls, rss = [], []
    for _ in range(args.runs):
        w, r = run_child(argv, env)
        walls.append(w)
        rss.append(r)
    print("command: %s" % " ".join(argv))
    print("load average: %s" % " ".join("%.2f" % x for x in os.getloadavg()))
    print("wall  s : min %.3f  median %.3f  max %.3f  (%d runs)" % (min(walls), statistics.median(walls),
                                                                  max(walls), len(walls)))
    print("RSS  MiB: min %.1f  max %.1f" % (min(rss), max(rss)))
    w, _ = run_child([sys.executable, "-c", "pass"], env)
    print("bare interpreter start: %.3f s" % w)
    out, slow = phases(args.profile, args.root)
    print("phases (in-process, seconds):")
    for name, sec in out.items():
        print("  %-45s %.4f" % (name, sec))
    print("slowest collectors: " + ", ".join("%s %.3f" % (k, s) for s, k in slow))


if __name__ == "__main__":
    main()
