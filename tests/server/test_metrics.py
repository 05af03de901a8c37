"""Prometheus /metrics on a real aggregator (Uvicorn over TLS): off by default, a bearer token or an
allow-list, counters that follow real submissions (accepted, refused by reason), fleet gauges; the text
is read back with prometheus_client's own parser."""
from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleet import Agent
from server_support import ADMIN, Server

TOKEN = "scrape-" + uuid.uuid4().hex


def samples(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metrics_server(tmp_path, **settings):
    srv = Server(tmp_path / "srv", None, "sqlite")
    srv.cli("server", "init", env={"XCSCAN_ADMIN_PASSWORD": ADMIN[1]})
    cfg = os.path.join(srv.data_dir, "server.json")
    doc = json.load(open(cfg))
    doc.update(settings)
    json.dump(doc, open(cfg, "w"))
    return srv.start()


def test_metrics_are_off_unless_configured(server):
    with server.client() as c:
        assert c.get("/metrics").status_code == 404
        assert c.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 404


def test_token_protected_metrics_follow_intake_and_the_fleet(tmp_path):
    srv = metrics_server(tmp_path, metrics_token=TOKEN)
    try:
        with srv.client() as c:
            assert c.get("/metrics").status_code == 401
            assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
            good, quiet = Agent("m-good", machine_id=uuid.uuid4().hex), Agent("m-quiet", machine_id=uuid.uuid4().hex)
            assert good.enroll(c, srv.token(org="/gov/finance/tax")).status_code == 201
            assert quiet.enroll(c, srv.token(org="/health")).status_code == 201
            assert good.submit(c, good.report(domestic_bias=1.0)).status_code == 200
            forged = good.report()
            h = good.headers(json.dumps(forged).encode())
            h["X-Xcscan-Signature"] = h["X-Xcscan-Signature"][::-1]
            assert c.post("/api/v1/reports", content=json.dumps(forged).encode(), headers=h).status_code == 401
            assert good.submit(c, good.report(), timestamp=time.time() - 365 * 86400).status_code == 401
            resp = c.get("/metrics", headers={"Authorization": "Bearer " + TOKEN})
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
        m = samples(resp.text)
        assert m[("xcscan_intake_reports_total", (("outcome", "accepted"),))] == 1
        assert m[("xcscan_intake_reports_total", (("outcome", "refused"),))] == 2
        assert m[("xcscan_intake_refusals_total", (("reason", "bad_signature"),))] == 1
        assert m[("xcscan_intake_refusals_total", (("reason", "stale_timestamp"),))] == 1
        assert m[("xcscan_intake_batch_seconds_count", ())] >= 1
        assert m[("xcscan_hosts", (("state", "reporting"),))] == 1
        assert m[("xcscan_hosts", (("state", "never"),))] == 1
        assert m[("xcscan_org_hosts", (("org", "/gov"),))] == 1
        assert m[("xcscan_org_hosts", (("org", "/health"),))] == 1
        assert 0 < m[("xcscan_org_localization_rate", (("org", "/gov"),))] <= 1
        assert ("xcscan_org_score", (("org", "/gov"), ("profile", "mlps-l3"))) in m
        assert ("xcscan_db_pool_checked_out", ()) in m and ("xcscan_intake_queue_depth", ()) in m
    finally:
        srv.stop()


def test_an_allow_list_admits_scrapers_without_a_token(tmp_path):
    srv = metrics_server(tmp_path, metrics_allow="10.9.0.0/16, 127.0.0.1")
    try:
        with srv.client() as c:
            resp = c.get("/metrics")
        assert resp.status_code == 200
        assert ("xcscan_hosts", (("state", "reporting"),)) in samples(resp.text)
    finally:
        srv.stop()


def test_an_address_outside_the_allow_list_is_refused(tmp_path):
    srv = metrics_server(tmp_path, metrics_allow="10.9.0.0/16")
    try:
        with srv.client() as c:
            assert c.get("/metrics").status_code == 401
    finally:
        srv.stop()


@pytest.mark.parametrize("bad", [{"metrics_token": 5}, {"metrics_allow": ["127.0.0.1"]}])
def test_wrong_setting_types_are_clear_errors(tmp_path, bad):
    srv = Server(tmp_path / "srv", None, "sqlite")
    srv.cli("server", "init", env={"XCSCAN_ADMIN_PASSWORD": ADMIN[1]})
    cfg = os.path.join(srv.data_dir, "server.json")
    doc = json.load(open(cfg))
    doc.update(bad)
    json.dump(doc, open(cfg, "w"))
    res = srv.cli("server", "token", "create", "--org", "/x", check=False)
    assert res.returncode == 1 and list(bad)[0] in res.stderr
