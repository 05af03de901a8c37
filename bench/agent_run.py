#!/usr/bin/env python3
"""Benchmark `xcscan agent run` on this machine: wall time and peak RSS per run, and the bundle size.

    python bench/agent_run.py [--runs 5] [--profile all] [--root /]

Each run is a real `xcscan agent run --no-splay` subprocess that scans (live host by
default), signs, spools and uploads over TLS to a loopback HTTPS aggregator (the test
stub from tests/agent/stub_server.py, which verifies signatures like the real one).
Peak RSS is what the agent records in status.json (getrusage of itself and of its commands). Measured twice: installed package on
this Python, and the offline bundle on a bare system Python (3.7 when present, -I -S).
"""
from __future__ import print_function

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, os.path.join(REPO, "tests", "agent"))
sys.path.insert(0, REPO)


def timed(argv, env):
    # Through a small sh: a child forked straight from this (large) process would inherit its
    # peak RSS in ru_maxrss; the agent's own figure (status.json) is then clean.
    argv = ["sh", "-c", '"$@"; exit $?', "sh"] + list(argv)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8
    if proc.returncode != 0:
        sys.exit("run failed (%d): %s %s" % (proc.returncode, out.decode(), err.decode()))
    return wall, usage.ru_maxrss / 1024.0  # KiB -> MiB


def bench(label, prefix, args, env, runs, stub, state_dir):
    import json
    walls, cmds, own = [], [], []
    before = len(stub.state.reports)
    for _ in range(runs):
        w, _ = timed(prefix + args, env)
        walls.append(w)
        with open(os.path.join(state_dir, "status.json")) as fh:
            last = json.load(fh)["last_run"]
        own.append(last["max_rss_kb"] / 1024.0)
        cmds.append(last["commands_max_rss_kb"] / 1024.0)
    assert len(stub.state.reports) == before + runs, "not every run was acknowledged"
    print("%s\n    runs=%d  wall median %.3f s (min %.3f, max %.3f)\n"
          "    peak RSS: agent process %.1f MiB (max over runs); largest command a collector ran %.1f MiB"
          % (label, runs, statistics.median(walls), min(walls), max(walls), max(own), max(cmds)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--profile", default="all")
    ap.add_argument("--root", default="/")
    args = ap.parse_args()

    import pathlib
    from stub_server import StubAggregator, make_pki
    from test_py37 import find_python37

    work = pathlib.Path(tempfile.mkdtemp(prefix="xcscan-bench-"))
    pki = make_pki(work)
    stub = StubAggregator(pki).start()
    stub.state.tokens["bench"] = "/bench"
    env = dict(os.environ, XCSCAN_BUNDLE_CACHE=str(work / "cache"))
    env.pop("XCSCAN_AGENT_CONFIG", None)
    bundle = str(work / "xcscan-agent.pyz")
    subprocess.run([sys.executable, os.path.join(REPO, "agents", "bundle", "build.py"), "-o", bundle],
                   check=True, stdout=subprocess.PIPE)
    print("machine: %d CPU(s), %s; Python %s" % (os.cpu_count(), os.uname().machine, sys.version.split()[0]))
    print("bundle: %s  %d bytes (%.0f KiB)" % (os.path.basename(bundle), os.path.getsize(bundle),
                                              os.path.getsize(bundle) / 1024.0))
    py37 = find_python37()
    variants = [("installed package, Python %d.%d" % sys.version_info[:2], [sys.executable, "-m", "scanner"])]
    variants.append(("offline bundle, %s -I -S" % ("Python 3.7" if py37 else "this Python"),
                     [py37 or sys.executable, "-I", "-S", bundle]))
    for i, (label, prefix) in enumerate(variants):
        config = str(work / ("agent%d" % i) / "agent.yaml")
        enroll = [ "agent", "enroll", "--server", stub.url, "--token", "bench", "--ca", pki["ca"],
                  "--config", config, "--spool-dir", str(work / ("spool%d" % i)),
                  "--state-dir", str(work / ("state%d" % i)), "--profile", args.profile, "--root", args.root,
                  "--splay", "0"]
        res = subprocess.run(prefix + enroll, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if res.returncode != 0:
            sys.exit("enroll failed: %s" % res.stderr.decode())
        timed(prefix + ["agent", "run", "--config", config, "--no-splay"], env)  # warm caches / extraction
        stub.state.reports.clear()
        bench("%s, root %s" % (label, args.root), prefix, ["agent", "run", "--config", config, "--no-splay",
                                                          "--quiet"], env, args.runs, stub,
              str(work / ("state%d" % i)))
    import json
    size = max(len(json.dumps(r["report"], separators=(",", ":"))) for r in stub.state.reports)
    print("report body (largest, uncompressed JSON): %d bytes" % size)
    stub.stop()


if __name__ == "__main__":
    main()
