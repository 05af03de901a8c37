"""The command line's entry point (scanner/launch.py): the kept regular expressions are in re's cache
before click is imported, the collector's first threshold is raised while modules are imported and
given back (what the imports made moved to the oldest generation) once the sub-command is imported,
and `python -m scanner` and the `xcscan` script go through it. Each case runs in a fresh interpreter
(re's cache and the collector's thresholds are process-wide)."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.join(REPO, "tests", "fixtures", "hardware", "taishan-kylin")


def run(code, cache_dir, *args):
    env = dict(os.environ, XCSCAN_CACHE_DIR=str(cache_dir), PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-c", code] + list(args), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


START = """
import gc, json, re, sys
gc.set_threshold(700, 10, 10)
import scanner.launch
assert gc.get_threshold() == (700, 10, 10) and "click" not in sys.modules   # importing it changes nothing
scanner.launch.begin()
seen = {"begun": gc.get_threshold(), "cache": type(re._cache).__name__, "click": "click" in sys.modules}
re.compile(r"launch-(\\d+)-kept")
import click, scanner.cli
from scanner import recache
seen["imported"] = gc.get_threshold()
seen["saved"] = recache.save()
scanner.cli.cli.get_command(None, "inventory")          # the sub-command's module: thresholds given back
seen["settled"] = gc.get_threshold()
seen["young"] = gc.get_count()[0]
seen["gen2_has_cli"] = any(o is scanner.cli.cli for o in gc.get_objects(generation=2))
scanner.cli.cli.get_command(None, "scan")
seen["again"] = gc.get_threshold()
print(json.dumps(seen))
"""


def test_start_up_installs_kept_patterns_first_and_gives_the_thresholds_back(tmp_path):
    first = run(START, tmp_path)
    assert first["begun"] == [50000, 10, 10] and first["imported"] == [50000, 10, 10]
    assert first["cache"] == "dict" and first["click"] is False     # no file yet: re as usual
    assert first["saved"] >= 1                                      # click's and the stdlib's patterns too
    assert first["settled"] == first["again"] == [700, 10, 10]
    assert first["young"] < 50 and first["gen2_has_cli"]
    second = run(START, tmp_path)
    assert second["cache"] == "_Cache" and second["click"] is False  # installed before click is imported
    assert second["saved"] == 0                                      # every pattern came from the file


def test_a_threshold_set_meanwhile_or_a_higher_one_is_left_alone(tmp_path):
    code = ("import gc, json\n"
            "gc.set_threshold(%d, 5, 7)\n"
            "import scanner.launch, scanner.cli\n"
            "scanner.launch.begin()\n"
            "%s"
            "scanner.cli.cli.get_command(None, 'inventory')\n"
            "print(json.dumps(gc.get_threshold()))\n")
    assert run(code % (100000, ""), tmp_path) == [100000, 5, 7]
    assert run(code % (700, "gc.set_threshold(1234, 5, 7)\n"), tmp_path) == [1234, 5, 7]


def test_python_m_scanner_and_the_script_go_through_it(tmp_path):
    """The report of `python -m scanner` is complete and the thresholds the sub-command ran with are the
    caller's (checked from inside the command, by a wrapped pipeline)."""
    code = ("import gc, json, runpy, sys\n"
            "import scanner.pipeline as p\n"
            "seen = []\n"
            "real = p.collect\n"
            "def collect(*a, **k):\n"
            "    seen.append(gc.get_threshold())\n"
            "    return real(*a, **k)\n"
            "p.collect = collect\n"
            "import atexit\n"
            "atexit.register(lambda: sys.stderr.write(json.dumps(seen) + '\\n'))\n"
            "sys.argv = ['scanner', 'inventory', '--root', sys.argv[1], '--format', 'json', '--quiet']\n"
            "runpy.run_module('scanner', run_name='__main__')\n")
    env = dict(os.environ, XCSCAN_CACHE_DIR=str(tmp_path), PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-c", code, ROOT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["inventory"]["components"]
    import scanner.pipeline as pipeline
    assert json.loads(out.stderr.strip().splitlines()[-1]) == [[pipeline.SCAN_GC_THRESHOLD, 10, 10]]
    import re
    with open(os.path.join(REPO, "pyproject.toml")) as fh:
        assert re.search(r'^xcscan = "scanner\.launch:main"$', fh.read(), re.M)
    with open(os.path.join(REPO, "scanner", "__main__.py")) as fh:
        assert "from scanner.launch import main" in fh.read()
