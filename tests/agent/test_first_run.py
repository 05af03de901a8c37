"""The aggregator's first run as README's "Rolling out to a fleet" writes it: `server init` without a
terminal (password from a file, stdin or the environment), checked before anything is written and
naming the admin; `server serve --host 0.0.0.0` reached by an agent through a non-loopback address
(as agents on other machines do); `agent enroll --root IMAGE` for an image without /etc/hostname."""
import importlib.util
import json
import os
import re
import shlex
import socket
import subprocess
import sys

import pytest

from conftest import REPO, xcscan
from server_process import wait_until_serving

PASSWORD = "first-run-password-1"
pytestmark = pytest.mark.skipif(importlib.util.find_spec("fastapi") is None,
                                reason="the server extra is not installed")


def readme_fleet_commands():
    """The `xcscan server ...` lines of README's fleet section, as argument lists."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    section = text.split("## Rolling out to a fleet", 1)[1].split("\n## ", 1)[0]
    return [shlex.split(line.strip())[2:] for line in section.splitlines()
            if line.strip().startswith("xcscan server ")]


def outside_address():
    """This machine's address on its network (what another machine would connect to), or None."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect(("192.0.2.1", 9))   # TEST-NET: no packet is sent for a UDP connect
        address = sock.getsockname()[0]
    except OSError:
        return None
    finally:
        sock.close()
    return None if address.startswith("127.") else address


def free_port():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def substitute(args, data_dir, password_file, port, address):
    out = []
    for arg in args:
        arg = arg.replace("/var/lib/xcscan-server", data_dir).replace("admin.pw", password_file)
        out.append(arg)
    if out[0] == "serve":
        out[out.index("--port") + 1] = str(port)
    if out[0] == "init":
        out += ["--name", address]   # README: "add --name for every other name or address they use"
    return out


def test_readme_fleet_steps_reach_an_agent_on_another_address(tmp_path, make_root):
    address = outside_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    commands = readme_fleet_commands()
    assert [c[0] for c in commands] == ["init", "serve", "token"]
    assert "--host" in commands[1] and commands[1][commands[1].index("--host") + 1] == "0.0.0.0"
    data_dir = str(tmp_path / "server")
    password_file = tmp_path / "admin.pw"
    password_file.write_text(PASSWORD + "\n")
    port = free_port()
    init, serve, token = [substitute(c, data_dir, str(password_file), port, address) for c in commands]
    res = xcscan(["server"] + init, stdin=subprocess.DEVNULL)     # no terminal: nothing is prompted
    assert res.returncode == 0, res.stderr
    assert "admin user:     admin (created" in res.stdout
    log_path = os.path.join(data_dir, "serve.log")
    with open(log_path, "a") as log:
        proc = subprocess.Popen([sys.executable, "-m", "scanner", "server"] + serve + ["--log-level", "warning"],
                                stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_until_serving(proc, port, os.path.join(data_dir, "ca.pem"), log_path, timeout=60)
        res = xcscan(["server"] + token)
        assert res.returncode == 0, res.stderr
        enroll_token = res.stdout.strip().splitlines()[0]
        image = make_root({"/etc/os-release": 'NAME="openEuler"\nID="openEuler"\nVERSION_ID="22.03"\n',
                           "/etc/machine-id": "5f1c0de2a9b84c7d9e0f1a2b3c4d5e6f\n"})   # no /etc/hostname
        agent_dir = tmp_path / "agent"
        res = xcscan(["agent", "enroll", "--server", "https://%s:%d" % (address, port), "--token", enroll_token,
                      "--ca", os.path.join(data_dir, "ca.pem"), "--config", str(agent_dir / "agent.yaml"),
                      "--spool-dir", str(agent_dir / "spool"), "--state-dir", str(agent_dir / "state"),
                      "--root", image, "--splay", "0"])
        assert res.returncode == 0, res.stderr          # was HTTP 422: the image has no /etc/hostname
        assert "/gov/finance" in res.stdout
        import sqlite3
        conn = sqlite3.connect(os.path.join(data_dir, "xcscan.db"))
        try:
            names = [r[0] for r in conn.execute("SELECT hostname FROM hosts")]
        finally:
            conn.close()
        assert names == ["image-5f1c0de2a9b8"]         # named by its machine id
        res = xcscan(["agent", "run", "--config", str(agent_dir / "agent.yaml"), "--no-splay"])
        assert res.returncode == 0, res.stderr
        assert "1 uploaded" in res.stdout
    finally:
        proc.terminate()
        proc.wait(15)


def test_image_named_by_sysconfig_network(tmp_path, make_root):
    from scanner.agent.enroll import _identity
    image = make_root({"/etc/sysconfig/network": "NETWORKING=yes\nHOSTNAME=db-node-07.example.gov.cn\n"})
    assert _identity(image) == ("db-node-07.example.gov.cn", None)
    bare = make_root({}, root=tmp_path / "golden-kylin")
    assert _identity(bare) == ("image-golden-kylin", None)
    named = make_root({"/etc/hostname": "app01\n"}, root=tmp_path / "named")
    assert _identity(named)[0] == "app01"


@pytest.mark.parametrize("how", ["env", "file", "stdin"])
def test_init_reads_the_password_without_a_terminal(tmp_path, how):
    data_dir = tmp_path / "srv"
    args, env, stdin = ["server", "init", "--data-dir", str(data_dir), "--admin", "secadmin"], {}, subprocess.DEVNULL
    if how == "env":
        env = {"XCSCAN_ADMIN_PASSWORD": PASSWORD}
    elif how == "file":
        pw = tmp_path / "pw"
        pw.write_text(PASSWORD + "\n")
        args += ["--password-file", str(pw)]
    else:
        args += ["--password-file", "-"]
    res = xcscan(args, env=env, input=PASSWORD + "\n") if how == "stdin" else xcscan(args, env=env, stdin=stdin)
    assert res.returncode == 0, res.stderr
    assert "admin user:     secadmin (created; log in with this name)" in res.stdout
    again = xcscan(["server", "init", "--data-dir", str(data_dir)], stdin=subprocess.DEVNULL)
    assert again.returncode == 0 and "admin user:     secadmin (existing, kept)" in again.stdout
    from scanner.server.access.passwords import verify_password
    import sqlite3
    conn = sqlite3.connect(str(data_dir / "xcscan.db"))
    try:
        stored = conn.execute("SELECT password_hash FROM users WHERE username = 'secadmin'").fetchone()[0]
    finally:
        conn.close()
    assert verify_password(stored, PASSWORD)


@pytest.mark.parametrize("case", ["weak", "no-terminal", "bad-name", "missing-file"])
def test_init_refuses_before_writing_anything(tmp_path, case):
    data_dir = tmp_path / "srv"
    args, env = ["server", "init", "--data-dir", str(data_dir)], {}
    if case == "weak":
        env = {"XCSCAN_ADMIN_PASSWORD": "short"}
        expect = "admin password: password must have at least 10 characters"
    elif case == "no-terminal":
        env = {"XCSCAN_ADMIN_PASSWORD": ""}
        expect = "no password given and no terminal to ask on"
    elif case == "bad-name":
        args += ["--admin", "bad name!"]
        env = {"XCSCAN_ADMIN_PASSWORD": PASSWORD}
        expect = "admin user name 'bad name!'"
    else:
        args += ["--password-file", str(tmp_path / "nope.pw")]
        expect = "cannot read the password file"
    res = xcscan(args, env=env, stdin=subprocess.DEVNULL)
    assert res.returncode == 1, res.stdout
    assert expect in res.stderr and "Traceback" not in res.stderr
    assert not data_dir.exists()                      # no half-made data directory


def test_enroll_refuses_an_image_root_with_no_os(tmp_path, make_root):
    """An image not mounted yet (an empty mount point): refused before a key, a config or a request is
    made, instead of enrolling a host named after the mount point."""
    mnt = tmp_path / "mnt-image"
    (mnt / "lost+found").mkdir(parents=True)
    agent_dir = tmp_path / "agent"
    res = xcscan(["agent", "enroll", "--server", "https://127.0.0.1:9", "--token", "tok", "--fingerprint", "ab" * 32,
                  "--config", str(agent_dir / "etc" / "agent.yaml"), "--spool-dir", str(agent_dir / "spool"),
                  "--state-dir", str(agent_dir / "state"), "--root", str(mnt), "--splay", "0"])
    assert res.returncode == 1, res.stdout
    assert "no operating system found under %s — is the image mounted?" % mnt in res.stderr
    assert "mount the image at %s first" % mnt in res.stderr and "Traceback" not in res.stderr
    assert not (agent_dir / "etc" / "agent.yaml").exists() and not (agent_dir / "state").exists()


def test_agent_run_refuses_an_image_root_that_is_no_longer_mounted(agent, make_root):
    """The image was mounted at enrollment; at the next cron run it is not: nothing is scanned or
    spooled (an empty host would be uploaded), the run exits 1 and says why, the last run records it."""
    os.unlink(os.path.join(agent.scan_root, "etc", "os-release"))
    res = agent.run()
    assert res.returncode == 1, res.stdout
    assert "no operating system found under %s — is the image mounted?" % agent.scan_root in res.stderr
    assert agent.spooled() == []
    status = xcscan(["agent", "status", "--config", agent.config, "--format", "json", "--no-probe"])
    last = json.loads(status.stdout)["last_run"]
    assert last["result"] == "error" and "no operating system found" in last["error"]
    with open(os.path.join(agent.scan_root, "etc", "os-release"), "w") as fh:
        fh.write('NAME="Kylin Linux Advanced Server"\nID="kylin"\nVERSION_ID="V10"\n')
    res = agent.run()
    assert res.returncode in (0, 4), res.stderr          # mounted again: scanned and spooled/sent
    assert "no operating system" not in res.stderr
