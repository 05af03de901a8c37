"""`xcscan agent run` as a real subprocess against a real HTTPS aggregator on loopback."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import Agent, xcscan
from stub_server import make_pki


def wait_for(path, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path) and open(path).read().strip():
            return int(open(path).read())
        time.sleep(0.02)
    raise AssertionError("the agent never reached the pause point (%s)" % path)


def kill_at(agent, point, tmp_path):
    marker = str(tmp_path / ("reached-" + point))
    proc = agent.popen(env={"XCSCAN_AGENT_TEST_PAUSE": point, "XCSCAN_AGENT_TEST_PAUSE_FILE": marker})
    pid = wait_for(marker)
    assert pid == proc.pid
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def spooled_ids(agent):
    out = []
    for name in agent.spooled():
        with open(os.path.join(agent.spool, name), "rb") as fh:
            out.append(json.loads(fh.readline())["report_id"])
    return out


def stored_ids(stub):
    return [r["report_id"] for r in stub.state.reports]


def test_run_signs_spools_uploads_and_reports_one_line(agent, stub):
    res = agent.run()
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    lines = res.stdout.splitlines()
    assert len(lines) == 1 and "signed and spooled; 1 uploaded, 0 left in spool" in lines[0]
    assert len(stub.state.reports) == 1
    stored = stub.state.reports[0]["report"]
    assert stored["schema"] == "xcscan.report/1"
    assert stored["host"]["hostname"] == "gov-app-01"
    assert stored["host"]["machine_id"] == "0123456789abcdef0123456789abcdef"
    assert stored["report_id"] in lines[0]
    assert agent.spooled() == []
    st = xcscan(["agent", "status", "--config", agent.config, "--format", "json"])
    doc = json.loads(st.stdout)
    assert doc["last_run"]["result"] == "ok" and doc["last_run"]["report_id"] == stored["report_id"]
    assert doc["spool"]["depth"] == 0 and doc["server_reachable"] is True
    assert doc["last_upload"]["sent"] == 1 and doc["last_upload"]["last_success_at"]


def test_outage_then_recovery_delivers_every_report_once_in_order(agent, stub):
    stub.stop()
    for i in range(3):
        res = agent.run()
        assert res.returncode == 4, res.stderr
        assert "upload deferred" in res.stderr and "%d report(s) kept" % (i + 1) in res.stderr
    waiting = spooled_ids(agent)
    assert len(waiting) == 3 and len(set(waiting)) == 3
    st = xcscan(["agent", "status", "--config", agent.config])
    assert st.returncode == 1 and "UNREACHABLE" in st.stdout and "3 report(s)" in st.stdout
    stub.start()  # same port, same state: the aggregator is back
    res = agent.run()
    assert res.returncode == 0, res.stderr
    assert "4 uploaded, 0 left" in res.stdout
    ids = stored_ids(stub)
    assert ids[:3] == waiting and len(ids) == 4 and len(set(ids)) == 4
    stamps = [r["timestamp"] for r in stub.state.reports]
    assert stamps == sorted(stamps)
    # Nothing left to send, nothing sent twice.
    res = agent.run("--upload-only")
    assert res.returncode == 0 and "0 spooled report(s) uploaded" in res.stdout
    assert len(stub.state.reports) == 4


def test_sigkill_during_spool_write_loses_and_corrupts_nothing(agent, stub, tmp_path):
    stub.stop()
    assert agent.run().returncode == 4
    before = {n: open(os.path.join(agent.spool, n), "rb").read() for n in agent.spooled()}
    kill_at(agent, "spool-write", tmp_path)
    # The half-written report exists only as a temporary dot-file; the spool proper is untouched.
    assert {n: open(os.path.join(agent.spool, n), "rb").read() for n in agent.spooled()} == before
    assert any(os.path.basename(p).startswith(".tmp-") for p in agent.all_spool_files())
    stub.start()
    res = agent.run()
    assert res.returncode == 0, res.stderr
    assert "partial spool file" in res.stderr
    assert not any(os.path.basename(p).startswith(".tmp-") for p in agent.all_spool_files())
    ids = stored_ids(stub)
    assert ids[0] == json.loads(list(before.values())[0].split(b"\n", 1)[0])["report_id"]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert agent.spooled() == []


@pytest.mark.parametrize("point", ["upload-sent", "upload-acked"])
def test_sigkill_during_upload_neither_loses_nor_duplicates(agent, stub, tmp_path, point):
    kill_at(agent, point, tmp_path)
    # The agent never saw / acted on an acknowledgement: the report must still be spooled.
    pending = spooled_ids(agent)
    assert len(pending) == 1
    if point == "upload-acked":  # the server answered: it has the report
        assert stored_ids(stub) == pending
    # at "upload-sent" the server may or may not have read the request before the connection died
    res = agent.run("--upload-only")
    assert res.returncode == 0, res.stderr
    assert agent.spooled() == []
    assert stored_ids(stub) == pending  # the resend was acknowledged, not stored again


def test_tampered_spool_file_is_refused_by_server_and_reported(agent, stub):
    stub.stop()
    assert agent.run().returncode == 4
    assert agent.run().returncode == 4
    first, second = agent.spooled()
    path = os.path.join(agent.spool, first)
    data = open(path, "rb").read()
    assert b"gov-app-01" in data
    with open(path, "wb") as fh:
        fh.write(data.replace(b"gov-app-01", b"gov-app-66"))  # same length: only the signature can tell
    stub.start()
    res = agent.run("--upload-only")
    assert res.returncode == 1
    assert "refused by the server: HTTP 401 bad_signature" in res.stderr
    assert ("/api/v1/reports", 401) in stub.state.requests
    rejected_dir = os.path.join(agent.spool, "rejected")
    assert sorted(os.listdir(rejected_dir)) == sorted([first, first + ".reason"])
    # The genuine report behind it still went through; the tampered one was not stored.
    assert len(stub.state.reports) == 1
    assert all(r["report"]["host"]["hostname"] == "gov-app-01" for r in stub.state.reports)
    doc = json.loads(xcscan(["agent", "status", "--config", agent.config, "--format", "json",
                             "--no-probe"]).stdout)
    assert doc["spool"]["rejected"] == 1 and "bad_signature" in doc["last_run"]["error"]


def test_two_runs_at_the_same_moment_one_runs_one_exits_at_once(agent, stub):
    # The lock holder pauses 5 s after its upload, so the runs surely overlap.
    env = {"XCSCAN_AGENT_TEST_PAUSE": "upload-acked", "XCSCAN_AGENT_TEST_PAUSE_SECONDS": "5"}
    t0 = time.time()
    procs = [agent.popen(env=env), agent.popen(env=env)]
    done = {}
    while len(done) < 2 and time.time() - t0 < 60:
        for p in procs:
            if p not in done and p.poll() is not None:
                done[p] = time.time() - t0
        time.sleep(0.01)
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        outs.append((p.returncode, out, err, done[p]))
    codes = sorted(o[0] for o in outs)
    assert codes == [0, 75], outs
    loser = [o for o in outs if o[0] == 75][0]
    winner = [o for o in outs if o[0] == 0][0]
    assert "another `xcscan agent run` is in progress (pid" in loser[2]
    assert loser[3] < winner[3] - 3  # it did not wait for the lock holder
    assert loser[1] == ""  # no summary, no scan
    assert len(stub.state.reports) == 1


def test_spool_cap_evicts_oldest_loudly(agent, stub):
    agent.set(spool_max_reports=2)
    stub.stop()
    assert agent.run().returncode == 4
    assert agent.run().returncode == 4
    oldest = agent.spooled()[0]
    res = agent.run()
    assert res.returncode == 4
    assert "SPOOL FULL: evicted the oldest report %s" % oldest in res.stderr
    assert len(agent.spooled()) == 2 and oldest not in agent.spooled()


def test_fingerprint_pinning(tmp_path, stub, pki, scan_root):
    a = Agent(tmp_path / "fp", stub.url, pki["ca"], scan_root)
    res = xcscan(["agent", "enroll", "--server", stub.url, "--token", "tok-finance", "--fingerprint",
                  ":".join(pki["fingerprint"][i:i + 2] for i in range(0, 64, 2)).upper(),
                  "--config", a.config, "--spool-dir", a.spool, "--state-dir", a.state, "--root", scan_root])
    assert res.returncode == 0, res.stderr
    assert a.get()["fingerprint"] == pki["fingerprint"]
    a.set(retries=0)
    assert a.run().returncode == 0
    a.set(fingerprint="00" * 32)
    res = a.run()
    assert res.returncode == 1
    assert "fingerprint is %s, expected the pinned" % pki["fingerprint"] in res.stderr
    assert len(stub.state.reports) == 1 and len(a.spooled()) == 1


def test_certificate_from_another_ca_is_refused_and_spool_kept(agent, stub, tmp_path):
    other = make_pki(tmp_path)
    agent.set(ca_file=other["ca"])
    res = agent.run()
    assert res.returncode == 1
    assert "not signed by the pinned CA" in res.stderr
    assert len(agent.spooled()) == 1 and stub.state.reports == []


def test_server_forgot_the_host_stops_and_keeps_spool(agent, stub):
    stub.state.hosts.clear()
    res = agent.run()
    assert res.returncode == 1
    assert "re-enroll" in res.stderr and "unknown_host" in res.stderr
    assert len(agent.spooled()) == 1


def test_enroll_errors_are_clear_and_write_nothing(tmp_path, stub, pki, scan_root):
    a = Agent(tmp_path / "bad", stub.url, pki["ca"], scan_root)
    res = a.enroll(token="nope")
    assert res.returncode == 1
    assert "unknown enrollment token (HTTP 401" in res.stderr and "token create" in res.stderr
    assert not os.path.exists(a.config)
    res = a.enroll()
    assert res.returncode == 0, res.stderr
    assert "existing Ed25519 key reused" in res.stdout  # the key made by the failed attempt
    for d in (a.spool, a.state):  # made at enrollment, private
        assert oct(os.stat(d).st_mode & 0o777) == oct(0o700)
    again = a.enroll()
    assert again.returncode == 1 and "already enrolled" in again.stderr
    res = xcscan(["agent", "run", "--config", str(tmp_path / "missing.yaml")])
    assert res.returncode == 1 and "enroll first" in res.stderr


def test_config_errors_name_the_setting(agent):
    agent.set(retries="many")
    res = agent.run()
    assert res.returncode == 1 and "retries must be a whole number" in res.stderr
    agent.set(retries=0, colour="blue")
    res = agent.run()
    assert res.returncode == 1 and "unknown setting(s): colour" in res.stderr


def test_config_path_from_environment(agent, stub):
    res = xcscan(["agent", "run", "--no-splay"], env={"XCSCAN_AGENT_CONFIG": agent.config})
    assert res.returncode == 0, res.stderr
    assert len(stub.state.reports) == 1


def test_scan_budget_kills_the_commands_a_stuck_scan_left(tmp_path):
    code = (
        "import subprocess, sys, time\n"
        "from scanner.agent import config as c, runner\n"
        "cfg = c.AgentConfig(c.validate({'scan_budget': 1}, 'x'), %r)\n"
        "procs = []\n"
        "def stuck(_cfg):\n"
        "    procs.append(subprocess.Popen(['sleep', '60']))\n"
        "    procs[0].communicate(timeout=30)\n"
        "runner._scan = stuck\n"
        "try:\n"
        "    runner.scan_within_budget(cfg)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, procs[0].pid)\n" % str(tmp_path / "a.yaml"))
    res = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=30)
    name, pid = res.stdout.split()
    assert name == "XcscanError", res.stderr
    assert not os.path.exists("/proc/%s" % pid)  # killed and reaped, not left behind


def test_scan_budget_stops_a_stuck_scan(monkeypatch, tmp_path):
    from scanner.agent import config as agent_config, runner
    from scanner.errors import XcscanError
    cfg = agent_config.AgentConfig(agent_config.validate({"scan_budget": 1}, "x"), str(tmp_path / "a.yaml"))

    def stuck(_cfg):
        try:
            time.sleep(30)
        except Exception:  # a collector's broad except must not swallow the budget
            pass
        time.sleep(30)

    monkeypatch.setattr(runner, "_scan", stuck)
    t0 = time.time()
    with pytest.raises(XcscanError) as err:
        runner.scan_within_budget(cfg)
    assert time.time() - t0 < 5
    assert "time budget of 1 s" in str(err.value)


def _spool_two_then_re_enroll(agent, stub):
    stub.stop()
    assert agent.run().returncode == 4
    assert agent.run().returncode == 4
    old_host = agent.get()["host_id"]
    stub.start()
    res = agent.enroll(extra=["--force"])
    assert res.returncode == 0, res.stderr
    assert "existing Ed25519 key reused" in res.stdout
    agent.set(retries=0, backoff=0)
    new_host = agent.get()["host_id"]
    assert new_host != old_host
    return old_host, new_host


def test_reports_spooled_before_a_re_enrollment_keep_their_identity(agent, stub):
    old_host, new_host = _spool_two_then_re_enroll(agent, stub)
    res = agent.run()
    assert res.returncode == 0, res.stderr
    assert [r["host_id"] for r in stub.state.reports] == [old_host, old_host, new_host]


def test_reports_of_a_deleted_old_identity_are_rejected_not_blocking(agent, stub):
    old_host, new_host = _spool_two_then_re_enroll(agent, stub)
    del stub.state.hosts[old_host]
    res = agent.run()
    assert res.returncode == 1
    assert res.stderr.count("unknown_host") >= 2 and "rejected" in res.stderr
    assert [r["host_id"] for r in stub.state.reports] == [new_host]
    assert len(os.listdir(os.path.join(agent.spool, "rejected"))) == 4  # two reports + two .reason files
    assert agent.run().returncode == 0


def test_transient_server_errors_are_retried_with_backoff_in_the_same_run(agent, stub):
    agent.set(retries=3, backoff=0)
    stub.state.fail_next = 2
    res = agent.run()
    assert res.returncode == 0, res.stderr
    assert [s for p, s in stub.state.requests if p == "/api/v1/reports"] == [503, 503, 200]
    assert len(stub.state.reports) == 1
    stub.state.fail_next = 5
    agent.set(retries=1)
    res = agent.run()
    assert res.returncode == 4 and "HTTP 503" in res.stderr
    assert len(agent.spooled()) == 1


def test_splay_is_random_and_bounded(agent, stub):
    agent.set(splay=1)
    t0 = time.time()
    res = xcscan(["agent", "run", "--config", agent.config])  # no --no-splay
    assert res.returncode == 0, res.stderr
    with open(os.path.join(agent.state, "status.json")) as fh:
        slept = json.load(fh)["last_run"]["splay_seconds"]
    assert 0 <= slept <= 1 and time.time() - t0 >= slept


def test_run_is_niced_ioniced_and_memory_bounded(agent, stub, tmp_path):
    marker = str(tmp_path / "paused")
    proc = agent.popen(env={"XCSCAN_AGENT_TEST_PAUSE": "upload-acked", "XCSCAN_AGENT_TEST_PAUSE_FILE": marker})
    try:
        pid = wait_for(marker)
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
        ionice = subprocess.run(["ionice", "-p", str(pid)], stdout=subprocess.PIPE, universal_newlines=True)
        assert "idle" in ionice.stdout
        limits = open("/proc/%d/limits" % pid).read()
        line = [l for l in limits.splitlines() if l.startswith("Max address space")][0]
        assert str(1024 * 1024 * 1024) in line
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()


def test_missing_key_fails_before_scanning_with_a_fix(agent, stub):
    os.unlink(os.path.join(os.path.dirname(agent.config), "agent.key"))
    res = agent.run()
    assert res.returncode == 1
    assert "the agent key is missing" in res.stderr and "xcscan agent enroll" in res.stderr
    assert agent.spooled() == [] and stub.state.reports == []
    with open(os.path.join(agent.state, "status.json")) as fh:
        assert "key is missing" in json.load(fh)["last_run"]["error"]
