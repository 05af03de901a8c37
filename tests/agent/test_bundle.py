"""The offline bundle: one .pyz, run by a bare system Python (3.7 when present) with no site-packages."""
import hashlib
import json
import os
import stat
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO, Agent


def run_bundle(bare_python, bundle, args, cache, **kw):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "XCSCAN_BUNDLE_CACHE": cache, "LANG": "C"}
    return subprocess.run(bare_python + [bundle] + list(args), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120, **kw)


def test_bundle_is_one_self_contained_pure_python_file(bundle, tmp_path):
    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
    assert "__main__.py" in names and "_xcscan_bootstrap.py" in names
    assert "payload/scanner/agent/runner.py" in names
    assert any(n.startswith("payload/scanner/_rules/catalog/") for n in names)
    assert "payload/scanner/locale/zh.yaml" in names
    for dep in ("click/__init__.py", "yaml/__init__.py"):
        assert "payload/_vendor/" + dep in names
    # no longer dependencies: nothing in the agent imports them
    assert not [n for n in names if n.startswith(("payload/_vendor/tabulate", "payload/_vendor/distro"))]
    assert not [n for n in names if n.startswith("payload/scanner/server/")]
    assert not [n for n in names if n.endswith((".so", ".pyc"))]
    assert any(n.startswith("payload/licenses/click/") for n in names)
    assert os.path.getsize(bundle) < 3 * 1024 * 1024
    # Reproducible: building again gives the same bytes.
    again = str(tmp_path / "again.pyz")
    subprocess.run([sys.executable, os.path.join(REPO, "agents", "bundle", "build.py"), "-o", again,
                    "--offline"], check=True, stdout=subprocess.PIPE)
    digest = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()  # noqa: E731
    assert digest(again) == digest(bundle)


def test_bundle_enrolls_and_uploads_with_bare_system_python(bundle, bare_python, tmp_path, stub, pki, scan_root):
    cache = str(tmp_path / "cache")
    a = Agent(tmp_path / "agent", stub.url, pki["ca"], scan_root)
    res = run_bundle(bare_python, bundle, ["agent", "enroll", "--server", stub.url, "--token", "tok-finance",
                                           "--ca", pki["ca"], "--config", a.config, "--spool-dir", a.spool,
                                           "--state-dir", a.state, "--root", scan_root, "--splay", "0"], cache)
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(os.stat(os.path.join(os.path.dirname(a.config), "agent.key")).st_mode) == 0o600
    a.set(retries=0)
    res = run_bundle(bare_python, bundle, ["agent", "run", "--config", a.config, "--no-splay"], cache)
    assert res.returncode == 0, res.stderr
    assert "1 uploaded" in res.stdout
    # Signed without `cryptography` (not importable under -S), verified by the server with it.
    probe = subprocess.run(bare_python + ["-c", "import cryptography"], stderr=subprocess.PIPE)
    assert probe.returncode != 0
    assert len(stub.state.reports) == 1
    assert stub.state.reports[0]["report"]["host"]["hostname"] == "gov-app-01"
    res = run_bundle(bare_python, bundle, ["inventory", "--root", scan_root, "--format", "json"], cache)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["schema"] == "xcscan.report/1"


def test_bundle_refuses_a_cache_others_can_write(bundle, bare_python, tmp_path):
    cache = tmp_path / "shared-cache"
    cache.mkdir()
    os.chmod(str(cache), 0o777)
    res = run_bundle(bare_python, bundle, ["--version"], str(cache))
    assert res.returncode != 0
    assert "writable by group or others" in res.stderr
    os.chmod(str(cache), 0o700)
    res = run_bundle(bare_python, bundle, ["--version"], str(cache))
    assert res.returncode == 0 and "xcscan" in res.stdout


def _which_yaml(python, bundle, cache):
    code = ("import sys; sys.path.insert(0, %r); import _xcscan_bootstrap as b\n"
            "b.setup_path(b.extract(%r))\n"
            "import yaml, click; print(yaml.__with_libyaml__, '_vendor' in yaml.__file__, '_vendor' in click.__file__)"
            % (bundle, bundle))
    res = subprocess.run(python + ["-c", code], env={"XCSCAN_BUNDLE_CACHE": cache, "PATH": "/usr/bin:/bin"},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


def test_bundle_prefers_the_hosts_libyaml_and_vendors_the_rest(bundle, bare_python, tmp_path):
    import yaml
    if not getattr(yaml, "__with_libyaml__", False):
        pytest.skip("this Python's PyYAML has no libyaml")
    cache = str(tmp_path / "cache")
    # A host Python with PyYAML + libyaml: that yaml is used, click still comes from the bundle.
    assert _which_yaml([sys.executable, "-I"], bundle, cache) == ["True", "False", "True"]
    # A bare host Python: everything from the bundle, pure-Python YAML.
    assert _which_yaml(bare_python, bundle, cache) == ["False", "True", "True"]


def test_a_later_run_finds_its_extraction_without_hashing_and_a_changed_bundle_is_extracted_anew(
        bundle, bare_python, tmp_path):
    import shutil
    cache = str(tmp_path / "cache")
    mine = str(tmp_path / "xcscan-agent.pyz")
    shutil.copy(bundle, mine)
    assert run_bundle(bare_python, mine, ["--version"], cache).returncode == 0
    digest = hashlib.sha256(open(mine, "rb").read()).hexdigest()[:16]
    stamps = os.listdir(os.path.join(cache, "by-stat"))
    assert len(stamps) == 1 and open(os.path.join(cache, "by-stat", stamps[0])).read().strip() == digest
    # the second run: the stamp leads to the extraction; hashlib/zipfile/shutil are not even imported
    code = ("import sys; sys.path.insert(0, %r); import _xcscan_bootstrap as b\n"
            "t = b.extract(%r); print(t, 'hashlib' in sys.modules, 'zipfile' in sys.modules, 'shutil' in sys.modules)"
            % (mine, mine))
    res = subprocess.run(bare_python + ["-c", code], env={"XCSCAN_BUNDLE_CACHE": cache}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [os.path.join(cache, digest), "False", "False", "False"]
    # a new bundle in the same place (new content, new mtime): a new extraction, not the old code
    with zipfile.ZipFile(mine, "a") as zf:
        zf.writestr("payload/NEWER", "2\n")
    os.utime(mine, ns=(os.stat(mine).st_atime_ns, os.stat(mine).st_mtime_ns + 10 ** 9))
    assert run_bundle(bare_python, mine, ["--version"], cache).returncode == 0
    newer = hashlib.sha256(open(mine, "rb").read()).hexdigest()[:16]
    assert newer != digest and os.path.isfile(os.path.join(cache, newer, "NEWER"))
