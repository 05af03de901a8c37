"""Hosts without an agent, enrolled as "agentless" under a scanning station (an enrolled agent that scans
them over SSH): the station signs the enrollment request and the reports with its own key, against a real
server (TLS, SQLite and PostgreSQL). Nobody else can enroll under a station or sign for its hosts; a
replayed request enrolls nothing twice; a retired station's hosts are refused."""
from __future__ import annotations

import base64
import json
import time
import uuid

from fleet import Agent
from server_support import ADMIN

AGENTLESS_PREFIX = b"xcscan-agentless-enroll/1\n"


def signed_enroll(station, token, hostname, machine_id, key=None, timestamp=None, station_id=None):
    """(body bytes, headers) of an agentless enrollment request signed by ``station`` (or ``key``)."""
    body = json.dumps({"token": token, "hostname": hostname, "machine_id": machine_id}).encode()
    ts = str(int(timestamp if timestamp is not None else time.time()))
    sid = station_id or station.host_id
    sig = (key or station.key).sign(AGENTLESS_PREFIX + sid.encode() + b"\n" + ts.encode() + b"\n" + body)
    return body, {"X-Xcscan-Host": sid, "X-Xcscan-Timestamp": ts, "X-Xcscan-Signature": base64.b64encode(sig).decode(),
                  "Content-Type": "application/json"}


def ssh_report(target, station, hostname, machine_id):
    doc = target.report() if target else None
    doc["host"]["hostname"], doc["host"]["machine_id"] = hostname, machine_id
    doc["collection"] = {"method": "ssh", "target": "ops@%s" % hostname, "sudo": True, "by": "ops@station"}
    return doc


def test_a_station_enrolls_and_reports_for_an_agentless_host(server):
    org = "/agentless-%s" % uuid.uuid4().hex[:6]
    station = Agent("station-%s" % uuid.uuid4().hex[:6], machine_id=uuid.uuid4().hex)
    with server.client() as c:
        assert station.enroll(c, server.token(org="/stations")).status_code == 201
        token = server.token(org=org, uses=5)
        mid = uuid.uuid4().hex
        body, headers = signed_enroll(station, token, "frozen-db01", mid)
        r = c.post("/api/v1/enroll/agentless", content=body, headers=headers)
        assert r.status_code == 201, r.text
        target_id = r.json()["host_id"]
        assert r.json()["org"] == org and r.json()["station"] == station.host_id and target_id != station.host_id

        # a report for it, signed by the station under the target's host id
        target = Agent("frozen-db01", machine_id=mid)
        target.host_id, target.key = target_id, station.key
        doc = ssh_report(target, station, "frozen-db01", mid)
        assert target.submit(c, doc).status_code == 200
        # the same report signed by the target's "own" key (anyone else's) is refused
        other = Agent("frozen-db01", machine_id=mid)
        other.host_id = target_id
        r = other.submit(c, ssh_report(other, station, "frozen-db01", mid))
        assert r.status_code == 401 and r.json()["error"] == "bad_signature"
        # host binding holds: another machine's report under this host id is refused
        r = target.submit(c, ssh_report(target, station, "frozen-db02", uuid.uuid4().hex))
        assert r.status_code == 403 and r.json()["error"] == "host_mismatch"

        # the request again (a replay, or the station lost its state): the same host, no token use
        with server.login() as admin:
            uses = [t for t in admin.get("/api/v1/tokens").json() if t["org_path"] == org][0]["uses"]
        r = c.post("/api/v1/enroll/agentless", content=body, headers=headers)
        assert r.status_code == 201 and r.json()["host_id"] == target_id
        with server.login() as admin:
            assert [t for t in admin.get("/api/v1/tokens").json() if t["org_path"] == org][0]["uses"] == uses == 1
            host = admin.get("/api/v1/hosts/%s" % target_id).json()
        assert host["station_id"] == station.host_id and host["org_path"] == org
        with server.client() as w:  # the host page says who speaks for it
            form = w.get("/login")
            csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
            assert w.post("/login", data={"username": ADMIN[0], "password": ADMIN[1], "csrf_token": csrf,
                                          "next": "/"}).status_code in (200, 303)
            page = w.get("/hosts/%s" % target_id, params={"lang": "en"}).text
        assert 'id="host-agentless"' in page and 'href="/hosts/%s"' % station.host_id in page

    with server.login() as admin:
        entries = [e for e in admin.get("/api/v1/audit", params={"limit": 1000}).json()
                   if e["action"] == "host.enroll" and e["actor"] == "agent:" + station.host_id
                   and "agentless" in (e["detail"] or {})]
    assert len(entries) == 1 and entries[0]["detail"]["agentless"] == target_id


def test_nobody_else_enrolls_under_a_station(server):
    station = Agent("station-%s" % uuid.uuid4().hex[:6], machine_id=uuid.uuid4().hex)
    with server.client() as c:
        assert station.enroll(c, server.token(org="/stations")).status_code == 201
        token = server.token(org="/agentless-x", uses=5)
        intruder = Agent("intruder")
        cases = [
            signed_enroll(station, token, "t1", uuid.uuid4().hex, key=intruder.key),            # not the station's key
            signed_enroll(station, token, "t1", uuid.uuid4().hex, timestamp=time.time() - 3600),  # an old request
            signed_enroll(station, token, "t1", uuid.uuid4().hex, station_id=str(uuid.uuid4())),  # no such station
        ]
        codes = []
        for body, headers in cases:
            r = c.post("/api/v1/enroll/agentless", content=body, headers=headers)
            codes.append((r.status_code, r.json()["error"]))
        assert codes == [(401, "bad_signature"), (401, "stale_timestamp"), (401, "unknown_host")], codes
        body, headers = signed_enroll(station, token, "t1", uuid.uuid4().hex)
        tampered = body.replace(b'"t1"', b'"t2"')
        r = c.post("/api/v1/enroll/agentless", content=tampered, headers=headers)
        assert (r.status_code, r.json()["error"]) == (401, "bad_signature")
        # a wrong token is refused with the token's own error code, after the signature is checked
        body, headers = signed_enroll(station, "xct_not-a-token", "t1", uuid.uuid4().hex)
        r = c.post("/api/v1/enroll/agentless", content=body, headers=headers)
        assert (r.status_code, r.json()["error"]) == (401, "unknown_token")
        # an agentless host is no station
        body, headers = signed_enroll(station, token, "t3", uuid.uuid4().hex)
        child = c.post("/api/v1/enroll/agentless", content=body, headers=headers).json()["host_id"]
        body, headers = signed_enroll(station, token, "t4", uuid.uuid4().hex, station_id=child)
        r = c.post("/api/v1/enroll/agentless", content=body, headers=headers)
        assert (r.status_code, r.json()["error"]) == (403, "not_a_station")
    with server.login() as admin:
        assert [t for t in admin.get("/api/v1/tokens").json() if t["org_path"] == "/agentless-x"][0]["uses"] == 1


def test_a_retired_station_speaks_for_nobody(server):
    station = Agent("station-%s" % uuid.uuid4().hex[:6], machine_id=uuid.uuid4().hex)
    with server.client() as c:
        assert station.enroll(c, server.token(org="/stations")).status_code == 201
        token = server.token(org="/agentless-r", uses=5)
        mid = uuid.uuid4().hex
        body, headers = signed_enroll(station, token, "r1", mid)
        target_id = c.post("/api/v1/enroll/agentless", content=body, headers=headers).json()["host_id"]
        target = Agent("r1", machine_id=mid)
        target.host_id, target.key = target_id, station.key
        assert target.submit(c, ssh_report(target, station, "r1", mid)).status_code == 200
        with server.login() as admin:
            assert admin.post("/api/v1/hosts/%s/retire" % station.host_id,
                              json={"reason": "station key lost"}).status_code == 200
        r = target.submit(c, ssh_report(target, station, "r1", mid))
        assert r.status_code == 403 and r.json()["error"] == "station_retired", r.text
        body, headers = signed_enroll(station, token, "r2", uuid.uuid4().hex)
        r = c.post("/api/v1/enroll/agentless", content=body, headers=headers)
        assert r.status_code == 403 and r.json()["error"] in ("host_retired", "station_retired"), r.text
