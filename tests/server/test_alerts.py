"""Alerts end to end on a real aggregator (SQLite): reports submitted over TLS, rules and channels made with
the CLI, events delivered to real receivers on loopback — an HTTP server that checks the HMAC and is taken
down and brought back, a syslog socket that parses RFC 5424 and CEF, and an SMTP server (aiosmtpd)."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fleet import Agent
from server_support import ADMIN, Server, free_port


class Hook(object):
    """A webhook receiver that verifies X-Xcscan-Signature and records events by id."""

    def __init__(self, secret, port=None):
        self.secret, self.port, self.events, self.bad = secret, port or free_port(), {}, 0
        self.server = None

    def up(self):
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ts = self.headers["X-Xcscan-Timestamp"]
                want = "sha256=" + hmac.new(hook.secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(want, self.headers["X-Xcscan-Signature"]) or abs(time.time() - int(ts)) > 300:
                    hook.bad += 1
                    self.send_response(401)
                else:
                    event = json.loads(body)
                    assert event["event_id"] == self.headers["X-Xcscan-Event"]
                    hook.events.setdefault(event["event_id"], []).append(event)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def down(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fleet(tmp_path):
    srv = Server(tmp_path / "srv", None, "sqlite")
    srv.cli("server", "init", env={"XCSCAN_ADMIN_PASSWORD": ADMIN[1]})
    srv.start()
    agents = {}
    with srv.client() as c:
        for name, org in (("fin-db", "/gov/finance"), ("hea-app", "/gov/health")):
            a = Agent("%s-%s" % (name, uuid.uuid4().hex[:4]), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, srv.token(org=org)).status_code == 201
            agents[name] = a
    yield srv, agents, c
    srv.stop()


def submit(srv, agent, fail_rules):
    with srv.client() as c:
        doc = agent.report(fail_rules=fail_rules)
        for r in doc["results"]:   # only the named failures are critical, and only they fail
            if r["rule_id"] in fail_rules:
                r["severity"] = "critical"
            elif r["status"] == "fail":
                r["status"], r["severity"] = "pass", "medium"
        assert agent.submit(c, doc).status_code == 200


def test_webhook_alerts_once_per_state_change_and_survive_a_receiver_outage(fleet, tmp_path):
    from scanner.server.workflow import alerts, deliver
    srv, agents, _ = fleet
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cret-" + uuid.uuid4().hex + "\n")
    hook = Hook(secret_file.read_text().strip()).up()
    srv.cli("server", "alerts", "channel", "soc", "--webhook", "http://127.0.0.1:%d/hook" % hook.port,
            "--secret-file", str(secret_file))
    srv.cli("server", "alerts", "rule", "finance-critical", "--kind", "new_failure", "--severity", "critical",
            "--org", "/gov/finance", "--channel", "soc")
    submit(srv, agents["fin-db"], ["mlps.ia.ssh-root-login"])
    submit(srv, agents["hea-app"], ["mlps.ia.ssh-root-login"])      # outside the rule's subtree
    res = srv.cli("server", "alerts", "run")
    assert "queued 1, sent 1, failed 0" in res.stderr, res.stderr
    (event,) = [e[0] for e in hook.events.values()]
    assert event["state"] == "firing" and event["details"]["rule_id"] == "mlps.ia.ssh-root-login"
    assert event["details"]["host_id"] == agents["fin-db"].host_id and event["details"]["link"].startswith("/hosts/")

    submit(srv, agents["fin-db"], ["mlps.ia.ssh-root-login"])       # the same failure again: no new alert
    assert "queued 0" in srv.cli("server", "alerts", "run").stderr

    hook.down()                                                     # the receiver goes away ...
    submit(srv, agents["fin-db"], [])                               # ... while the failure is fixed
    res = srv.cli("server", "alerts", "run")
    assert "queued 1, sent 0, failed 1" in res.stderr, res.stderr
    hook = Hook(hook.secret, hook.port).up()                        # back on the same port
    assert deliver.deliver(srv.engine) == (0, 0)                    # not due yet: backoff
    assert deliver.deliver(srv.engine, t=int(time.time()) + 3600) == (1, 0)
    assert deliver.deliver(srv.engine, t=int(time.time()) + 7200) == (0, 0)   # nothing twice
    (resolved,) = [e[0] for e in hook.events.values()]
    assert resolved["state"] == "resolved" and resolved["details"]["key"].endswith("|mlps.ia.ssh-root-login")
    assert hook.bad == 0 and all(len(v) == 1 for v in hook.events.values())
    hook.down()
    assert alerts.evaluate(srv.engine) == 0


def test_syslog_cef_and_smtp_receivers(fleet, tmp_path):
    from aiosmtpd.controller import Controller
    srv, agents, _ = fleet
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(5)

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
        srv.cli("server", "alerts", "channel", "siem", "--syslog", "udp://127.0.0.1:%d" % udp.getsockname()[1])
        srv.cli("server", "alerts", "channel", "mail", "--smtp", "127.0.0.1:%d" % smtp.port, "--mail-from",
                "xcscan@gov.example", "--mail-to", "soc@gov.example")
        srv.cli("server", "alerts", "rule", "silent", "--kind", "host_silent", "--days", "0.00001",
                "--channel", "siem")
        srv.cli("server", "alerts", "rule", "widespread", "--kind", "failing_hosts", "--hosts", "1",
                "--channel", "mail")
        submit(srv, agents["fin-db"], ["mlps.ia.faillock"])
        submit(srv, agents["hea-app"], ["mlps.ia.faillock"])
        time.sleep(2)
        res = srv.cli("server", "alerts", "run")
        assert "queued 3, sent 3" in res.stderr, res.stderr     # two silent hosts, one widespread rule
        lines = [udp.recv(65536).decode() for _ in range(2)]
        for line in lines:
            m = re.match(r"^<(\d+)>1 (\S+Z) (\S+) xcscan - host_silent - (CEF:0\|xcscan\|xcscan\|[^|]*\|host_silent\|"
                         r"[^|]*\|(\d+)\|.*)$", line)
            assert m, line
            assert int(m.group(1)) // 8 == 10                   # facility security/authorization
            ext = dict(re.findall(r"(\w+)=((?:\\=|[^=])*?)(?= \w+=|$)", m.group(4).split("|", 7)[7]))
            assert ext["cs3"] == "firing" and ext["dhost"] in {a.hostname for a in agents.values()}
        assert len(box.mail) == 1
        text = box.mail[0].content.decode("utf-8", "replace")
        assert "mlps.ia.faillock" in text and box.mail[0].rcpt_tos == ["soc@gov.example"]
        res = srv.cli("server", "alerts", "test", "siem")
        assert res.returncode == 0 and "CEF:0" in udp.recv(65536).decode()
    finally:
        smtp.stop()
        udp.close()


def test_bad_channel_and_rule_settings_are_clear_errors(fleet):
    srv, _, _ = fleet
    res = srv.cli("server", "alerts", "channel", "x", "--syslog", "udp://nohost", check=False)
    assert res.returncode == 1 and "udp://HOST:PORT" in res.stderr
    res = srv.cli("server", "alerts", "rule", "r", "--kind", "new_failure", "--channel", "missing", check=False)
    assert res.returncode == 1 and "no channel" in res.stderr
