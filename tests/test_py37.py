"""CI gate: the agent side (everything but scanner/server/) runs on Python 3.7.

Kylin V10, UOS 20 and openEuler 20.03 ship Python 3.7 as the system Python.
1. vermin (static minimum-version checker) over scanner/ minus scanner/server/;
2. when a real Python 3.7 is on the machine, byte-compile the same files with it;
3. importing the agent-side modules never pulls in the server stack.
"""
import glob
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_ONLY = ("fastapi", "sqlalchemy", "jinja2", "uvicorn", "alembic", "psycopg", "starlette", "argon2",
               "pydantic")
def _pyenv_pythons():
    """python3.7 builds of pyenv ($PYENV_ROOT, or ~/.pyenv), newest last."""
    root = os.environ.get("PYENV_ROOT") or os.path.join(os.path.expanduser("~"), ".pyenv")
    return sorted(glob.glob(os.path.join(root, "versions", "3.7.*", "bin", "python3.7")))


def agent_side_files():
    out = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, "scanner")):
        rel = os.path.relpath(dirpath, REPO)
        if rel == os.path.join("scanner", "server") or rel.startswith(os.path.join("scanner", "server") + os.sep):
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        out.extend(os.path.join(dirpath, f) for f in filenames if f.endswith(".py"))
    return sorted(out)


def find_python37():
    """A Python 3.7 interpreter: $XCSCAN_PY37, python3.7 on PATH, or a pyenv build; None if there is none."""
    env = [os.environ["XCSCAN_PY37"]] if os.environ.get("XCSCAN_PY37") else []
    for cand in env + ["python3.7"] + list(reversed(_pyenv_pythons())):
        path = shutil.which(cand) or (cand if os.path.isfile(cand) and os.access(cand, os.X_OK) else None)
        if path:
            out = subprocess.run([path, "-c", "import sys; print(sys.version_info[:2])"], stderr=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, universal_newlines=True)
            if out.stdout.strip() == "(3, 7)":
                return path
    return None


def test_agent_side_needs_at_most_python_37_per_vermin():
    files = agent_side_files()
    assert any(f.endswith(os.path.join("agent", "runner.py")) for f in files)
    assert not any(os.sep + "server" + os.sep in f for f in files)
    res = subprocess.run([sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())", "-t=3.7-", "--violations", "--no-tips",
                          "--no-parse-comments"] + files,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, cwd=REPO)
    assert res.returncode == 0, "code that needs Python > 3.7 on the agent side:\n" + res.stdout


def test_agent_side_compiles_with_a_real_python_37(tmp_path):
    py37 = find_python37()
    if py37 is None:
        pytest.skip("no Python 3.7 interpreter on this machine (vermin still gates)")
    script = ("import py_compile, sys\nbad = []\nfor f in sys.argv[1:]:\n"
              "    try:\n        py_compile.compile(f, cfile=%r + '/x.pyc', doraise=True)\n"
              "    except py_compile.PyCompileError as e:\n        bad.append(str(e))\n"
              "print('\\n'.join(bad)); sys.exit(1 if bad else 0)\n" % str(tmp_path))
    res = subprocess.run([py37, "-c", script] + agent_side_files(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True)
    assert res.returncode == 0, res.stdout


def test_agent_side_imports_never_load_the_server_stack():
    modules = ["scanner.agent." + os.path.basename(p)[:-3]
               for p in glob.glob(os.path.join(REPO, "scanner", "agent", "*.py"))]
    modules += ["scanner.cli", "scanner.cli.agent", "scanner.pipeline", "scanner.collect", "scanner.classify",
                "scanner.report", "scanner.inventory", "scanner.catalog"]
    code = ("import importlib, sys\n"
            "for m in %r:\n    importlib.import_module(m)\n"
            "from scanner.collect import COLLECTORS, load\n"
            "for name in COLLECTORS:\n    load(name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in %r)\n"
            "print(' '.join(bad))\n" % (sorted(modules), SERVER_ONLY))
    res = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", "agent-side imports loaded server modules: " + res.stdout
