#!/usr/bin/env python
"""Time the baseline collectors (login_defs, pam, accounts, sshd, ...) in-process.

    python bench/baseline_collectors.py [--runs 21] [--root /]

Prints the median and minimum of the whole group and the median per collector, live on this host
(or on an offline root with --root), plus the four baseline fixture roots offline.
"""
from __future__ import print_function

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

NAMES = ["login_defs", "pam", "accounts", "sshd", "shell", "audit", "logging", "file_perms", "mac", "firewall",
         "time_sync", "sysctl", "coredump", "sudo", "bootloader", "home_files"]


def measure(root, live, runs):
    from scanner.collect import collect_facts
    from scanner.context import Context
    totals, per = [], dict((n, []) for n in NAMES)
    for _ in range(runs):
        start = time.perf_counter()
        facts = collect_facts(Context(root=root, live=live), only=NAMES)
        totals.append(time.perf_counter() - start)
        for name in NAMES:
            per[name].append(facts["collection"][name]["seconds"])
    return totals, per


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--root", default="/")
    args = ap.parse_args()
    print("load average: %.2f %.2f %.2f" % os.getloadavg())
    totals, per = measure(args.root, args.root == "/", args.runs)
    print("%s (%s): %d collectors, median %.1f ms, min %.1f ms over %d runs" % (
        args.root, "live" if args.root == "/" else "offline", len(NAMES), statistics.median(totals) * 1000,
        min(totals) * 1000, args.runs))
    slow = sorted(((statistics.median(v), k) for k, v in per.items()), reverse=True)[:5]
    print("  slowest: " + ", ".join("%s %.1f ms" % (k, s * 1000) for s, k in slow))
    from baseline_support import ROOTS, materialise
    base = tempfile.mkdtemp(prefix="xcscan-bench-")
    for name in ROOTS:
        root = materialise(name, base)
        totals, _ = measure(root, False, max(5, args.runs // 3))
        print("fixture %-16s offline: median %.1f ms" % (name, statistics.median(totals) * 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
