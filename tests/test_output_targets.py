"""`-o/--output` never destroys what it does not own: a character device and a FIFO are written in
place, a symlink is followed to the regular file it names (which is replaced atomically, the link
stays) or refused, every other special file is refused before anything is written; each file written
is announced on stderr unless --quiet. Real device nodes, FIFOs, sockets and symlinks."""
import json
import os
import socket
import stat
import threading

import pytest
from click.testing import CliRunner

from report_fixtures import FIXTURES, load
from scanner.cli import cli
from scanner.render import render

FIXTURE = os.path.join(FIXTURES, "kylin-l3.json")
NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod and chown need root")


def run(*args):
    runner = CliRunner()
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        pass
    return runner.invoke(cli, ["report", FIXTURE, "--lang", "en"] + list(args),
                         env={"LANG": "en_US.UTF-8", "LC_ALL": ""}, catch_exceptions=False)


def same_report(data):
    """The bytes are the JSON report of the fixture (compact when written to a file)."""
    return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data) == json.loads(render(load(), "json", "en"))


def test_dev_null_stays_a_character_device():
    before = os.stat("/dev/null")
    res = run("--format", "json", "-o", "/dev/null")
    assert res.exit_code == 0, res.output
    after = os.lstat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino
    assert res.stdout == "" and res.stderr == "wrote /dev/null\n"


@needs_root
def test_device_node_written_in_place(tmp_path):
    node = tmp_path / "null"
    os.mknod(str(node), 0o666 | stat.S_IFCHR, os.makedev(1, 3))      # the same device as /dev/null
    res = run("--format", "json", "-o", str(node), "-o", "html:%s" % (tmp_path / "r.html"))
    assert res.exit_code == 0, res.output
    st = os.lstat(str(node))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == render(load(), "html", "en")
    assert sorted(os.listdir(str(tmp_path))) == ["null", "r.html"]  # no temp file beside the device
    assert "wrote %s\n" % node in res.stderr and "wrote %s\n" % (tmp_path / "r.html") in res.stderr


@needs_root
def test_full_device_is_a_clear_error_and_stays(tmp_path):
    node = tmp_path / "full"
    os.mknod(str(node), 0o666 | stat.S_IFCHR, os.makedev(1, 7))      # /dev/full: every write ENOSPC
    res = run("--format", "json", "-o", str(node))
    assert res.exit_code == 1
    assert "no space left on device" in res.stderr and str(node) in res.stderr
    assert stat.S_ISCHR(os.lstat(str(node)).st_mode)


def test_fifo_written_in_place(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(str(fifo))
    got = []

    def reader():
        with open(str(fifo), "rb") as fh:
            got.append(fh.read())

    thread = threading.Thread(target=reader)
    thread.start()
    res = run("--format", "json", "-o", str(fifo))
    thread.join(10)
    assert res.exit_code == 0, res.output
    assert len(got) == 1 and same_report(got[0])
    assert stat.S_ISFIFO(os.lstat(str(fifo)).st_mode)
    assert res.stderr == "wrote %s\n" % fifo


def test_symlink_followed_to_a_regular_file_which_is_replaced(tmp_path):
    real = tmp_path / "reports" / "latest.json"
    real.parent.mkdir()
    real.write_text("old", encoding="utf-8")
    os.chmod(str(real), 0o604)
    old_inode = os.stat(str(real)).st_ino
    link = tmp_path / "current.json"
    os.symlink("reports/latest.json", str(link))
    res = run("--format", "json", "-o", str(link))
    assert res.exit_code == 0, res.output
    assert os.path.islink(str(link)) and os.readlink(str(link)) == "reports/latest.json"
    assert same_report(real.read_text(encoding="utf-8"))
    assert os.stat(str(real)).st_ino != old_inode                       # replaced by rename, atomically
    assert stat.S_IMODE(os.stat(str(real)).st_mode) == 0o604            # keeping its mode
    assert sorted(os.listdir(str(real.parent))) == ["latest.json"]
    assert res.stderr == "wrote %s\n" % link


def test_dangling_symlink_refused(tmp_path):
    link = tmp_path / "r.json"
    os.symlink("missing/r.json", str(link))
    res = run("--format", "json", "-o", str(link))
    assert res.exit_code == 1
    assert "refusing to write output" in res.stderr and "does not exist" in res.stderr
    assert os.readlink(str(link)) == "missing/r.json" and res.stdout == ""


@needs_root
def test_symlink_planted_by_another_user_refused(tmp_path):
    """In a shared directory a link owned by someone else is not followed (fs.protected_symlinks)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(str(shared), 0o1777)
    victim = tmp_path / "victim"
    victim.write_text("precious", encoding="utf-8")
    link = shared / "report.json"
    os.symlink(str(victim), str(link))
    os.lchown(str(link), NOBODY, NOBODY)
    res = run("--format", "json", "-o", str(link))
    assert res.exit_code == 1 and "refusing to write output" in res.stderr and "symlink owned by uid" in res.stderr
    assert victim.read_text(encoding="utf-8") == "precious" and os.path.islink(str(link))


def test_symlink_to_dev_null_written_in_place(tmp_path):
    link = tmp_path / "sink"
    os.symlink("/dev/null", str(link))
    res = run("--format", "json", "-o", str(link))
    assert res.exit_code == 0, res.output
    assert os.readlink(str(link)) == "/dev/null" and stat.S_ISCHR(os.stat("/dev/null").st_mode)


@needs_root
def test_block_device_socket_and_directory_refused_before_writing(tmp_path):
    block = tmp_path / "disk"
    os.mknod(str(block), 0o600 | stat.S_IFBLK, os.makedev(7, 200))
    sock_path = tmp_path / "s.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    html = tmp_path / "r.html"
    try:
        for target, kind in ((block, "a block device"), (sock_path, "a socket"), (tmp_path, "a directory")):
            res = run("--format", "json", "-o", "html:%s" % html, "-o", str(target))
            assert res.exit_code == 1, target
            assert "refusing to write output: it is %s" % kind in res.stderr and str(target) in res.stderr
            assert not html.exists()                       # refused before anything was written
        assert stat.S_ISBLK(os.lstat(str(block)).st_mode)
        assert stat.S_ISSOCK(os.lstat(str(sock_path)).st_mode)
    finally:
        sock.close()


def test_quiet_writes_silently(tmp_path):
    out = tmp_path / "r.json"
    res = run("--format", "json", "-o", str(out), "--quiet")
    assert res.exit_code == 0 and res.stdout == "" and res.stderr == ""
    assert json.loads(out.read_text(encoding="utf-8"))["report_id"] == load()["report_id"]


def test_wrote_line_in_chinese(tmp_path):
    out = tmp_path / "r.csv"
    runner = CliRunner()
    res = runner.invoke(cli, ["report", FIXTURE, "--format", "csv", "-o", str(out), "--lang", "zh"])
    assert res.exit_code == 0 and "已写入 %s" % out in res.output


# --- the other commands with -o: `fix --script -o` and `agent export -o` go through the same rules ---

RHEL_ROOT = os.path.join(os.path.dirname(FIXTURES), "engine", "rhel-default", "root")


def xc(*args):
    runner = CliRunner()
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        pass
    return runner.invoke(cli, list(args), env={"LANG": "en_US.UTF-8", "LC_ALL": ""}, catch_exceptions=False)


def fix_script(*out_args):
    return xc("fix", "--root", RHEL_ROOT, "--every", "--profile", "mlps-l3", "--script", "bash", *out_args)


def read_fifo_while(fifo, action):
    got = []

    def reader():
        with open(str(fifo), "rb") as fh:
            got.append(fh.read())

    thread = threading.Thread(target=reader)
    thread.start()
    res = action()
    thread.join(10)
    assert not thread.is_alive()
    return res, b"".join(got)


@needs_root
def test_fix_script_onto_a_device_node_a_fifo_and_a_symlink(tmp_path):
    expected = fix_script().stdout.encode("utf-8")
    assert expected.startswith(b"#!/bin/sh")
    node = tmp_path / "null"
    os.mknod(str(node), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    res = fix_script("-o", str(node))
    assert res.exit_code == 0, res.stderr
    st = os.lstat(str(node))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)     # was replaced by a regular file
    assert "wrote %s" % node in res.stderr and os.listdir(str(tmp_path)) == ["null"]

    fifo = tmp_path / "pipe"
    os.mkfifo(str(fifo))
    res, data = read_fifo_while(fifo, lambda: fix_script("-o", str(fifo)))
    assert res.exit_code == 0, res.stderr
    assert data == expected and stat.S_ISFIFO(os.lstat(str(fifo)).st_mode)

    real = tmp_path / "scripts" / "fix.sh"
    real.parent.mkdir()
    real.write_text("old", encoding="utf-8")
    link = tmp_path / "fix-latest.sh"
    os.symlink("scripts/fix.sh", str(link))
    res = fix_script("-o", str(link))
    assert res.exit_code == 0, res.stderr
    assert os.readlink(str(link)) == "scripts/fix.sh"          # the link stays, its target is replaced
    assert real.read_bytes() == expected and stat.S_IMODE(os.stat(str(real)).st_mode) == 0o700
    assert os.listdir(str(real.parent)) == ["fix.sh"]


def test_fix_script_refuses_a_dangling_link_a_socket_and_a_directory_before_scanning(tmp_path):
    dangling = tmp_path / "fix.sh"
    os.symlink("missing/fix.sh", str(dangling))
    sock_path = tmp_path / "s.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        for target, code, why in ((dangling, 1, "refusing to write output: it is a symlink to"),
                                  (sock_path, 1, "refusing to write output: it is a socket"),
                                  (tmp_path, 2, "is a directory")):
            # without --every the command would scan first: a refusal comes before that
            res = xc("fix", "--root", RHEL_ROOT, "--script", "bash", "-o", str(target))
            assert res.exit_code == code and why in res.stderr, res.stderr
            assert "scanning" not in res.stderr
        assert os.readlink(str(dangling)) == "missing/fix.sh" and stat.S_ISSOCK(os.lstat(str(sock_path)).st_mode)
    finally:
        sock.close()


def _bundle(tmp_path):
    """A real transfer bundle of two spooled reports, as `agent export` writes it."""
    from scanner.agent.transfer import write_bundle
    files = []
    for n in range(2):
        body = json.dumps({"report_id": "r-%d" % n}).encode("utf-8")
        header = {"report_id": "r-%d" % n, "host_id": "h-1", "timestamp": 1700000000 + n, "length": len(body)}
        files.append(("%020d-r-%d.json" % (n, n), json.dumps(header).encode("utf-8") + b"\n" + body, header))
    path = str(tmp_path / "in.xcb")
    write_bundle(path, files)
    return path


def _report_ids(data, tmp_path):
    from scanner.agent.transfer import read_bundle
    copy = tmp_path / "read-back.xcb"
    copy.write_bytes(data)
    manifest, _members = read_bundle(str(copy))
    return [e["report_id"] for e in manifest["entries"]]


@needs_root
def test_agent_export_onto_a_device_node_a_fifo_and_a_symlink(tmp_path):
    source = _bundle(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    node = out / "null"
    os.mknod(str(node), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    res = xc("agent", "export", "--merge", source, "-o", str(node))
    assert res.exit_code == 0, res.stderr
    assert stat.S_ISCHR(os.lstat(str(node)).st_mode) and os.lstat(str(node)).st_rdev == os.makedev(1, 3)
    assert os.listdir(str(out)) == ["null"]                   # no .part file left beside the device

    fifo = out / "pipe"
    os.mkfifo(str(fifo))
    res, data = read_fifo_while(fifo, lambda: xc("agent", "export", "--merge", source, "-o", str(fifo)))
    assert res.exit_code == 0, res.stderr
    assert _report_ids(data, tmp_path) == ["r-0", "r-1"] and stat.S_ISFIFO(os.lstat(str(fifo)).st_mode)

    usb = tmp_path / "usb"
    usb.mkdir()
    (usb / "bundle.xcb").write_bytes(b"old")
    link = out / "latest.xcb"
    os.symlink(str(usb / "bundle.xcb"), str(link))
    res = xc("agent", "export", "--merge", source, "-o", str(link))
    assert res.exit_code == 0, res.stderr
    assert os.path.islink(str(link)) and _report_ids((usb / "bundle.xcb").read_bytes(), tmp_path) == ["r-0", "r-1"]
    assert os.listdir(str(usb)) == ["bundle.xcb"]

    dangling = out / "gone.xcb"
    os.symlink("nowhere/gone.xcb", str(dangling))
    res = xc("agent", "export", "--merge", source, "-o", str(dangling))
    assert res.exit_code == 1 and "refusing to write output" in res.stderr
    assert os.readlink(str(dangling)) == "nowhere/gone.xcb"
