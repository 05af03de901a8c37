#!/usr/bin/env python
"""Benchmark `xcscan fix` on copies of the weak baseline fixture roots, in one interleaved run:
the scan that finds the failures (the floor every fix pays), planning every failed rule's fix,
rendering the bash script and the playbook, a guarded apply (backups, journal, fsync, rescan) and
the rollback. Times are medians in milliseconds; the ratio column is against the scan.

    python bench/fix.py [--runs 7]

Needs root (the fixture roots carry owners).
"""
from __future__ import print_function

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return (time.perf_counter() - start) * 1000.0, out


def one_round(name, work):
    from baseline_support import materialise
    from scanner.engine import load_profile, load_ruleset
    from scanner.pipeline import scan_report
    from scanner.remediate import ansible, bash
    from scanner.remediate.apply import apply_plan, rollback
    from scanner.remediate.planner import plan
    from scanner.remediate.select import select
    base = tempfile.mkdtemp(dir=work)
    root = materialise(name, base)
    ruleset, profile = load_ruleset(), load_profile("mlps-l3")
    out = {}
    out["scan"], report = timed(lambda: scan_report(root, profile="mlps-l3", live=False))
    sel = select(ruleset, report=report, profile=profile)
    out["plan"], the_plan = timed(lambda: plan(root, sel.items, live=False))
    out["bash"], _ = timed(lambda: bash.render(sel.items))
    out["ansible"], _ = timed(lambda: ansible.render(sel.items))
    out["apply"], run_dir = timed(lambda: apply_plan(the_plan, os.path.join(base, "bk"),
                                                     lock_path=os.path.join(base, "lock")))
    out["rescan"], _ = timed(lambda: scan_report(root, profile="mlps-l3", live=False))
    out["rollback"], _ = timed(lambda: rollback(run_dir))
    out["rules"], out["changes"] = len(sel.items), len(the_plan.changes())
    shutil.rmtree(base)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the fixture roots carry owners")
    names = ("rhel-default", "debian-default")
    work = tempfile.mkdtemp(prefix="xcscan-bench-fix-")
    samples = dict((n, []) for n in names)
    try:
        for n in names:  # warm-up: rule cache, imports
            one_round(n, work)
        for _ in range(args.runs):
            for n in names:  # interleaved
                samples[n].append(one_round(n, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    keys = ("scan", "plan", "bash", "ansible", "apply", "rescan", "rollback")
    print("%-16s %5s %7s  %s" % ("root", "rules", "changes", "  ".join("%10s" % k for k in keys)))
    for n in names:
        med = dict((k, statistics.median(s[k] for s in samples[n])) for k in keys)
        print("%-16s %5d %7d  %s" % (n, samples[n][0]["rules"], samples[n][0]["changes"],
                                     "  ".join("%10.1f" % med[k] for k in keys)))
        print("%-16s %5s %7s  %s" % ("  x scan", "", "", "  ".join("%10.2f" % (med[k] / med["scan"]) for k in keys)))


if __name__ == "__main__":
    main()
