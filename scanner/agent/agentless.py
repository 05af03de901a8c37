"""A scanning station submits reports for hosts without an agent: `xcscan agent submit REPORT.json`.

The station is an enrolled agent. A report it collected over SSH (`xcscan scan --ssh`) is for another
host; the first time, the station enrolls that host as "agentless" under itself (POST
/api/v1/enroll/agentless with an enrollment token for the host's org unit, the request signed with the
station's key over its own host id, a timestamp and the body, with the context
``xcscan-agentless-enroll/1``, so it can never pass for a report signature). The aggregator binds the
new host id to the host's machine id and to the station; from then on the station signs that host's
reports with its own key under the host's id, spools and uploads them like its own. The mapping
machine id -> host id is kept in the state directory (agentless.json); losing it is harmless: the same
request again returns the same host id and uses no token.

Python 3.7 compatible; standard library plus the agent's key code.
"""
from __future__ import absolute_import

import base64
import json
import os
import time

from scanner.errors import XcscanError

STATE_NAME = "agentless.json"
ENROLL_CONTEXT = b"xcscan-agentless-enroll/1\n"
MAX_REPORT = 64 * 1024 * 1024


class AgentlessError(XcscanError):
    pass


def _load_state(state_dir):
    try:
        with open(os.path.join(state_dir, STATE_NAME), encoding="utf-8") as fh:
            doc = json.load(fh)
    except (IOError, OSError, ValueError):
        return {"hosts": {}}
    if not isinstance(doc, dict) or not isinstance(doc.get("hosts"), dict):
        return {"hosts": {}}
    return doc


def _save_state(state_dir, doc):
    path = os.path.join(state_dir, STATE_NAME)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_ssh_report(path):
    """The report document at ``path``, which must be one collected over SSH for another host."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_REPORT + 1)
    except (IOError, OSError) as exc:
        raise AgentlessError("cannot read the report: %s" % (exc.strerror or exc), path=path)
    if len(raw) > MAX_REPORT:
        raise AgentlessError("the report is larger than %d bytes" % MAX_REPORT, path=path)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise AgentlessError("the report is not JSON", path=path,
                             hint="write it with `xcscan scan --ssh ... --format json -o FILE`")
    if not isinstance(doc, dict) or doc.get("schema") != "xcscan.report/1" or not isinstance(doc.get("report_id"), str):
        raise AgentlessError("not an xcscan.report/1 document", path=path)
    collection = doc.get("collection")
    if not isinstance(collection, dict) or collection.get("method") != "ssh":
        raise AgentlessError("the report was not collected over SSH; a station submits only agentless scans "
                             "(`xcscan scan --ssh`) — this host's own reports go through `xcscan agent run`",
                             path=path)
    host = doc.get("host") if isinstance(doc.get("host"), dict) else {}
    if not isinstance(host.get("machine_id"), str) or not host["machine_id"].strip():
        raise AgentlessError("the report has no host.machine_id, which binds it to the enrolled host", path=path,
                             hint="the target's /etc/machine-id was not readable; scan it with --ssh-sudo")
    if not isinstance(host.get("hostname"), str) or not host["hostname"].strip():
        raise AgentlessError("the report has no host.hostname", path=path)
    return doc


def _enroll(cfg, client, seed, token, hostname, machine_id):
    from scanner.agent import keys
    body = json.dumps({"token": token, "hostname": hostname, "machine_id": machine_id},
                      sort_keys=True).encode("utf-8")
    timestamp = str(int(time.time()))
    message = ENROLL_CONTEXT + cfg.host_id.encode("ascii") + b"\n" + timestamp.encode("ascii") + b"\n" + body
    signature = base64.b64encode(keys.sign(seed, message)).decode("ascii")
    resp = client.request("POST", "/api/v1/enroll/agentless", body=body, headers={
        "Content-Type": "application/json", "X-Xcscan-Host": cfg.host_id, "X-Xcscan-Timestamp": timestamp,
        "X-Xcscan-Signature": signature})
    if resp.status != 201 or not isinstance(resp.json, dict) or not isinstance(resp.json.get("host_id"), str):
        raise AgentlessError("the aggregator refused to enroll %s as an agentless host of this station: HTTP %d %s: %s"
                             % (hostname, resp.status, resp.error_code or "", resp.message))
    return resp.json


def submit(cfg, report_path, token=None, log=None, sleep=time.sleep):
    """Enroll the report's host under this station if needed, sign, spool and upload; return a summary."""
    from scanner.agent import keys
    from scanner.agent.client import TransportError, TrustError
    from scanner.agent.lock import RunLock
    from scanner.agent.runner import encode_report, make_client
    from scanner.agent.spool import Spool
    from scanner.agent.uploader import upload_all
    from scanner.agent.log import AgentLog
    if not cfg.host_id:
        raise AgentlessError("this host is not enrolled; a scanning station must be an enrolled agent",
                             hint="xcscan agent enroll --server URL --token T --ca ca.pem")
    doc = read_ssh_report(report_path)
    machine_id, hostname = doc["host"]["machine_id"].strip(), doc["host"]["hostname"].strip()
    seed = keys.load_key(cfg.key_path)
    log = log or AgentLog(use_syslog=False, quiet=True)
    spool = Spool(cfg.spool_path, max_bytes=cfg.spool_max_bytes, max_reports=cfg.spool_max_reports)
    spool.ensure()
    client = make_client(cfg)
    enrolled = None
    with RunLock(os.path.join(cfg.state_path, "agent.lock")):
        state = _load_state(cfg.state_path)
        known = state["hosts"].get(machine_id)
        if not isinstance(known, dict) or not isinstance(known.get("host_id"), str):
            if not token:
                raise AgentlessError("%s (machine id %s) is not enrolled under this station yet" % (hostname, machine_id),
                                     hint="give --token with an enrollment token for its org unit "
                                          "(xcscan server token create --org PATH)")
            try:
                enrolled = _enroll(cfg, client, seed, token, hostname, machine_id)
            except (TransportError, TrustError) as exc:
                raise AgentlessError("cannot reach the aggregator to enroll %s: %s" % (hostname, exc))
            known = {"host_id": enrolled["host_id"], "hostname": hostname, "org": enrolled.get("org"),
                     "enrolled_at": int(time.time())}
            state["hosts"][machine_id] = known
            _save_state(cfg.state_path, state)
        body = encode_report(doc)
        timestamp = int(time.time())
        signature = keys.sign_report(seed, known["host_id"], timestamp, body)
        spool.write(doc["report_id"], known["host_id"], timestamp, signature, body)
        result = upload_all(spool, client, cfg.host_id, log, retries=cfg.retries, backoff=cfg.backoff,
                            backoff_max=cfg.backoff_max, compress=cfg.gzip, sleep=sleep)
    return {"host_id": known["host_id"], "hostname": hostname, "enrolled": enrolled is not None,
            "report_id": doc["report_id"], "delivered": doc["report_id"] in result.sent,
            "rejected": [r for r in result.rejected if r[0] == doc["report_id"]],
            "problem": result.fatal or result.deferred}
