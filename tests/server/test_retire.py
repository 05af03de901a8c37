"""Retiring a host: out of the fleet figures, its reports refused, its history kept; admins only."""
from __future__ import annotations

import re
import uuid

from fleet import Agent
from server_support import OFFICER


def test_retired_host_leaves_the_fleet_and_its_reports_are_refused(server):
    org = "/retire-%s" % uuid.uuid4().hex[:6]
    agents = []
    with server.client() as c:
        for i in range(2):
            a = Agent("ret-%d-%s" % (i, uuid.uuid4().hex[:4]), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=org)).status_code == 201
            assert a.submit(c, a.report(fail_rules=["mlps.ia.faillock"], domestic_bias=0.0 if i else 1.0)).status_code == 200
            agents.append(a)
    gone, stays = agents[1], agents[0]
    with server.login(OFFICER) as off:  # officers cannot retire
        assert off.post("/api/v1/hosts/%s/retire" % gone.host_id, json={"reason": "x"}).status_code == 403
    with server.login() as adm:
        before = adm.get("/api/v1/overview", params={"org": org}).json()
        assert before["hosts"] == 2
        assert adm.post("/api/v1/hosts/%s/retire" % gone.host_id, json={"reason": " "}).status_code == 400
        r = adm.post("/api/v1/hosts/%s/retire" % gone.host_id, json={"reason": "decommissioned <b>2026</b>"})
        assert r.status_code == 200 and r.json()["retired_by"] == "admin"
        assert adm.post("/api/v1/hosts/%s/retire" % gone.host_id, json={"reason": "again"}).status_code == 409
        assert adm.post("/api/v1/hosts/%s/retire" % uuid.uuid4(), json={"reason": "x"}).status_code == 404
        after = adm.get("/api/v1/overview", params={"org": org}).json()
        assert after["hosts"] == 1 and after["localization"]["rate"] == 1.0  # only the domestic host is left
        listed = [h["id"] for h in adm.get("/api/v1/hosts", params={"org": org}).json()]
        assert listed == [stays.host_id]
        assert [h["id"] for h in adm.get("/api/v1/hosts", params={"org": org, "retired": "true"}).json()] == [gone.host_id]
        finding_hosts = {f["host_id"] for f in adm.get("/api/v1/findings", params={"org": org}).json()}
        assert finding_hosts == {stays.host_id}
        detail = adm.get("/api/v1/hosts/%s" % gone.host_id).json()  # history kept
        assert detail["retired_at"] and detail["retire_reason"] == "decommissioned <b>2026</b>"
        assert len(adm.get("/api/v1/hosts/%s/history" % gone.host_id).json()) == 1
        audit = [(e["action"], e["target"]) for e in adm.get("/api/v1/audit", params={"limit": 50}).json()]
        assert ("host.retire", gone.host_id) in audit
    before_rows = server.counts()
    with server.client() as c:
        r = gone.submit(c, gone.report())
        assert r.status_code == 403 and r.json()["error"] == "host_retired"
        assert stays.submit(c, stays.report()).status_code == 200
    assert server.counts()["reports"] == before_rows["reports"] + 1  # only the live host's


def test_admin_retires_a_host_from_its_page(server):
    from test_web import csrf_of, web_login
    a = Agent("ret-web-%s" % uuid.uuid4().hex[:4], machine_id=uuid.uuid4().hex)
    with server.client() as c:
        assert a.enroll(c, server.token(org="/retire-web")).status_code == 201
        assert a.submit(c, a.report()).status_code == 200
    w = web_login(server)
    page = w.get("/hosts/%s" % a.host_id)
    assert 'id="retire-form"' in page.text
    assert w.post("/hosts/%s/retire" % a.host_id, data={"reason": "x"}).status_code == 403  # no CSRF token
    blank = w.post("/hosts/%s/retire" % a.host_id, data={"csrf_token": csrf_of(page), "reason": "  "})
    assert blank.status_code == 400 and 'id="retire-error"' in blank.text and 'id="host-retired"' not in blank.text
    r = w.post("/hosts/%s/retire" % a.host_id, data={"csrf_token": csrf_of(page), "reason": "<i>moved to cloud</i>"})
    assert r.status_code == 303
    page = w.get("/hosts/%s" % a.host_id).text
    banner = re.search(r'<p class="error" id="host-retired">(.*?)</p>', page).group(1)
    assert "&lt;i&gt;moved to cloud&lt;/i&gt;" in banner and 'id="retire-form"' not in page
    assert a.host_id not in w.get("/hosts").text
    w.close()


def test_cli_retires_a_host_and_says_what_went_wrong(server):
    a = Agent("ret-cli-%s" % uuid.uuid4().hex[:4], machine_id=uuid.uuid4().hex)
    with server.client() as c:
        assert a.enroll(c, server.token(org="/retire-cli")).status_code == 201
    out = server.cli("server", "host", "retire", a.host_id, "--reason", "decommissioned 2026-11")
    assert "retired %s" % a.host_id in out.stdout
    again = server.cli("server", "host", "retire", a.host_id, "--reason", "x", check=False)
    assert again.returncode != 0 and "retired already" in again.stderr
    missing = server.cli("server", "host", "retire", str(uuid.uuid4()), "--reason", "x", check=False)
    assert missing.returncode != 0 and "no host" in missing.stderr
    with server.client() as c:
        assert a.submit(c, a.report()).json()["error"] == "host_retired"
