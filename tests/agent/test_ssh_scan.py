"""Agentless scans over SSH against a real OpenSSH server (Debian's openssh-server) on a loopback port,
with a throwaway host key, a throwaway user and a sudoers entry made for the test and removed after it."""
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time

import pytest

from conftest import xcscan

SSHD = "/usr/sbin/sshd"
IN_CI = os.environ.get("CI") == "true"


def _need(condition, why):
    if not condition:
        if IN_CI:
            pytest.fail(why + " (required under CI=true; .ci/run installs openssh-server and sudo)")
        pytest.skip(why)


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    _need(os.geteuid() == 0, "a test sshd and a throwaway user need root")
    _need(os.path.exists(SSHD) and shutil.which("ssh") and shutil.which("sudo"), "openssh-server/sudo not installed")
    base = tmp_path_factory.mktemp("sshd")
    os.chmod(str(base), 0o755)
    user = "xcs%s" % secrets.token_hex(4)
    # "*": no password, but not locked (sshd refuses locked accounts even with a key when UsePAM is off)
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", "-p", "*", user], check=True)
    sudoers = "/etc/sudoers.d/%s" % user
    try:
        pw = pwd.getpwnam(user)
        ssh_dir = os.path.join(pw.pw_dir, ".ssh")
        os.mkdir(ssh_dir, 0o700)
        key = str(base / "id_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        shutil.copy(key + ".pub", os.path.join(ssh_dir, "authorized_keys"))
        work = os.path.join(pw.pw_dir, "tmp")          # the target's TMPDIR: must be empty after each scan
        os.mkdir(work, 0o700)
        for p in (ssh_dir, os.path.join(ssh_dir, "authorized_keys"), work):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        with open(sudoers, "w") as fh:
            fh.write("%s ALL=(root) NOPASSWD: ALL\n" % user)
        os.chmod(sudoers, 0o440)
        hostkey = str(base / "ssh_host_ed25519_key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostkey], check=True)
        port = _free_port()
        cfg = str(base / "sshd_config")
        with open(cfg, "w") as fh:
            fh.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s\nPidFile %s\nUsePAM no\n"
                     "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
                     "AuthorizedKeysFile .ssh/authorized_keys\nSetEnv TMPDIR=%s\n"
                     % (port, hostkey, base / "sshd.pid", work))
        os.makedirs("/run/sshd", exist_ok=True)
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", cfg], stdout=subprocess.DEVNULL,
                                stderr=open(str(base / "sshd.log"), "w"))
        known = str(base / "known_hosts")
        with open(hostkey + ".pub") as fh:
            kind, blob = fh.read().split()[:2]
        with open(known, "w") as fh:
            fh.write("[127.0.0.1]:%d %s %s\n" % (port, kind, blob))
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("sshd did not start: %s" % open(str(base / "sshd.log")).read())
        yield {"target": "%s@127.0.0.1:%d" % (user, port), "key": key, "known": known, "work": work,
               "base": base, "port": port, "user": user}
        proc.terminate()
        proc.wait(10)
    finally:
        if os.path.exists(sudoers):
            os.unlink(sudoers)
        subprocess.run(["userdel", "-r", "-f", user], stderr=subprocess.DEVNULL)


def ssh_scan(sshd, bundle, *extra, known=None):
    return xcscan(["scan", "--ssh", sshd["target"], "--bundle", bundle, "--known-hosts", known or sshd["known"],
                   "--ssh-identity", sshd["key"], "--profile", "mlps-l3", "--format", "json", "--quiet"]
                  + list(extra), timeout=300)


def test_scan_over_ssh_matches_a_local_scan_and_leaves_nothing(sshd, bundle):
    from scanner.pipeline import scan_report
    res = ssh_scan(sshd, bundle)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["collection"]["method"] == "ssh" and report["collection"]["sudo"] is False
    assert report["collection"]["target"] == sshd["target"] and "@" in report["collection"]["by"]
    assert any(n["code"] == "ssh" for n in report["notices"])
    local = scan_report(profile="mlps-l3")
    assert report["host"]["hostname"] == local["host"]["hostname"]
    assert report["host"]["machine_id"] == local["host"]["machine_id"]
    assert report["host"]["live"] is True
    os_of = lambda r: [(c["product_id"], c.get("version")) for c in r["inventory"]["components"]  # noqa: E731
                       if c["category"] == "os"]
    assert os_of(report) == os_of(local)
    assert sorted(r["rule_id"] for r in report["results"]) == sorted(r["rule_id"] for r in local["results"])
    # unprivileged on the target: /etc/shadow was not readable and the report says so
    assert any(e.get("path") == "/etc/shadow" for e in report["facts"]["errors"])
    assert os.listdir(sshd["work"]) == [], "the bundle and its cache must be removed from the target"


def test_scan_over_ssh_with_sudo_reads_what_root_reads(sshd, bundle):
    res = ssh_scan(sshd, bundle, "--ssh-sudo")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["collection"]["sudo"] is True
    assert not any(e.get("path") == "/etc/shadow" for e in report["facts"]["errors"])
    assert os.listdir(sshd["work"]) == [], "root-owned files of the sudo run must be removed too"


def test_an_unknown_host_key_is_refused(sshd, bundle, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    res = ssh_scan(sshd, bundle, known=str(empty))
    assert res.returncode == 1
    assert "Host key verification failed" in res.stderr and "known_hosts" in res.stderr
    assert res.stdout == ""


def test_a_host_list_scans_in_parallel_and_reports_each_host(sshd, bundle, tmp_path):
    hosts = tmp_path / "hosts.txt"
    dead = "%s@127.0.0.1:%d" % (sshd["user"], _free_port())
    hosts.write_text("# finance\n%s\n%s\n" % (sshd["target"], dead))
    out = tmp_path / "reports"
    res = xcscan(["scan", "--ssh-list", str(hosts), "--bundle", bundle, "--known-hosts", sshd["known"],
                  "--ssh-identity", sshd["key"], "--profile", "mlps-l3", "--output-dir", str(out),
                  "--jobs", "2"], timeout=300)
    assert res.returncode == 1, res.stderr          # one host could not be scanned
    assert dead in res.stderr
    files = os.listdir(str(out))
    assert len(files) == 1
    report = json.load(open(str(out / files[0])))
    assert report["collection"]["target"] == sshd["target"]
    # --fail-on over a list: exit 3 and, per host that caused it, one line naming its findings
    hosts.write_text("%s\n" % sshd["target"])
    victim = tmp_path / "precious"
    victim.write_text("precious")
    os.symlink(str(victim), str(out / (files[0] + ".part")))     # a link planted where a temp file was made
    res = xcscan(["scan", "--ssh-list", str(hosts), "--bundle", bundle, "--known-hosts", sshd["known"],
                  "--ssh-identity", sshd["key"], "--profile", "mlps-l3", "--output-dir", str(out),
                  "--fail-on", "low", "--lang", "en"], timeout=300)
    assert res.returncode == 3, res.stderr
    report = json.load(open(str(out / files[0])))
    failing = [r for r in report["results"] if r["status"] == "fail" and r["severity"] != "info"]
    lines = [l for l in res.stderr.splitlines() if "exit 3" in l]
    assert len(lines) == 1 and failing
    assert lines[0].startswith("xcscan: %s: exit 3: %d failed rule(s) at or above low: " % (sshd["target"], len(failing)))
    assert victim.read_text() == "precious" and not os.path.islink(str(out / files[0]))


def test_a_profile_file_and_two_targets_are_usage_errors(bundle, tmp_path):
    res = xcscan(["scan", "--ssh", "root@127.0.0.1", "--bundle", bundle, "--profile", str(tmp_path / "p.yaml")])
    assert res.returncode == 2 and "profile file" in res.stderr
    res = xcscan(["scan", "--ssh", "root@127.0.0.1", "--root", str(tmp_path)])
    assert res.returncode == 2 and "one target" in res.stderr
