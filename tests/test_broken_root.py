"""Broken input never stops the inventory: each problem is listed in facts.errors and the run exits 0."""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _garbage(size, seed):
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(size))


def _run_cli(root, user=None, *extra):
    cmd = [sys.executable, "-m", "scanner", "inventory", "--root", root, "--format", "json"] + list(extra)
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    return json.loads(proc.stdout.decode("utf-8"))


def _errors(report, path=None, collector=None):
    return [e for e in report["facts"]["errors"]
            if (path is None or e["path"] == path) and (collector is None or e["collector"] == collector)]


@pytest.fixture
def broken_root(make_root):
    return make_root({
        "/etc/os-release": _garbage(2048, 1),
        "/usr/lib/os-release": b"\x00\x01\x02ELF\xff\xfe" * 50,
        "/proc/cpuinfo": _garbage(4096, 2),
        "/etc/system-release": ("symlink", "/nonexistent/system-release"),   # dangling
        "/etc/centos-release": ("symlink", "redhat-release"),                # loop
        "/etc/redhat-release": ("symlink", "centos-release"),
        "/sys/class/dmi/id/sys_vendor": ("symlink", "sys_vendor"),           # self-loop
        "/sys/class/dmi/id/product_name": _garbage(64, 3),
        "/sys/block/sdb/device/vendor": ("symlink", "../../sdb/device/vendor"),
        "/sys/bus/pci/devices/0000:3b:00.0/vendor": b"\xff\xfe\x00garbage\n",
        "/sys/bus/pci/devices/0000:3b:00.0/class": b"not-hex\n",
    })


def test_broken_root_finishes_and_lists_every_problem(broken_root):
    report = _run_cli(broken_root)
    os_errors = [e["message"] for e in _errors(report, "/etc/os-release", "os")]
    assert any("malformed os-release" in m for m in os_errors)
    assert any("neither ID nor NAME" in m for m in os_errors)
    assert _errors(report, "/usr/lib/os-release", "os")
    assert [e["message"] for e in _errors(report, "/etc/system-release", "os")] == [
        "dangling symbolic link (-> /nonexistent/system-release); treated as missing"]
    assert "symbolic link loop" in _errors(report, "/etc/centos-release", "os")[0]["message"]
    assert "symbolic link loop" in _errors(report, "/sys/class/dmi/id/sys_vendor", "dmi")[0]["message"]
    assert "undecodable" in _errors(report, "/sys/class/dmi/id/product_name", "dmi")[0]["message"]
    cpu_errors = [e["message"] for e in _errors(report, "/proc/cpuinfo", "cpu")]
    assert any("no CPU identification fields" in m for m in cpu_errors), cpu_errors
    assert "symbolic link loop" in _errors(report, "/sys/block/sdb/device/vendor", "storage")[0]["message"]
    # nothing was guessed
    assert report["inventory"]["components"] == [] or all(
        c["origin"] == "unknown" for c in report["inventory"]["components"])
    assert report["facts"]["cpu"] is None
    assert report["facts"]["pci"]["devices"] == []
    assert "not a hexadecimal PCI id" in _errors(report, "/sys/bus/pci/devices/0000:3b:00.0/vendor")[0]["message"]
    assert "not a hexadecimal PCI id" in _errors(report, "/sys/bus/pci/devices/0000:3b:00.0/class")[0]["message"]


def test_huge_cpuinfo_is_read_bounded(make_root):
    block = ("processor\t: %d\nvendor_id\t: HygonGenuine\ncpu family\t: 24\nmodel\t\t: 2\n"
             "model name\t: Hygon C86 7390 32-core Processor\nphysical id\t: 0\ncpu cores\t: 32\n"
             "flags\t\t: " + "fpu vme de pse tsc msr pae mce " * 20 + "\n\n")
    root = make_root({})
    path = os.path.join(root, "proc")
    os.makedirs(path)
    with open(os.path.join(path, "cpuinfo"), "w") as fh:
        i = 0
        while fh.tell() < 50 * 1024 * 1024:
            fh.write(block % i)
            i += 1
    from scanner.collect.cpu import CPUINFO_MAX_BYTES
    # GNU time measures the child's own peak RSS (a child forked from pytest would count pytest's pages)
    timer = shutil.which("time") or "/usr/bin/time"
    if not os.path.exists(timer):
        pytest.skip("GNU time is needed to measure the child's peak RSS")
    rss_file = os.path.join(root, "..", "rss.txt")
    proc = subprocess.run([timer, "-f", "%M", "-o", rss_file, sys.executable, "-m", "scanner", "inventory",
                           "--root", root, "--format", "json", "--allow-unknown-os"],   # a root of cpuinfo only
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=dict(os.environ, PYTHONPATH=REPO), timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    with open(rss_file) as fh:
        peak_kb = int(fh.read().split()[-1])
    # bounded read and parse: far below the file's size (the bare CLI is ~22 MB)
    assert peak_kb < 35 * 1024, peak_kb  # the agent RSS target holds even here
    report = json.loads(proc.stdout.decode("utf-8"))
    assert "only the first %d bytes were read" % CPUINFO_MAX_BYTES in _errors(report, "/proc/cpuinfo")[0]["message"]
    assert report["facts"]["cpu"]["truncated"] is True
    cpus = [c for c in report["inventory"]["components"] if c["category"] == "cpu"]
    assert [(c["product_id"], c["origin"]) for c in cpus] == [("hygon", "domestic")]


def test_empty_root(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    report = _run_cli(str(root), None, "--allow-unknown-os")   # without it: exit 1 (tests/test_target_root.py)
    assert report["notices"] == [{"code": "unknown_os", "fields": {"root": str(root)}}]
    assert report["inventory"]["components"] == []
    assert report["facts"]["os"] is None and report["facts"]["collection"]["os"]["status"] == "unknown"
    assert [e["message"] for e in _errors(report, "/etc/os-release", "os")] == [
        "no os-release or vendor release file found; the OS is unknown"]
    assert report["inventory"]["localization"]["rate"] is None


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to drop to nobody")
def test_unprivileged_reads_are_reported_not_fatal():
    """As `nobody`, mode-000 files give 'permission denied' entries; readable facts still come through."""
    base = tempfile.mkdtemp(prefix="xcscan-unpriv-")   # the system temp dir: nobody can traverse it
    try:
        os.chmod(base, 0o755)
        files = {
            "etc/os-release": 'NAME="openEuler"\nID="openEuler"\nVERSION_ID="22.03"\n',
            "etc/openEuler-release": "openEuler release 22.03 (LTS-SP2)\n",
            "proc/cpuinfo": "processor\t: 0\nCPU implementer\t: 0x48\nCPU part\t: 0xd01\n\n",
            "sys/class/dmi/id/sys_vendor": "Huawei\n",
            "sys/class/dmi/id/product_serial": "2102312XYZ\n",
        }
        for rel, content in files.items():
            dest = os.path.join(base, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "w") as fh:
                fh.write(content)
        for dirpath, dirnames, _ in os.walk(base):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)
        os.chmod(os.path.join(base, "etc/openEuler-release"), 0)
        os.chmod(os.path.join(base, "proc/cpuinfo"), 0)
        script = ("import json, sys; from scanner.pipeline import collect; "
                  "ctx, facts = collect(sys.argv[1], live=False, only=['os', 'cpu', 'dmi']); "
                  "print(json.dumps({'errors': facts['errors'], 'os': facts.get('os'), 'dmi': facts.get('dmi'), "
                  "'uid': __import__('os').geteuid()}))")
        # the interpreter's own site-packages may sit under /root (unreadable to nobody): the collectors
        # need the standard library only
        proc = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                               sys.executable, "-S", "-c", script, base],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                              env={"PYTHONPATH": REPO, "PATH": "/usr/bin:/bin"}, cwd="/")
        assert proc.returncode == 0, proc.stderr.decode()
        out = json.loads(proc.stdout.decode())
        assert out["uid"] != 0
        denied = dict((e["path"], e["message"]) for e in out["errors"])
        assert denied["/proc/cpuinfo"].startswith("permission denied")
        assert denied["/etc/openEuler-release"].startswith("permission denied")
        assert out["os"]["id"] == "openeuler"           # what was readable is still there
        assert out["dmi"]["sys_vendor"] == "Huawei"
    finally:
        shutil.rmtree(base, ignore_errors=True)
