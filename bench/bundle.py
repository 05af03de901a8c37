#!/usr/bin/env python3
"""The offline bundle on Python 3.7 against the installed package on this Python: whole processes,
one interleaved run, wall and CPU (user + system) medians and their ratios.

    python bench/bundle.py [--runs 9] [--root /] [--profile xinchuang] [--extra-bundle OLD.pyz]

Each round runs, in turn, for each command (``inventory --format json`` and ``scan --profile P
--format json``): this interpreter with ``-m scanner`` (the installed package, from compiled
bytecode), and every bundle with ``python3.7 -I -S`` (no host packages: the pure-Python PyYAML the
bundle carries). ``--extra-bundle`` adds an older bundle (e.g. built from an earlier commit with
``agents/bundle/build.py``) to show before/after in the same run. The bundles are extracted and
their caches warmed once before timing (what every run after the first pays).
"""
from __future__ import print_function

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))


def timed(argv, env):
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.stderr.close()
    code = status >> 8
    if code not in (0, 3):
        sys.exit("failed (%d): %s\n%s" % (code, " ".join(argv), err.decode("utf-8", "replace")[-800:]))
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--root", default="/")
    ap.add_argument("--profile", default="xinchuang",
                    help="scan profile (default xinchuang: no filesystem walk; bench/walk.py measures the walk)")
    ap.add_argument("--extra-bundle", action="append", default=[], help="another bundle to time (label=path or path)")
    args = ap.parse_args()
    from test_py37 import find_python37
    py37 = find_python37()
    if py37 is None:
        sys.exit("no Python 3.7 interpreter found (tests/test_py37.py: find_python37)")
    work = tempfile.mkdtemp(prefix="xcscan-bench-bundle-")
    bundle = os.path.join(work, "xcscan-agent.pyz")
    subprocess.run([sys.executable, os.path.join(REPO, "agents", "bundle", "build.py"), "-o", bundle], check=True,
                   stdout=subprocess.DEVNULL)
    env = dict(os.environ, XCSCAN_BUNDLE_CACHE=os.path.join(work, "extract"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    variants = [("installed, Python %d.%d" % sys.version_info[:2], [sys.executable, "-m", "scanner"]),
                ("bundle (this tree), Python 3.7 -I -S", [py37, "-I", "-S", bundle])]
    for spec in args.extra_bundle:
        label, _, path = spec.rpartition("=")
        variants.append(("bundle %s, Python 3.7 -I -S" % (label or os.path.basename(path)), [py37, "-I", "-S", path]))
    commands = [("inventory", ["inventory", "--format", "json", "--root", args.root]),
                ("scan --profile %s" % args.profile, ["scan", "--profile", args.profile, "--format", "json",
                                                      "--root", args.root])]
    for _label, prefix in variants:
        for _name, cmd in commands:
            timed(prefix + cmd, env)  # extraction, bytecode, rules/catalog/YAML caches, page cache
    res = {}
    for _ in range(args.runs):
        for name, cmd in commands:
            for label, prefix in variants:
                res.setdefault((name, label), []).append(timed(prefix + cmd, env))
    print("machine: %d CPU(s); load average %s; Python 3.7 = %s" % (
        os.cpu_count(), " ".join("%.2f" % x for x in os.getloadavg()), py37))
    for name, _cmd in commands:
        print("%s (root %s), %d interleaved runs each:" % (name, args.root, args.runs))
        base = None
        for label, _prefix in variants:
            runs = res[(name, label)]
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            rss = max(r[2] for r in runs)
            if base is None:
                base = (wall, cpu)
                ratio = ""
            else:
                ratio = "  ratio to installed: wall %.2f, CPU %.2f" % (wall / base[0], cpu / base[1])
            print("  %-40s wall %.3f s  CPU %.3f s  peak RSS %.1f MiB%s" % (label, wall, cpu, rss, ratio))


if __name__ == "__main__":
    main()
