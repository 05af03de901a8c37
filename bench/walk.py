#!/usr/bin/env python3
"""The SUID/SGID/world-writable walk (scanner/collect/special_files.py) against `find` with the same
predicates over the same trees, whole processes, in one interleaved run.

    python bench/walk.py [--runs 7] [--root /] [--python PY]

First one xcscan walk learns what it covers (the walked mount points, the skipped trees, the
data directories and bind mounts it does not enter); `find` then gets exactly that: the same tops,
`-xdev`, the same prunes, and the predicates of the rules::

    find TOP... -xdev ( -path P -prune ) -o ( -type f ( -perm -4000 -o -perm -2000 -o -perm -0002 ) )
         -o ( -type d -perm -0002 ! -perm -1000 ) -print    (world-writable directories that lack +t)

Each run is a fresh process (interpreter start-up included for xcscan), the two alternate, and the
ratio is of the medians. Both must find the same number of entries.
"""
from __future__ import print_function

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CPU = {}  # argv[0] -> CPU seconds (user + system) per run

CHILD = r"""
import json, sys
sys.path.insert(0, %r)
from scanner.context import Context
from scanner.collect import special_files
ctx = Context(root=%r)
ctx.set_collector("special_files")
f = special_files.collect(ctx)
json.dump({k: f[k] for k in ("walked", "skipped", "not_walked", "bind_mounts", "data_dirs_skipped", "entries",
                             "complete", "counts")}, sys.stdout)
"""


def timed(argv):
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.stdout.close()
    CPU.setdefault(argv[0], []).append(usage.ru_utime + usage.ru_stime)
    return time.perf_counter() - t0, usage.ru_maxrss / 1024.0, out


def find_argv(root, facts):
    prefix = "" if root == "/" else root.rstrip("/")
    tops = [prefix + p if p != "/" else (root or "/") for p in facts["walked"]]
    prunes = [prefix + p for p in facts["skipped"]]
    prunes += [prefix + d["path"] for d in facts["data_dirs_skipped"] + facts["bind_mounts"]]
    argv = ["find"] + tops + ["-xdev"]
    if prunes:
        argv.append("(")
        for i, p in enumerate(prunes):
            argv += (["-o"] if i else []) + ["-path", p]
        argv += [")", "-prune", "-o"]
    argv += ["(", "(", "-type", "f", "(", "-perm", "-4000", "-o", "-perm", "-2000", "-o", "-perm", "-0002", ")",
             ")", "-o", "(", "-type", "d", "-perm", "-0002", "!", "-perm", "-1000", ")", ")", "-print"]
    return argv


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--root", default="/")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the xcscan walk")
    args = ap.parse_args()
    xc = [args.python, "-c", CHILD % (REPO, args.root)]
    _, _, out = timed(xc)  # warm the page cache and learn the coverage
    facts = json.loads(out.decode())
    fa = find_argv(args.root, facts)
    timed(fa)
    walls = {"xcscan": [], "find": []}
    rss = {"xcscan": [], "find": []}
    found = {}
    for _ in range(args.runs):
        for name, argv in (("xcscan", xc), ("find", fa)):
            wall, peak, out = timed(argv)
            walls[name].append(wall)
            rss[name].append(peak)
            if name == "find":
                found["find"] = len(out.splitlines())
            else:
                c = json.loads(out.decode())["counts"]
                found["xcscan"] = c["suid_sgid"] + c["world_writable_files"] + c["world_writable_dirs"]
    med = dict((k, statistics.median(v)) for k, v in walls.items())
    print("python: %s" % args.python)
    print("load average: %s" % " ".join("%.2f" % x for x in os.getloadavg()))
    print("walked %s; %d entries; complete %s; skipped data dirs %s; bind mounts %s" % (
        ", ".join(facts["walked"]), facts["entries"], facts["complete"],
        ", ".join(d["path"] for d in facts["data_dirs_skipped"]) or "-",
        ", ".join(d["path"] for d in facts["bind_mounts"]) or "-"))
    cpu = {"xcscan": statistics.median(CPU[xc[0]][2:]), "find": statistics.median(CPU[fa[0]][1:])}
    for k in ("xcscan", "find"):
        print("%-6s wall median %.3f s  min %.3f s  max %.3f s  CPU median %.3f s  peak RSS %.1f MiB  found %d" % (
            k, med[k], min(walls[k]), max(walls[k]), cpu[k], max(rss[k]), found[k]))
    print("ratio xcscan/find CPU (user+system, medians): %.2f" % (cpu["xcscan"] / cpu["find"]))
    print("ratio xcscan/find (medians, %d interleaved runs each): %.2f" % (args.runs, med["xcscan"] / med["find"]))
    if found["xcscan"] != found["find"]:
        print("WARNING: the two found different numbers of entries")


if __name__ == "__main__":
    main()
