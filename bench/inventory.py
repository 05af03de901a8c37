#!/usr/bin/env python3
"""Measure `xcscan inventory --format json` wall time and peak RSS over repeated runs.

    python bench/inventory.py                  # live host, 20 runs (+2 warm-up)
    python bench/inventory.py --runs 50 --root tests/fixtures/hardware/taishan-kylin
    python bench/inventory.py --json           # machine-readable result

Each run is a fresh process (what cron or the agent pays). Wall time is measured around the
process; peak RSS is the child's own ru_maxrss from wait4(), so runs do not mask each other.
Targets (issue 2): median < 0.3 s and peak RSS < 35 MB on the live host.
"""
from __future__ import print_function

import argparse
import json
import os
import subprocess
import sys
import time

TARGET_WALL = 0.3
TARGET_RSS_MB = 35.0
HARDWARE = ("host", "os", "cpu", "dmi", "storage", "pci")


def run_once(cmd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()  # drain before waiting (a full pipe would block the child)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8
    err = proc.stderr.read().decode("utf-8", "replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit("run failed (exit %d): %s" % (proc.returncode, err.strip()[-500:]))
    collection = json.loads(out.decode("utf-8"))["facts"]["collection"]
    return wall, usage.ru_maxrss / 1024.0, collection  # Linux reports ru_maxrss in KiB


def percentile(values, pct):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(pct / 100.0 * (len(ordered) - 1)))))
    return ordered[index]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--root", default=None, help="scan this offline root instead of the live host")
    parser.add_argument("--xcscan", default=None,
                        help="command to run (default: this interpreter with -m scanner; pass the path of the "
                             "installed console script to include its start-up)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    cmd = [args.xcscan] if args.xcscan else [sys.executable, "-m", "scanner"]
    cmd += ["inventory", "--format", "json"]
    if args.root:
        cmd += ["--root", args.root]
    for _ in range(args.warmup):
        run_once(cmd)
    walls, rss, hw_secs, all_secs = [], [], [], []
    for _ in range(args.runs):
        wall, peak, collection = run_once(cmd)
        walls.append(wall)
        rss.append(peak)
        hw_secs.append(sum((collection.get(n) or {}).get("seconds") or 0 for n in HARDWARE))
        all_secs.append(sum(v.get("seconds") or 0 for v in collection.values()))
    result = {
        "command": " ".join(cmd),
        "runs": args.runs,
        "wall_s": {"median": round(percentile(walls, 50), 4), "p95": round(percentile(walls, 95), 4),
                   "min": round(min(walls), 4), "max": round(max(walls), 4)},
        "peak_rss_mb": {"median": round(percentile(rss, 50), 1), "max": round(max(rss), 1)},
        "collectors_s": {"hardware_median": round(percentile(hw_secs, 50), 4),
                         "all_median": round(percentile(all_secs, 50), 4)},
        "targets": {"wall_s": TARGET_WALL, "peak_rss_mb": TARGET_RSS_MB},
    }
    result["within_targets"] = (result["wall_s"]["median"] < TARGET_WALL
                                and result["peak_rss_mb"]["max"] < TARGET_RSS_MB)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("command : %s" % result["command"])
        print("runs    : %d (after %d warm-up)" % (args.runs, args.warmup))
        print("wall    : median %.3f s  p95 %.3f s  min %.3f s  max %.3f s" % (
            result["wall_s"]["median"], result["wall_s"]["p95"], result["wall_s"]["min"], result["wall_s"]["max"]))
        print("peak RSS: median %.1f MB  max %.1f MB" % (result["peak_rss_mb"]["median"], result["peak_rss_mb"]["max"]))
        print("collect : hardware collectors (%s) median %.1f ms; all collectors median %.1f ms" % (
            ", ".join(HARDWARE), result["collectors_s"]["hardware_median"] * 1000,
            result["collectors_s"]["all_median"] * 1000))
        print("targets : wall < %.2f s, RSS < %.0f MB -> %s" % (
            TARGET_WALL, TARGET_RSS_MB, "OK" if result["within_targets"] else "MISSED"))
    return 0 if result["within_targets"] else 3


if __name__ == "__main__":
    sys.exit(main())
