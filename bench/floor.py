#!/usr/bin/env python3
"""xcscan against its physical floor: a process that does the same imports, the same file reads,
directory listings and commands, and writes as many bytes, but none of the parsing, classifying,
evaluating or rendering. Whole processes, one interleaved run, wall and CPU medians and the ratio.

    python bench/floor.py [--runs 9] [--command scan|inventory] [--python PY] [--before DIR]

``scan`` is ``scan --profile all`` without the SUID/world-writable walk (a profile file that selects
every rule but the three that read ``special_files``; bench/walk.py measures the walk against find).
First one recorded run logs, from inside the xcscan process, every module imported, every file
opened for reading, every directory listed, every stat/lstat/readlink by path and every command run
(psutil's /proc reads go through ``open`` and ``os.readlink`` and are recorded too; its C calls are
not); the floor replays exactly that list.

``--before DIR`` (a checkout of an earlier commit, e.g. ``git worktree add ../xcscan-old HEAD~3``) times that
tree too, against a floor recorded from it, in the same interleaved rounds: before/after in one run.
Every process runs in a scratch directory with ``PYTHONPATH`` set to its tree, so the working
directory never decides which ``scanner`` is imported.
"""
from __future__ import print_function

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WALK_RULES = ("mlps.ac.suid-sgid-expected", "mlps.ac.world-writable-files", "mlps.ac.world-writable-dirs-sticky")

RECORDER = r"""
import atexit, builtins, io, json, os, subprocess, sys
log = {"reads": [], "dirs": [], "commands": [], "stats": [], "links": []}
_open, _scandir, _listdir, _popen = builtins.open, os.scandir, os.listdir, subprocess.Popen.__init__
_stat, _lstat, _readlink = os.stat, os.lstat, os.readlink
def stat_(path, *a, **k):
    if isinstance(path, str) and not a and not k:
        log["stats"].append(path)
    return _stat(path, *a, **k)
def lstat_(path, *a, **k):
    if isinstance(path, str) and not a and not k:
        log["stats"].append(path)
    return _lstat(path, *a, **k)
def readlink_(path, *a, **k):
    if isinstance(path, str) and not a and not k:
        log["links"].append(path)
    return _readlink(path, *a, **k)
os.stat, os.lstat, os.readlink = stat_, lstat_, readlink_
def open_(file, mode="r", *a, **k):
    if isinstance(file, str) and not any(c in mode for c in "wax+"):
        log["reads"].append(file)
    return _open(file, mode, *a, **k)
def scandir_(path="."):
    if isinstance(path, str):
        log["dirs"].append(path)
    return _scandir(path)
def listdir_(path="."):
    if isinstance(path, str):
        log["dirs"].append(path)
    return _listdir(path)
def popen_(self, args, *a, **k):
    log["commands"].append(list(args) if isinstance(args, (list, tuple)) else args)
    return _popen(self, args, *a, **k)
builtins.open = io.open = open_
os.scandir, os.listdir, subprocess.Popen.__init__ = scandir_, listdir_, popen_
def dump():
    log["modules"] = sorted(m for m in sys.modules if m != "__main__")
    with _open(os.environ["XCSCAN_FLOOR_LOG"], "w") as fh:
        json.dump(log, fh)
atexit.register(dump)
sys.argv = ["xcscan"] + sys.argv[1:]
from scanner.cli import main
main()
"""

FLOOR = r"""
import importlib, json, os, subprocess, sys
with open(sys.argv[1]) as fh:
    log = json.load(fh)
for name in log["modules"]:
    try:
        importlib.import_module(name)
    except Exception:
        pass
for path in log["reads"]:
    try:
        with open(path, "rb") as fh:
            fh.read()
    except (IOError, OSError):
        pass
for path in log["dirs"]:
    try:
        os.listdir(path)
    except OSError:
        pass
for path in log["stats"]:
    try:
        os.stat(path)
    except OSError:
        pass
for path in log["links"]:
    try:
        os.readlink(path)
    except OSError:
        pass
for argv in log["commands"]:
    try:
        subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    except Exception:
        pass
sys.stdout.write("x" * log["out_bytes"])
"""


def timed(argv, env, cwd=None):
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=cwd)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.stdout.close()
    if status >> 8 not in (0, 3):
        sys.exit("failed: %s" % " ".join(argv[:6]))
    return time.perf_counter() - t0, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, len(out)


def prepare(python, tree, cmd, work, label):
    """(xcscan argv, floor argv, env, log, output bytes) for the tree at ``tree``."""
    env = dict(os.environ, XCSCAN_FLOOR_LOG=os.path.join(work, "log-%s.json" % label), PYTHONPATH=tree)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    xc = [python, "-m", "scanner"] + cmd
    timed(xc, env, work)  # warm caches (rules, catalog, YAML, bytecode, page cache)
    _, _, _, size = timed([python, "-c", RECORDER] + cmd, env, work)
    with open(env["XCSCAN_FLOOR_LOG"]) as fh:
        log = json.load(fh)
    log["out_bytes"] = size
    replay = os.path.join(work, "replay-%s.json" % label)
    with open(replay, "w") as fh:
        json.dump(log, fh)
    floor = [python, "-c", FLOOR, replay]
    timed(floor, env, work)
    return xc, floor, env, log, size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--command", choices=("scan", "inventory"), default="scan")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--before", metavar="DIR", help="an earlier checkout, timed in the same rounds")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="xcscan-floor-")
    if args.command == "scan":
        profile = os.path.join(work, "all-but-walk.yaml")
        with open(profile, "w") as fh:
            fh.write("id: all-but-walk\ntitle: {zh: 全部规则（不遍历）, en: All rules but the walk}\n"
                     "select:\n  - {ids: ['*']}\nexclude: [%s]\n" % ", ".join(WALK_RULES))
        cmd = ["scan", "--profile", profile, "--format", "json"]
    else:
        cmd = ["inventory", "--format", "json"]
    trees = [("before", os.path.abspath(args.before))] if args.before else []
    trees.append(("now" if args.before else "xcscan", REPO))
    prepared = [(label, prepare(args.python, tree, cmd, work, label)) for label, tree in trees]
    res = {}
    for _ in range(args.runs):
        for label, (xc, floor, env, _log, _size) in prepared:
            res.setdefault((label, "xcscan"), []).append(timed(xc, env, work))
            res.setdefault((label, "floor"), []).append(timed(floor, env, work))
    print("python %s; load average %s" % (args.python, " ".join("%.2f" % x for x in os.getloadavg())))
    print("command: xcscan %s" % " ".join(cmd))
    for label, (_xc, _floor, _env, log, size) in prepared:
        tree = dict(trees)[label]
        print("%s (%s)" % (label, tree) if args.before else "tree %s" % tree)
        print("  floor: %d modules, %d file reads, %d directory listings, %d stats, %d readlinks, %d commands, "
              "%d bytes out" % (len(log["modules"]), len(log["reads"]), len(log["dirs"]), len(log["stats"]),
                                len(log["links"]), len(log["commands"]), size))
        med = {}
        for k in ("xcscan", "floor"):
            runs = res[(label, k)]
            med[k] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
            print("  %-7s wall median %.3f s (min %.3f)  CPU median %.3f s  peak RSS %.1f MiB" % (
                k, med[k][0], min(r[0] for r in runs), med[k][1], max(r[2] for r in runs)))
        print("  ratio xcscan/floor (%d interleaved runs each): wall %.2f, CPU %.2f" % (
            args.runs, med["xcscan"][0] / med["floor"][0], med["xcscan"][1] / med["floor"][1]))


if __name__ == "__main__":
    main()
