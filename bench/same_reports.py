#!/usr/bin/env python3
"""Are two checkouts' reports the same? Every fixture root of the project (tests/fixtures/baseline roots
with their modes applied, tests/fixtures/engine/*/root, tests/fixtures/hardware/*, every offline
software-product root of tests/fixtures/software/products.py), scanned by each tree with
``scan --profile all --format json`` and ``inventory --format json``, and this host's live facts
re-evaluated by each tree (``report FACTS.json --format json``), each tree twice (cold caches, then
warm); the JSON is compared byte for byte
after blanking what differs between any two runs (report_id, collected_at, per-collector seconds,
the walk's elapsed time). Exit 1 and a unified diff of the first differences when they are not equal.

    python bench/same_reports.py --before DIR [--after DIR] [--only SUBSTRING]

Use it for a change that must not change results (a speed-up): ``--before`` a checkout of the commit
before (``git worktree add`` or ``git archive | tar -x``), ``--after`` defaults to this tree. Each
tree runs in its own process with ``PYTHONPATH`` set to it; the scans of a tree run in that one
process (click's test runner), so a state leak between roots would show as a difference too.
"""
from __future__ import print_function

import argparse
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests")

# Run inside each tree's process: argv = [roots.json, facts.json, out.json]
DRIVER = r"""
import datetime, json, os, sys
from click.testing import CliRunner

FIXED = datetime.datetime(2026, 12, 6, 8, 0, 0)


class FixedClock(datetime.datetime):  # "now" is one instant for both trees (derived limits are in reports)
    @classmethod
    def utcnow(cls):
        return FIXED

    @classmethod
    def now(cls, tz=None):
        return FIXED if tz is None else FIXED.replace(tzinfo=datetime.timezone.utc).astimezone(tz)


datetime.datetime = FixedClock
from scanner.cli import cli

VOLATILE = ("report_id", "collected_at", "seconds", "elapsed", "elapsed_seconds")
LIVE_VOLATILE = ("processes", "sockets", "host", "errors")  # the scanning process itself, its pid, uptime


def blank(node):
    if isinstance(node, dict):
        return dict((k, "<volatile>" if k in VOLATILE else blank(v)) for k, v in node.items())
    if isinstance(node, list):
        return [blank(v) for v in node]
    return node


def run(args):
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:
        runner = CliRunner()
    res = runner.invoke(cli, args, env={"LANG": "en_US.UTF-8", "LC_ALL": ""}, catch_exceptions=False)
    out = res.stdout_bytes.decode("utf-8")
    try:
        text = json.dumps(blank(json.loads(out)), ensure_ascii=False, indent=1, sort_keys=False)
    except ValueError:
        text = out
    return "exit %d\n%s" % (res.exit_code, text)


try:  # kept compiled regular expressions (scanner/recache.py), as the command line uses them
    from scanner import recache
    recache.install()
except ImportError:
    recache = None
roots, facts_file, out_file = sys.argv[1:4]
with open(roots) as fh:
    roots = json.load(fh)
out = {}
for label, root, extra in roots:
    out["scan " + label] = run(["scan", "--root", root, "--profile", "all", "--format", "json"] + extra)
    out["inventory " + label] = run(["inventory", "--root", root, "--format", "json"] + extra)
if facts_file != "-":
    out["report live facts"] = run(["report", facts_file, "--format", "json"])
    out["report live facts, profile mlps-l3"] = run(["report", facts_file, "--format", "json", "--profile", "mlps-l3"])
    from scanner.pipeline import collect
    facts = blank(collect("/")[1])
    for key in LIVE_VOLATILE:
        facts[key] = "<volatile>"
    out["live facts"] = json.dumps(facts, ensure_ascii=False, indent=1, default=str)
with open(out_file, "w") as fh:
    json.dump(out, fh)
if recache is not None:
    recache.save()
"""


def fixture_roots(work):
    """[(label, root, extra args)] for every fixture root (built under ``work`` where needed)."""
    sys.path[:0] = [TESTS, os.path.join(TESTS, "fixtures", "software")]
    import baseline_support
    import products
    roots = []
    for name in baseline_support.ROOTS:
        roots.append(("baseline/%s (modes applied)" % name, baseline_support.materialise(name, work), []))
    for sub in ("engine", "hardware"):
        base = os.path.join(TESTS, "fixtures", sub)
        for name in sorted(os.listdir(base)):
            root = os.path.join(base, name, "root") if sub == "engine" else os.path.join(base, name)
            if os.path.isdir(root):
                roots.append(("%s/%s" % (sub, name), root, []))
    for spec in products.P:
        if not spec["offline"]:
            continue
        root = os.path.join(work, "software", spec["label"])
        for target, content in spec["offline"].items():
            dest = os.path.join(root, target.lstrip("/"))
            if not os.path.isdir(os.path.dirname(dest)):
                os.makedirs(os.path.dirname(dest))
            if isinstance(content, tuple) and content[0] == "symlink":
                if os.path.lexists(dest):
                    os.unlink(dest)
                os.symlink(content[1], dest)
            else:
                with open(dest, "wb") as fh:
                    fh.write(content if isinstance(content, bytes) else content.encode("utf-8"))
        roots.append(("software/%s" % spec["label"], root, ["--allow-unknown-os"]))
    return roots


def run_tree(tree, roots_file, facts_file, out_file, work):
    """The tree's outputs, from its second pass (the first fills its caches: rules, catalog, YAML, regular
    expressions); a second pass that differs from the first is a difference too."""
    env = dict(os.environ, PYTHONPATH=tree, XCSCAN_CACHE_DIR=os.path.join(work, "cache-%d" % abs(hash(tree))))
    passes = []
    for _ in range(2):
        subprocess.check_call([sys.executable, "-c", DRIVER, roots_file, facts_file, out_file], env=env, cwd=work)
        with open(out_file) as fh:
            passes.append(json.load(fh))
    for key in passes[0]:
        if passes[0][key] != passes[1].get(key):
            passes[1][key] = "first pass (cold caches) and second pass differ\n" + passes[1].get(key, "")
    return passes[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, metavar="DIR")
    ap.add_argument("--after", default=REPO, metavar="DIR")
    ap.add_argument("--only", default=None, help="only roots whose label contains this")
    ap.add_argument("--no-live", action="store_true", help="leave out the re-evaluation of this host's facts")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="xcscan-same-")
    try:
        roots = fixture_roots(work)
        if args.only:
            roots = [r for r in roots if args.only in r[0]]
        roots_file = os.path.join(work, "roots.json")
        with open(roots_file, "w") as fh:
            json.dump(roots, fh)
        facts_file = "-"
        if not args.no_live:  # this host's facts, collected once by the tree before, judged by both
            facts_file = os.path.join(work, "live.json")
            env = dict(os.environ, PYTHONPATH=os.path.abspath(args.before))
            with open(facts_file, "wb") as fh:
                subprocess.check_call([sys.executable, "-m", "scanner", "scan", "--profile", "all", "--format", "json"],
                                      env=env, stdout=fh, cwd=work)
        before = run_tree(os.path.abspath(args.before), roots_file, facts_file, os.path.join(work, "before.json"), work)
        after = run_tree(os.path.abspath(args.after), roots_file, facts_file, os.path.join(work, "after.json"), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    differ = [k for k in before if before[k] != after.get(k)] + [k for k in after if k not in before]
    print("%d outputs compared (%d fixture roots x scan and inventory%s): %d differ" % (
        len(before), len(roots), "" if args.no_live else ", this host's facts re-evaluated", len(differ)))
    for key in differ[:3]:
        print("--- %s" % key)
        diff = difflib.unified_diff((before.get(key) or "").splitlines(), (after.get(key) or "").splitlines(),
                                    "before", "after", n=2, lineterm="")
        for i, line in enumerate(diff):
            if i > 60:
                print("...")
                break
            print(line)
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
