"""Alert rules for a localization-rate drop, waivers about to expire and bursts of refused (forged) reports, end to
end on a real aggregator: signed reports over TLS (some collected days ago, so the roll-ups have a past to
compare with), forged ones refused by intake, waivers through the workflow, rules made with the CLI, and the
events delivered to real receivers on loopback (an HMAC-checking HTTP server, an SMTP server, a syslog socket)."""
from __future__ import annotations

import base64
import re
import socket
import time
import uuid

import pytest

from fleet import Agent
from server_support import ADMIN, Server, free_port
from test_alerts import Hook

DAY = 86400


def make_fleet(tmp_path, pg=None):
    srv = Server(tmp_path / "srv", pg, "postgres" if pg else "sqlite")
    srv.cli("server", "init", env={"XCSCAN_ADMIN_PASSWORD": ADMIN[1]})
    srv.start()
    agents = {}
    with srv.client() as c:
        for name, org in (("tax-db", "/gov/finance/tax"), ("fin-app", "/gov/finance"), ("hea-app", "/gov/health")):
            a = Agent("%s-%s" % (name, uuid.uuid4().hex[:4]), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, srv.token(org=org)).status_code == 201
            agents[name] = a
    return srv, agents


@pytest.fixture
def fleet(tmp_path):
    srv, agents = make_fleet(tmp_path)
    yield srv, agents
    srv.stop()


def report(srv, agent, domestic, at=None):
    """A report whose components are all domestic (1.0) or all foreign (0.0), collected at ``at``."""
    with srv.client() as c:
        doc = agent.report(domestic_bias=domestic, collected_at=at)
        resp = agent.submit(c, doc, timestamp=at)
        assert resp.status_code == 200, resp.text
        return doc["inventory"]["localization"]["rate"]


def run(srv):
    res = srv.cli("server", "alerts", "run")
    m = re.search(r"queued (\d+), sent (\d+), failed (\d+)", res.stderr)
    assert m, res.stderr
    return tuple(int(x) for x in m.groups())


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_localization_drop_per_subtree_and_per_unit(kind, tmp_path, request):
    pg = request.getfixturevalue("pg_url_fresh") if kind == "postgres" else None
    srv, agents = make_fleet(tmp_path, pg)
    try:
        secret_file = tmp_path / "secret"
        secret_file.write_text("s3cret-" + uuid.uuid4().hex + "\n")
        hook = Hook(secret_file.read_text().strip()).up()
        srv.cli("server", "alerts", "channel", "soc", "--webhook", "http://127.0.0.1:%d/hook" % hook.port,
                "--secret-file", str(secret_file))
        srv.cli("server", "alerts", "rule", "finance-loc", "--kind", "localization_drop", "--org", "/gov/finance",
                "--points", "20", "--days", "7", "--channel", "soc")
        srv.cli("server", "alerts", "rule", "units-loc", "--kind", "localization_drop", "--by", "unit",
                "--points", "20", "--channel", "soc")
        ten_days_ago = int(time.time()) - 10 * DAY
        for a in agents.values():          # ten days ago every host was fully domestic
            assert report(srv, a, 1.0, at=ten_days_ago) == 1.0
        assert run(srv) == (0, 0, 0)       # no report since: nothing dropped
        assert report(srv, agents["tax-db"], 0.0) == 0.0     # the tax office moved to foreign products
        assert report(srv, agents["fin-app"], 1.0) == 1.0
        assert report(srv, agents["hea-app"], 1.0) == 1.0
        assert run(srv) == (2, 2, 0)
        events = sorted((e[0] for e in hook.events.values()), key=lambda e: e["rule"])
        assert [(e["rule"], e["state"], e["org"]) for e in events] == [
            ("finance-loc", "firing", "/gov/finance"), ("units-loc", "firing", "/gov/finance/tax")]
        subtree = events[0]["details"]
        assert subtree["was"] == 1.0 and subtree["rate"] == 0.5 and subtree["drop_points"] == 50.0
        assert events[1]["details"]["rate"] == 0.0 and events[1]["details"]["link"] == "/?org=%2Fgov%2Ffinance%2Ftax"
        assert report(srv, agents["tax-db"], 0.0) == 0.0     # the same state reported again: said once
        assert run(srv) == (0, 0, 0)
        hook.events.clear()
        assert report(srv, agents["tax-db"], 1.0) == 1.0     # back to domestic
        assert run(srv) == (2, 2, 0)
        assert sorted(e[0]["state"] for e in hook.events.values()) == ["resolved", "resolved"]
        assert hook.bad == 0
        hook.down()
    finally:
        srv.stop()


def test_waivers_expiring_within_days_by_mail(fleet):
    from aiosmtpd.controller import Controller
    from scanner.server.store.scope import Scope
    from scanner.server.workflow import waivers
    srv, agents = fleet

    class Box(object):
        def __init__(self):
            self.mail = []

        async def handle_DATA(self, server, session, envelope):
            self.mail.append(envelope)
            return "250 OK"
    box = Box()
    smtp = Controller(box, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        srv.cli("server", "alerts", "channel", "mail", "--smtp", "127.0.0.1:%d" % smtp.port, "--mail-from",
                "xcscan@gov.example", "--mail-to", "waivers@gov.example")
        srv.cli("server", "alerts", "rule", "finance-waivers", "--kind", "waiver_expiring", "--days", "14",
                "--org", "/gov/finance", "--channel", "mail")
        everything, now = Scope.everything(), int(time.time())

        def waive(rule_id, scope, value, days, approve=True):
            w = waivers.request_waiver(srv.engine, {"rule_id": rule_id, "scope": scope, "scope_value": value,
                                                    "justification": "legacy system until migration",
                                                    "expires_at": now + int(days * DAY)},
                                       "officer-a", scope=everything, role="admin", single_step=approve)
            return w["id"]
        soon = waive("mlps.ia.faillock", "org", "/gov/finance/tax", 3)
        fleetwide = waive("mlps.ia.password-max-age", "all", None, 5)              # applies here too
        host = waive("mlps.ia.ssh-root-login", "host", agents["fin-app"].host_id, 10)
        waive("mlps.ia.faillock", "org", "/gov/finance", 60)                       # not within 14 days
        waive("mlps.ia.faillock", "org", "/gov/health", 2)                         # another department
        waive("mlps.ia.umask", "org", "/gov/finance", 2, approve=False)            # requested, not approved
        assert run(srv) == (3, 3, 0)
        texts = {m.content.decode("utf-8", "replace") for m in box.mail}
        assert all(m.rcpt_tos == ["waivers@gov.example"] for m in box.mail)
        for wid, rule in ((soon, "mlps.ia.faillock"), (fleetwide, "mlps.ia.password-max-age"),
                          (host, "mlps.ia.ssh-root-login")):
            (text,) = [t for t in texts if "waiver %d for %s" % (wid, rule) in t]
            assert "expires in" in text and '"waiver_id": %d' % wid in text
        assert any(agents["fin-app"].hostname in t for t in texts)
        assert run(srv) == (0, 0, 0)       # said once
        waivers.revoke_waiver(srv.engine, soon, "officer-b", scope=everything)
        assert run(srv) == (1, 1, 0)
        assert "[resolved] finance-waivers" in box.mail[-1].content.decode("utf-8", "replace")
    finally:
        smtp.stop()


def test_a_burst_of_forged_reports_to_syslog(fleet):
    from scanner.server.workflow import alerts, deliver
    srv, agents = fleet
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(5)
    try:
        srv.cli("server", "alerts", "channel", "siem", "--syslog", "udp://127.0.0.1:%d" % udp.getsockname()[1])
        srv.cli("server", "alerts", "rule", "forged", "--kind", "report_refusals", "--count", "5", "--minutes", "10",
                "--code", "bad_signature", "--channel", "siem")
        victim = agents["tax-db"]
        forged_sig = base64.b64encode(b"\x01" * 64).decode()

        def forge(n):
            with srv.client() as c:
                for _ in range(n):
                    resp = victim.submit(c, victim.report(), headers={"X-Xcscan-Signature": forged_sig})
                    assert resp.status_code == 401 and resp.json()["error"] == "bad_signature"

        def unknown_host(n):
            with srv.client() as c:
                for _ in range(n):
                    stranger = Agent("stranger")
                    stranger.host_id = str(uuid.uuid4())
                    assert stranger.submit(c, stranger.report()).json()["error"] == "unknown_host"
        forge(4)
        unknown_host(3)                    # refused too, but not a code this rule counts
        assert run(srv) == (0, 0, 0)
        forge(2)
        assert run(srv) == (1, 1, 0)
        line = udp.recv(65536).decode()
        m = re.match(r"^<(\d+)>1 \S+Z \S+ xcscan - report_refusals - CEF:0\|xcscan\|xcscan\|[^|]*\|report_refusals\|"
                     r"([^|]*)\|(\d+)\|(.*)$", line)
        assert m, line
        assert int(m.group(1)) // 8 == 10 and m.group(3) == "8"        # security/authorization, high
        assert "6 reports refused in 10 minutes" in m.group(2) and "bad_signature 6" in m.group(2)
        assert "cs3=firing" in m.group(4)
        forge(1)
        assert run(srv) == (0, 0, 0)       # still the same burst
        later = int(time.time()) + 11 * 60  # the window has passed
        assert alerts.evaluate(srv.engine, t=later) == 1
        assert deliver.deliver(srv.engine, t=later) == (1, 0)
        assert "cs3=resolved" in udp.recv(65536).decode()
    finally:
        udp.close()


def test_rule_settings_are_checked(fleet):
    srv, _ = fleet
    srv.cli("server", "alerts", "channel", "siem", "--syslog", "udp://127.0.0.1:%d" % free_port())
    for args, words in ((["--kind", "report_refusals", "--org", "/gov/finance"], "whole fleet"),
                        (["--kind", "localization_drop", "--points", "0"], "points must be"),
                        (["--kind", "localization_drop", "--days", "2.5"], "days must be a whole number"),
                        (["--kind", "waiver_expiring", "--days", "400"], "days must be"),
                        (["--kind", "waiver_expiring", "--points", "3"], "waiver_expiring takes days")):
        res = srv.cli("server", "alerts", "rule", "r", "--channel", "siem", *args, check=False)
        assert res.returncode == 1 and words in res.stderr, (args, res.stderr)


def test_a_storm_is_capped_with_one_summary(fleet):
    """Three hosts start failing a critical rule at once; the rule sends two events one by one and one summary,
    remembers all three, and says nothing more while the state stays."""
    srv, agents = fleet
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(5)
    try:
        srv.cli("server", "alerts", "channel", "siem", "--syslog", "udp://127.0.0.1:%d" % udp.getsockname()[1])
        srv.cli("server", "alerts", "rule", "capped", "--kind", "new_failure", "--severity", "critical",
                "--max-events", "2", "--channel", "siem")
        with srv.client() as c:
            for a in agents.values():
                doc = a.report(fail_rules=["mlps.ia.ssh-root-login"])
                for r in doc["results"]:
                    if r["rule_id"] == "mlps.ia.ssh-root-login":
                        r["severity"] = "critical"
                    elif r["status"] == "fail":
                        r["status"], r["severity"] = "pass", "medium"
                assert a.submit(c, doc).status_code == 200
        assert run(srv) == (3, 3, 0)
        lines = [udp.recv(65536).decode() for _ in range(3)]
        states = sorted(re.search(r"cs3=(\w+)", line).group(1) for line in lines)
        assert states == ["firing", "firing", "summary"]
        (summary,) = [line for line in lines if "cs3=summary" in line]
        assert "1 more changes not sent one by one (1 firing, 0 resolved; more than 2 at once); 3 firing now" in summary
        assert run(srv) == (0, 0, 0)
    finally:
        udp.close()
    res = srv.cli("server", "alerts", "rule", "zero", "--kind", "host_silent", "--max-events", "0", "--channel", "siem",
                  check=False)
    assert res.returncode == 1 and "max_events must be" in res.stderr
