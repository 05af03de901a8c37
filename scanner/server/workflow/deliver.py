"""Delivery of queued alert events (``alert_outbox``) to their channels, with retries and backoff.

Channels:
  webhook  POST of the event as JSON. Headers: X-Xcscan-Event (the event id, for the receiver to drop
           repeats), X-Xcscan-Timestamp (unix seconds) and X-Xcscan-Signature: sha256=HEX, the HMAC-SHA256
           with the channel's secret over "TIMESTAMP.BODY" (receivers reject stale timestamps and bad MACs).
           config: {"url": "https://…", "ca_file": optional PEM to verify the receiver, "timeout": s}
  syslog   RFC 5424 message whose MSG is an ArcSight CEF:0 record, over UDP (one datagram), TCP (RFC 6587
           octet counting) or TLS. config: {"address": "udp://host:514" | "tcp://host:601" | "tls://host:6514",
           "ca_file": for tls, "hostname": the HOSTNAME field}
  email    plain-text mail through an SMTP relay. config: {"smtp": "host:port", "from": addr, "to": [addr, …],
           "starttls": bool, "username"/"password": optional}

An event leaves the outbox only when its channel took it (2xx, a sent datagram or stream, a 250 from
SMTP); a failure is retried after 30 s, 1 min, 2 min … up to an hour, and the last error is kept. A row is
claimed before sending (next attempt moved ahead in one UPDATE), so two server processes never send it twice.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import socket
import ssl
import time
import urllib.parse
import urllib.request

from sqlalchemy import select, update

from scanner.server.errors import bad_request
from scanner.server.store import db
from scanner.server.util import now

CLAIM_SECONDS = 120
MAX_BACKOFF = 3600
SEVERITY_CEF = {"info": 1, "low": 3, "medium": 5, "high": 8, "critical": 10}


def check_config(kind, config):
    if not isinstance(config, dict):
        raise bad_request("bad_channel", "channel settings must be an object")
    for key in ("url", "address", "smtp", "from", "ca_file", "hostname", "username", "password"):
        if key in config and not isinstance(config[key], str):
            raise bad_request("bad_channel", "%s must be a string" % key)
    if "timeout" in config and (isinstance(config["timeout"], bool) or not isinstance(config["timeout"], (int, float))
                                or not 0 < config["timeout"] <= 120):
        raise bad_request("bad_channel", "timeout must be seconds from 1 to 120")
    if kind == "webhook":
        url = config.get("url") or ""
        if not url.startswith(("https://", "http://")) or not _host_port(url, 443)[0]:
            raise bad_request("bad_channel", "a webhook needs url: https://…")
    elif kind == "syslog":
        host, port = _host_port(config.get("address") or "", None)
        if urllib.parse.urlsplit(config.get("address") or "").scheme not in ("udp", "tcp", "tls") or not host or not port:
            raise bad_request("bad_channel", "syslog address must be udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT")
    elif kind == "email":
        to = config.get("to")
        to = [to] if isinstance(to, str) else to
        host, _, port = (config.get("smtp") or "").rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536 or not config.get("from") or not to \
                or not isinstance(to, list) or not all(isinstance(a, str) and a for a in to):
            raise bad_request("bad_channel", "e-mail needs smtp HOST:PORT, from and to")


def _host_port(url, default):
    """(host, port) of a URL, (None, None) when it has no usable ones."""
    try:
        parts = urllib.parse.urlsplit(url)
        return parts.hostname, parts.port or default
    except ValueError:   # a port out of range or not a number
        return None, None


def sign(secret, timestamp, body):
    return "sha256=" + hmac.new((secret or "").encode(), str(timestamp).encode() + b"." + body,
                                hashlib.sha256).hexdigest()


def _text(event, lang="en"):
    d = event.get("details") or {}
    title = (d.get("title") or {}).get(lang) or (d.get("title") or {}).get("en") or d.get("rule_id") or ""
    what = {"new_failure": "%s fails %s (%s)" % (d.get("hostname"), d.get("rule_id"), title),
            "host_silent": "%s has not reported since %s" % (d.get("hostname"), d.get("last_seen")),
            "failing_hosts": "%s fails on %s hosts (threshold %s)" % (d.get("rule_id"), d.get("hosts"),
                                                                        d.get("threshold")),
            "localization_drop": "localization rate of %s fell from %s to %s (%s points)" % (
                d.get("org"), _pct(d.get("was")), _pct(d.get("rate")), d.get("drop_points")),
            "waiver_expiring": "waiver %s for %s (%s %s) expires in %s days" % (
                d.get("waiver_id"), d.get("rule_id"), d.get("scope"), d.get("hostname") or d.get("org"), d.get("days_left")),
            "report_refusals": "%s reports refused in %s minutes (threshold %s): %s" % (
                d.get("refused"), d.get("minutes"), d.get("threshold"),
                ", ".join("%s %s" % kv for kv in sorted((d.get("by_code") or {}).items())))}.get(event["type"], event["type"])
    if event["state"] == "resolved" and not d.get("rule_id") and not d.get("hostname") and not d.get("org"):
        what = "%s no longer holds" % d.get("key")
    if event["state"] == "summary":
        what = "%s more changes not sent one by one (%s firing, %s resolved; more than %s at once); %s firing now" % (
            d.get("not_sent"), d.get("firing"), d.get("resolved"), d.get("max_events"), d.get("firing_now"))
    return "[%s] %s: %s" % (event["state"], event["rule"], what)


def _pct(rate):
    return "%.1f%%" % (rate * 100) if isinstance(rate, (int, float)) else "-"


def _cef_escape(value, header=False):
    value = str(value if value is not None else "")
    value = value.replace("\\", "\\\\").replace("\r", " ").replace("\n", " ")
    return value.replace("|", "\\|") if header else value.replace("=", "\\=")


def cef(event, version="1"):
    d = event.get("details") or {}
    ext = {"rt": int(event["at"]) * 1000, "cs1Label": "rule", "cs1": d.get("rule_id") or "", "cs2Label": "org",
           "cs2": event.get("org") or "", "dhost": d.get("hostname") or "", "cs3Label": "state", "cs3": event["state"],
           "externalId": event["event_id"], "request": d.get("link") or ""}
    head = ["CEF:0", "xcscan", "xcscan", version, event["type"], _text(event),
            str(SEVERITY_CEF.get(d.get("severity"), 5))]
    return "|".join(_cef_escape(x, True) for x in head) + "|" + " ".join(
        "%s=%s" % (k, _cef_escape(v)) for k, v in ext.items())


def rfc5424(event, hostname=None):
    # <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG; facility security/authorization (10)
    sev = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}.get((event.get("details") or {}).get("severity"), 4)
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event["at"]))
    return "<%d>1 %s %s xcscan - %s - %s" % (10 * 8 + sev, ts, hostname or socket.gethostname(), event["type"],
                                             cef(event))


def _send_webhook(channel, config, event, body):
    ts = int(time.time())
    req = urllib.request.Request(config["url"], data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Xcscan-Event": event["event_id"], "X-Xcscan-Timestamp": str(ts),
        "X-Xcscan-Signature": sign(channel["secret"], ts, body), "User-Agent": "xcscan-alerts/1"})
    ctx = ssl.create_default_context(cafile=config.get("ca_file")) if config["url"].startswith("https") else None
    with urllib.request.urlopen(req, timeout=float(config.get("timeout", 10)), context=ctx) as resp:
        if not 200 <= resp.status < 300:
            raise OSError("HTTP %d" % resp.status)


def _send_syslog(config, event):
    parts = urllib.parse.urlsplit(config["address"])
    line = rfc5424(event, config.get("hostname")).encode("utf-8")
    if parts.scheme == "udp":
        with socket.socket(socket.AF_INET6 if ":" in parts.hostname else socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(line, (parts.hostname, parts.port))
        return
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    try:
        if parts.scheme == "tls":
            sock = ssl.create_default_context(cafile=config.get("ca_file")).wrap_socket(
                sock, server_hostname=parts.hostname)
        sock.sendall(b"%d %s" % (len(line), line))   # RFC 6587 octet counting
    finally:
        sock.close()


def _send_email(config, event):
    import smtplib
    from email.message import EmailMessage
    host, _, port = config["smtp"].rpartition(":")
    msg = EmailMessage()
    msg["Subject"] = "xcscan: " + _text(event)[:180]
    msg["From"] = config["from"]
    msg["To"] = ", ".join(config["to"] if isinstance(config["to"], list) else [config["to"]])
    msg["Message-ID"] = "<%s@xcscan>" % event["event_id"]
    d = event.get("details") or {}
    msg.set_content("%s\n\n%s\n" % (_text(event, "zh"), json.dumps(d, ensure_ascii=False, indent=1)))
    with smtplib.SMTP(host, int(port), timeout=15) as smtp:
        if config.get("starttls"):
            smtp.starttls(context=ssl.create_default_context(cafile=config.get("ca_file")))
        if config.get("username"):
            smtp.login(config["username"], config.get("password") or "")
        smtp.send_message(msg)


def send(channel, event):
    config = json.loads(channel["config"])
    body = json.dumps(event, ensure_ascii=False, sort_keys=True).encode("utf-8")
    if channel["kind"] == "webhook":
        _send_webhook(channel, config, event, body)
    elif channel["kind"] == "syslog":
        _send_syslog(config, event)
    elif channel["kind"] == "email":
        _send_email(config, event)
    else:
        raise ValueError("unknown channel kind %r" % channel["kind"])


def deliver(engine, limit=500, t=None):
    """Send what is due; return (sent, failed)."""
    t = int(t or now())
    o = db.alert_outbox
    with engine.connect() as conn:
        due = [dict(x) for x in conn.execute(
            select(o.c.id, o.c.channel_id, o.c.event, o.c.attempts).where(o.c.delivered_at.is_(None),
                                                                          o.c.next_attempt_at <= t)
            .order_by(o.c.id).limit(limit)).mappings()]
        channels = {c["id"]: dict(c) for c in conn.execute(select(db.alert_channels)).mappings()}
    sent = failed = 0
    for row in due:
        with db.write_tx(engine) as conn:   # claim: nobody else sends it meanwhile
            claimed = conn.execute(update(o).where(o.c.id == row["id"], o.c.delivered_at.is_(None),
                                                   o.c.next_attempt_at <= t)
                                   .values(next_attempt_at=t + CLAIM_SECONDS)).rowcount
        if not claimed:
            continue
        try:
            send(channels[row["channel_id"]], json.loads(row["event"]))
        except Exception as exc:  # noqa: BLE001 - any failure is retried later; kept as last_error
            backoff = min(MAX_BACKOFF, 30 * 2 ** row["attempts"])
            with db.write_tx(engine) as conn:
                conn.execute(update(o).where(o.c.id == row["id"]).values(
                    attempts=row["attempts"] + 1, next_attempt_at=int(now()) + backoff,
                    last_error=("%s: %s" % (type(exc).__name__, exc))[:500]))
            failed += 1
            continue
        with db.write_tx(engine) as conn:
            conn.execute(update(o).where(o.c.id == row["id"]).values(delivered_at=int(now()),
                                                                       attempts=row["attempts"] + 1))
        sent += 1
    return sent, failed


def test_event(channel_name):
    import uuid
    return {"event_id": str(uuid.uuid4()), "type": "test", "state": "firing", "rule": "test",
            "at": int(now()), "org": "/", "details": {"severity": "info", "rule_id": "test",
                                                      "hostname": socket.gethostname(), "link": "/"}}
