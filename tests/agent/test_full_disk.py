"""A full spool filesystem: a real, tiny tmpfs mounted for the test (we are root in CI)."""
import os
import subprocess

import pytest


@pytest.fixture
def tiny_fs(tmp_path):
    mnt = tmp_path / "spoolfs"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mnt)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if res.returncode != 0:
        pytest.fail("cannot mount a tmpfs for the full-disk test (needs root): %s" % res.stderr.decode())
    try:
        yield str(mnt)
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_full_disk_gives_clear_error_and_keeps_the_spool(agent, stub, tiny_fs):
    agent.set(spool_dir=os.path.join(tiny_fs, "spool"))
    agent.spool = os.path.join(tiny_fs, "spool")
    stub.stop()
    assert agent.run().returncode == 4
    (kept,) = agent.spooled()
    original = open(os.path.join(agent.spool, kept), "rb").read()
    # Fill the filesystem to the last block.
    fd = os.open(os.path.join(tiny_fs, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError as exc:
        assert exc.errno == 28
    finally:
        os.close(fd)
    res = agent.run()
    assert res.returncode == 1
    assert "no space left on the spool filesystem" in res.stderr
    assert "the 1 report(s) already in the spool are intact" in res.stderr
    assert agent.spooled() == [kept]
    assert open(os.path.join(agent.spool, kept), "rb").read() == original
    assert not [n for n in os.listdir(agent.spool) if n.startswith(".tmp-")]
    # Space comes back, so does the server: the kept report is delivered first.
    os.unlink(os.path.join(tiny_fs, "filler"))
    stub.start()
    res = agent.run()
    assert res.returncode == 0, res.stderr
    ids = [r["report_id"] for r in stub.state.reports]
    assert len(ids) == 2 and ids[0] in kept
