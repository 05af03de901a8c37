"""End to end against the real aggregator: `xcscan server init/serve` on loopback over TLS (SQLite),
agents enrolled and run as real subprocesses, results read back through the server's API."""
import importlib.util
import json
import os
import socket
import ssl
import subprocess
import sys

import pytest

from conftest import Agent, xcscan
from server_process import wait_until_serving  # noqa: E402

PASSWORD = "agent-e2e-password-1"
pytestmark = pytest.mark.skipif(importlib.util.find_spec("fastapi") is None,
                                reason="the server extra is not installed")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RealServer(object):
    def __init__(self, data_dir):
        self.data_dir = str(data_dir)
        self.port = free_port()
        self.url = "https://127.0.0.1:%d" % self.port
        self.ca = os.path.join(self.data_dir, "ca.pem")
        self.proc = None

    def init(self):
        res = xcscan(["server", "init", "--data-dir", self.data_dir], env={"XCSCAN_ADMIN_PASSWORD": PASSWORD})
        assert res.returncode == 0, res.stderr
        return self

    def token(self, uses=5):
        res = xcscan(["server", "token", "create", "--data-dir", self.data_dir, "--org", "/gov/finance",
                      "--uses", str(uses)])
        assert res.returncode == 0, res.stderr
        return res.stdout.strip().splitlines()[0]

    def start(self):
        self.log = open(os.path.join(self.data_dir, "serve.log"), "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "scanner", "server", "serve", "--data-dir",
                                      self.data_dir, "--port", str(self.port), "--log-level", "warning"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_until_serving(self.proc, self.port, self.ca, self.log.name, timeout=60)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def arrival_order(self, host_id):
        """Report ids in insertion order, straight from the server's SQLite database."""
        import sqlite3
        conn = sqlite3.connect(os.path.join(self.data_dir, "xcscan.db"))
        try:
            return [r[0] for r in conn.execute("SELECT id FROM reports WHERE host_id = ? ORDER BY rowid",
                                               (host_id,))]
        finally:
            conn.close()

    def api(self):
        import httpx
        ctx = ssl.create_default_context(cafile=self.ca)
        with httpx.Client(base_url=self.url, verify=ctx, timeout=60) as c:
            resp = c.post("/api/v1/session", json={"username": "admin", "password": PASSWORD})
        assert resp.status_code == 200, resp.text
        return httpx.Client(base_url=self.url, verify=ctx, timeout=60,
                            headers={"Authorization": "Bearer " + resp.json()["token"]})


@pytest.fixture
def real_server(tmp_path):
    srv = RealServer(tmp_path / "server").init()
    srv.start()
    yield srv
    srv.stop()


def _history_ids(api, host_id):
    resp = api.get("/api/v1/hosts/%s/history" % host_id)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    rows = doc if isinstance(doc, list) else (doc.get("items") or doc.get("reports") or doc.get("history") or [])
    rows = sorted(rows, key=lambda r: r["received_at"])  # arrival order
    return [r.get("report_id") or r.get("id") for r in rows]


def test_enroll_run_and_host_shows_up_with_inventory_and_results(tmp_path, real_server, scan_root):
    agent = Agent(tmp_path / "agent", real_server.url, real_server.ca, scan_root)
    res = agent.enroll(token=real_server.token())
    assert res.returncode == 0, res.stderr
    agent.set(retries=0, backoff=0)
    host_id = agent.get()["host_id"]
    res = agent.run()
    assert res.returncode == 0, res.stderr
    assert "1 uploaded, 0 left in spool" in res.stdout
    report_id = res.stdout.split("report ", 1)[1].split(" ", 1)[0]
    with real_server.api() as api:
        resp = api.get("/api/v1/hosts/%s" % host_id)
        assert resp.status_code == 200, resp.text
        text = json.dumps(resp.json())
        assert "gov-app-01" in text  # the host, by the name its report carries
        stored = api.get("/api/v1/reports/%s" % report_id)
        assert stored.status_code == 200, stored.text
        doc = stored.json()
        report = doc.get("report", doc)
        assert report["report_id"] == report_id
        components = report["inventory"]["components"]
        assert any(c.get("product_id") == "kylin" for c in components), components
        assert isinstance(report.get("results"), list) and report["results"], "no rule results stored"
    st = xcscan(["agent", "status", "--config", agent.config, "--format", "json"])
    doc = json.loads(st.stdout)
    assert doc["server_reachable"] is True and doc["spool"]["depth"] == 0


def test_real_server_outage_then_back_every_report_once_in_order(tmp_path, real_server, scan_root):
    agent = Agent(tmp_path / "agent", real_server.url, real_server.ca, scan_root)
    assert agent.enroll(token=real_server.token()).returncode == 0
    agent.set(retries=0, backoff=0)
    host_id = agent.get()["host_id"]
    res = agent.run()
    assert res.returncode == 0, res.stderr
    first = res.stdout.split("report ", 1)[1].split(" ", 1)[0]
    real_server.stop()
    for _ in range(3):
        res = agent.run()
        assert res.returncode == 4, res.stderr
    waiting = []
    for name in agent.spooled():
        with open(os.path.join(agent.spool, name), "rb") as fh:
            waiting.append(json.loads(fh.readline())["report_id"])
    assert len(waiting) == 3
    # A tampered report among them: the real server refuses it, the agent reports it and goes on.
    tampered = os.path.join(agent.spool, agent.spooled()[1])
    data = open(tampered, "rb").read()
    with open(tampered, "wb") as fh:
        fh.write(data.replace(b"gov-app-01", b"gov-app-99"))
    real_server.start()
    res = agent.run("--upload-only")
    assert res.returncode == 1
    assert "bad_signature" in res.stderr and "rejected" in res.stderr
    assert agent.spooled() == []
    res = agent.run("--upload-only")
    assert res.returncode == 0 and "0 spooled report(s) uploaded" in res.stdout
    with real_server.api() as api:
        assert sorted(_history_ids(api, host_id)) == sorted([first, waiting[0], waiting[2]])
    ids = real_server.arrival_order(host_id)
    # Every genuine report exactly once, in scan order; the tampered one never stored.
    assert ids == [first, waiting[0], waiting[2]]
