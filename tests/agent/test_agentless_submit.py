"""A scanning station (an enrolled agent) submits reports it collected over SSH for a host without an
agent: `xcscan agent submit REPORT.json` enrolls that host as agentless under the station the first time
(with a token for the host's org unit), signs with the station's key and delivers, against a real
aggregator (`xcscan server init/serve`, SQLite, TLS)."""
import json
import os
import uuid

import pytest

from conftest import Agent, xcscan
from test_e2e_server import RealServer

pytestmark = pytest.mark.skipif(__import__("importlib").util.find_spec("fastapi") is None,
                                reason="the server extra is not installed")


def ssh_report(station, tmp_path, machine_id, hostname="frozen-app01"):
    """A report of the fixture root, as `xcscan scan --ssh` records one it brought back."""
    out = str(tmp_path / ("r-%s.json" % uuid.uuid4().hex[:6]))
    res = xcscan(["scan", "--root", station.scan_root, "--format", "json", "-o", out, "--quiet"])
    assert res.returncode == 0, res.stderr
    with open(out) as fh:
        doc = json.load(fh)
    doc["host"]["machine_id"], doc["host"]["hostname"] = machine_id, hostname
    doc["collection"] = {"method": "ssh", "target": "ops@" + hostname, "sudo": True, "by": "ops@station"}
    with open(out, "w") as fh:
        json.dump(doc, fh)
    return out, doc


def org_token(srv, org, uses=3):
    res = xcscan(["server", "token", "create", "--data-dir", srv.data_dir, "--org", org, "--uses", str(uses)])
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().splitlines()[0]


def test_station_submits_for_an_agentless_host(tmp_path, scan_root):
    srv = RealServer(tmp_path / "server").init()
    srv.start()
    try:
        station = Agent(tmp_path / "station", srv.url, srv.ca, scan_root)
        res = station.enroll(token=srv.token())
        assert res.returncode == 0, res.stderr
        station_id = station.get()["host_id"]
        mid = uuid.uuid4().hex
        path, first = ssh_report(station, tmp_path, mid)

        res = xcscan(["agent", "submit", "--config", station.config, path])
        assert res.returncode == 1 and "not enrolled under this station yet" in res.stderr and "--token" in res.stderr
        token = org_token(srv, "/gov/frozen")
        res = xcscan(["agent", "submit", "--config", station.config, path, "--token", token])
        assert res.returncode == 0, res.stderr
        assert "agentless host" in res.stderr and "delivered" in res.stderr, res.stderr
        with open(os.path.join(station.state, "agentless.json")) as fh:
            host_id = json.load(fh)["hosts"][mid]["host_id"]
        assert host_id != station_id
        with srv.api() as api:
            host = api.get("/api/v1/hosts/%s" % host_id).json()
            assert host["station_id"] == station_id and host["org_path"] == "/gov/frozen"
            assert host["hostname"] == "frozen-app01" and host["latest_report_id"] == first["report_id"]
            stored = api.get("/api/v1/reports/%s" % first["report_id"]).json()
            assert stored["collection"]["method"] == "ssh"

        # the next scan of that host: no token needed; the state file lost: the same host again, no token used
        path2, second = ssh_report(station, tmp_path, mid)
        res = xcscan(["agent", "submit", "--config", station.config, path2])
        assert res.returncode == 0 and "delivered" in res.stderr and "enrolled" not in res.stderr, res.stderr
        os.unlink(os.path.join(station.state, "agentless.json"))
        path3, third = ssh_report(station, tmp_path, mid)
        res = xcscan(["agent", "submit", "--config", station.config, path3, "--token", token])
        assert res.returncode == 0, res.stderr
        with open(os.path.join(station.state, "agentless.json")) as fh:
            assert json.load(fh)["hosts"][mid]["host_id"] == host_id
        with srv.api() as api:
            ids = {r["id"] for r in api.get("/api/v1/hosts/%s/history" % host_id).json()}
            tok = [t for t in api.get("/api/v1/tokens").json() if t["org_path"] == "/gov/frozen"][0]
        assert ids == {first["report_id"], second["report_id"], third["report_id"]}
        assert tok["uses"] == 1
        assert station.spooled() == []

        # a report the station made of itself (not over SSH) is not submitted for another host
        local = str(tmp_path / "local.json")
        assert xcscan(["scan", "--root", scan_root, "--format", "json", "-o", local, "--quiet"]).returncode == 0
        res = xcscan(["agent", "submit", "--config", station.config, local, "--token", token])
        assert res.returncode == 1 and "not collected over SSH" in res.stderr and "Traceback" not in res.stderr
        # without a machine id the report cannot be bound to a host
        with open(path) as fh:
            doc = json.load(fh)
        doc["host"]["machine_id"] = None
        doc["report_id"] = str(uuid.uuid4())
        nomid = str(tmp_path / "nomid.json")
        with open(nomid, "w") as fh:
            json.dump(doc, fh)
        res = xcscan(["agent", "submit", "--config", station.config, nomid, "--token", token])
        assert res.returncode == 1 and "machine_id" in res.stderr
    finally:
        srv.stop()
