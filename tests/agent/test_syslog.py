"""`syslog: true`: the summary and the warnings go to syslog (a real /dev/log datagram socket)."""
import os
import re
import socket

import pytest


@pytest.fixture
def dev_log():
    if os.path.exists("/dev/log"):
        pytest.skip("/dev/log belongs to a running syslog daemon here; not replacing it")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind("/dev/log")
    except OSError as exc:
        pytest.fail("cannot bind /dev/log for the syslog test (needs root): %s" % exc)
    sock.settimeout(0.2)
    try:
        yield sock
    finally:
        sock.close()
        os.unlink("/dev/log")


def _drain(sock):
    """The agent's messages on /dev/log. The socket is the whole machine's: other programs running at the
    same time (ansible modules log every invocation there) are not the agent's and are left out."""
    out = []
    while True:
        try:
            msg = sock.recv(65536).decode("utf-8", "replace")
        except socket.timeout:
            return out
        tag = re.match(r"<\d+>\w{3} [ \d]\d \d\d:\d\d:\d\d ([^\s\[:]+)", msg)   # RFC 3164: <PRI>TIMESTAMP TAG
        if tag is None or tag.group(1).startswith("xcscan"):
            out.append(msg)


def test_syslog_gets_summary_and_warnings(agent, stub, dev_log):
    agent.set(syslog=True)
    res = agent.run()
    assert res.returncode == 0, res.stderr
    msgs = _drain(dev_log)
    summary = [m for m in msgs if "signed and spooled" in m]
    assert summary and "xcscan-agent[" in summary[0]
    assert summary[0].startswith("<29>")  # facility daemon (3) * 8 + notice (5)
    stub.stop()
    res = agent.run()
    assert res.returncode == 4
    msgs = _drain(dev_log)
    warn = [m for m in msgs if "upload deferred" in m]
    assert warn and warn[0].startswith("<28>")  # daemon.warning


def test_no_syslog_unless_asked(agent, stub, dev_log):
    assert agent.run().returncode == 0
    assert _drain(dev_log) == []
