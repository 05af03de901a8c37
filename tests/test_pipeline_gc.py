"""A scan raises the cyclic collector's first threshold while it runs and gives the caller's back."""
import gc
import os

import pytest

import scanner.pipeline as pipeline

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "hardware", "taishan-kylin")


@pytest.fixture
def thresholds():
    saved = gc.get_threshold()
    yield saved
    gc.set_threshold(*saved)


def _watch(monkeypatch, fail=False):
    seen = []
    real = pipeline.collect

    def collect(*args, **kwargs):
        seen.append(gc.get_threshold())
        if fail:
            raise RuntimeError("collector broke")
        return real(*args, **kwargs)
    monkeypatch.setattr(pipeline, "collect", collect)
    return seen


def test_inventory_and_scan_run_with_the_raised_threshold_and_restore_it(monkeypatch, thresholds):
    gc.set_threshold(700, 10, 10)
    seen = _watch(monkeypatch)
    report = pipeline.inventory_report(root=ROOT)
    assert report["inventory"]["components"]
    assert gc.get_threshold() == (700, 10, 10)
    report = pipeline.scan_report(root=ROOT, profile="xinchuang")
    assert report["results"]
    assert seen == [(pipeline.SCAN_GC_THRESHOLD, 10, 10)] * 2
    assert gc.get_threshold() == (700, 10, 10)


def test_a_higher_threshold_of_the_caller_is_kept_and_a_failure_restores(monkeypatch, thresholds):
    gc.set_threshold(10 * pipeline.SCAN_GC_THRESHOLD, 5, 7)
    seen = _watch(monkeypatch, fail=True)
    with pytest.raises(RuntimeError):
        pipeline.scan_report(root=ROOT, profile="xinchuang")
    assert seen == [(10 * pipeline.SCAN_GC_THRESHOLD, 5, 7)]
    assert gc.get_threshold() == (10 * pipeline.SCAN_GC_THRESHOLD, 5, 7)


def test_what_a_scan_keeps_is_moved_to_the_oldest_generation(thresholds):
    """No youngest-generation collection over the scan's survivors after it returns: the report is
    in the oldest generation (examined only by a full collection), the young counts are zero."""
    gc.set_threshold(700, 10, 10)
    for build in (pipeline.inventory_report, lambda root: pipeline.scan_report(root=root, profile="xinchuang")):
        report = build(ROOT)
        assert gc.get_count()[0] < 50
        young = gc.get_objects(generation=0) + gc.get_objects(generation=1)
        assert not any(obj is report or obj is report["inventory"] for obj in young)
        assert any(obj is report for obj in gc.get_objects(generation=2))
        assert gc.get_threshold() == (700, 10, 10)
    gc.collect()  # a full collection still examines them: nothing of the report is collected
    assert report["inventory"]["components"]


def test_the_command_line_freezes_the_heap_before_the_interpreter_ends(tmp_path):
    """`xcscan` ends with every object in the permanent generation, so interpreter shutdown frees them
    by reference counts without the cyclic collector traversing them; the output is complete and the
    exit code unchanged (atexit handlers still run: this one reports the frozen count)."""
    import json
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: sys.stderr.write('frozen %d\\n' % gc.get_freeze_count()))\n"
            "from scanner.cli import main\n"
            "main(['inventory', '--root', sys.argv[1], '--format', 'json', '--quiet'])\n")
    env = dict(os.environ, PYTHONPATH=repo, XCSCAN_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code, ROOT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.decode("utf-8"))["inventory"]["components"]
    frozen = int(out.stderr.decode().strip().splitlines()[-1].split()[1])
    assert frozen > 10000
