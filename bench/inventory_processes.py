#!/usr/bin/env python3
"""Live inventory with many extra processes running.

Starts N (default 500) `sleep` processes, then runs a full live inventory
(`scanner.pipeline.inventory_report`, all collectors and classifiers) in a
fresh Python process, several times, and prints the wall time of the
inventory call, the wall time of the whole process (interpreter start and
imports included) and its peak RSS. Targets: < 0.5 s and < 45 MB.

    python bench/inventory_processes.py [--processes 500] [--runs 5]
"""
from __future__ import print_function

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from scanner.pipeline import inventory_report
from scanner.report import dumps
t1 = time.perf_counter()
report = inventory_report(root="/")
text = dumps(report)
t2 = time.perf_counter()
from scanner.catalog import default_catalog
from scanner.classify import software
t3 = time.perf_counter()
software.classify(report["facts"], default_catalog())
classify_s = time.perf_counter() - t3
SOFTWARE = ("packages", "processes", "sockets", "services", "software_paths", "crypto_libs")
coll = report["facts"]["collection"]
print(json.dumps({
    "import_s": t1 - t0, "inventory_s": t2 - t1,
    "processes": len(report["facts"]["processes"] or []),
    "components": len(report["inventory"]["components"]),
    "slowest": sorted(((v.get("seconds") or 0, k) for k, v in coll.items()), reverse=True)[:5],
    "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "software_collectors_s": sum(coll.get(k, {}).get("seconds") or 0 for k in SOFTWARE),
    "software_classify_s": classify_s,
}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=int, default=500)
    ap.add_argument("--runs", type=int, default=5)
    opts = ap.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sleepers = []
    try:
        for _ in range(opts.processes):
            sleepers.append(subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL))
        time.sleep(0.5)
        results = []
        for _ in range(opts.runs):
            start = time.perf_counter()
            out = subprocess.check_output([sys.executable, "-c", CHILD], cwd=repo)
            total = time.perf_counter() - start
            res = json.loads(out.decode().strip().splitlines()[-1])
            res["process_wall_s"] = total
            results.append(res)
    finally:
        for p in sleepers:
            p.kill()
        for p in sleepers:
            p.wait()
    best = min(results, key=lambda r: r["inventory_s"])
    med = sorted(r["inventory_s"] for r in results)[len(results) // 2]
    print("extra processes: %d   processes seen: %d   components: %d" % (
        opts.processes, best["processes"], best["components"]))
    print("inventory_report wall: best %.3f s  median %.3f s   (target < 0.5 s)" % (best["inventory_s"], med))
    print("whole process wall (interpreter + imports + inventory): best %.3f s" % min(
        r["process_wall_s"] for r in results))
    print("peak RSS: %.1f MB   (target < 45 MB)" % (max(r["maxrss_kb"] for r in results) / 1024.0))
    print("software part (6 collectors + classifier): %.3f s" % (
        best["software_collectors_s"] + best["software_classify_s"]))
    print("slowest collectors (s): %s" % ", ".join("%s %.3f" % (k, s) for s, k in best["slowest"]))


if __name__ == "__main__":
    main()
