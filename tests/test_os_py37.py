"""The hardware/OS collectors and parsers run unchanged on Python 3.7 (the agent's floor) and give
the same facts as on the current interpreter."""
import json
import os
import subprocess
import sys

import pytest

from corpus import corpus_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HW = ["host", "os", "cpu", "dmi", "storage", "pci"]
SCRIPT = ("import json, sys; from scanner.pipeline import collect; "
          "out = {'version': list(sys.version_info[:2])}\n"
          "for root in sys.argv[1:]:\n"
          "    ctx, facts = collect(root, live=False, only=%r)\n"
          "    for v in facts['collection'].values(): v.pop('seconds', None)\n"
          "    out[root] = facts\n"
          "print(json.dumps(out, sort_keys=True))" % HW)


def _python37():
    from test_py37 import find_python37
    return find_python37()


def _roots():
    roots = [os.path.join(REPO, "tests", "fixtures", "hardware", "taishan-kylin")]
    base = corpus_dir()
    if base:
        for case in ("os/tencentos-3.1", "os/uos-20-server-fou", "cpu/loongson-3b4000-mips64", "cpu/ibm-z-s390x",
                     "dmi/phytium-d2000", "lscpu/via-nano-u2250"):
            roots.append(os.path.join(base, case))
    return roots


def _collect(python, roots):
    proc = subprocess.run([python, "-c", SCRIPT] + roots, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env={"PYTHONPATH": REPO, "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                          cwd="/", timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout.decode("utf-8"))


@pytest.mark.skipif(_python37() is None, reason="no Python 3.7 interpreter (set XCSCAN_PY37)")
def test_collectors_on_python37_match_current_python():
    roots = _roots()
    old = _collect(_python37(), roots)
    new = _collect(sys.executable, roots)
    assert old.pop("version") == [3, 7]
    new.pop("version")
    for root in roots:
        assert old[root]["errors"] == new[root]["errors"], root
        for name in HW:
            assert old[root]["collection"][name] == new[root]["collection"][name], (root, name)
            assert old[root][name] == new[root][name], (root, name)
    fixture = old[roots[0]]
    assert fixture["cpu"]["implementer"] == "0x48" and fixture["os"]["id"] == "kylin"
