"""Alerts: admin-defined rules over the fleet's stored state, with durable delivery.

A rule watches one org subtree and sends to one channel. Each evaluation compares what is true now with what
the rule has already said (``alert_state``), so a host+rule that starts failing raises ONE alert, however
many reports repeat it, and one "resolved" alert when it stops; the events go into ``alert_outbox`` in the
same transaction, and delivery (scanner/server/workflow/deliver.py) takes them from there with retries, so
a receiver that is down loses nothing.

Rule kinds (params):
  new_failure    severity (minimum, default high): a latest result fails at or above it, not waived
  host_silent    days (default 3): an enrolled, not retired host has not reported for that long
  failing_hosts  hosts (N), optional rule: a rule fails on more than N hosts of the subtree
"""
from __future__ import annotations

import json
import uuid

from sqlalchemy import and_, delete, func, insert, or_, select

from scanner.server.errors import bad_request, not_found
from scanner.server.store import db
from scanner.server.store.audit import audit
from scanner.server.store.scope import Scope
from scanner.server.util import clean_text, normalise_org, now

KINDS = ("new_failure", "host_silent", "failing_hosts")
SEVERITIES = ("info", "low", "medium", "high", "critical")
CHANNEL_KINDS = ("webhook", "syslog", "email")


# --- configuration -----------------------------------------------------------------------------------
def add_channel(engine, name, kind, config, secret=None, actor="cli"):
    name = clean_text(name, 64)
    if not name or kind not in CHANNEL_KINDS:
        raise bad_request("bad_channel", "a channel needs a name and a kind: %s" % ", ".join(CHANNEL_KINDS))
    from scanner.server.workflow.deliver import check_config
    check_config(kind, config)
    with db.write_tx(engine) as conn:
        cid = conn.execute(insert(db.alert_channels).values(
            name=name, kind=kind, config=json.dumps(config), secret=secret, created_at=now())).inserted_primary_key[0]
        audit(conn, actor, "alert.channel.add", name, {"kind": kind})
    return cid


def add_rule(engine, name, kind, params, org, channel, actor="cli", scope=None):
    scope = scope or Scope.everything()
    org_path = normalise_org(org or "/")
    if org_path is None or not scope.covers(org_path):
        raise not_found("no org %s" % org)
    if kind not in KINDS:
        raise bad_request("bad_rule", "kind must be one of %s" % ", ".join(KINDS))
    params = dict(params or {})
    if kind == "new_failure" and params.setdefault("severity", "high") not in SEVERITIES:
        raise bad_request("bad_rule", "severity must be one of %s" % ", ".join(SEVERITIES))
    if kind == "host_silent" and not (isinstance(params.setdefault("days", 3), (int, float)) and params["days"] > 0):
        raise bad_request("bad_rule", "days must be a positive number")
    if kind == "failing_hosts" and not (isinstance(params.setdefault("hosts", 10), int) and params["hosts"] >= 0):
        raise bad_request("bad_rule", "hosts must be a whole number >= 0")
    with db.write_tx(engine) as conn:
        ch = conn.execute(select(db.alert_channels.c.id).where(db.alert_channels.c.name == channel)).first()
        if ch is None:
            raise not_found("no channel %s" % channel)
        rid = conn.execute(insert(db.alert_rules).values(
            name=clean_text(name, 64), kind=kind, params=json.dumps(params), org_path=org_path, channel_id=ch[0],
            enabled=True, created_by=actor, created_at=now())).inserted_primary_key[0]
        audit(conn, actor, "alert.rule.add", name, {"kind": kind, "params": params, "org": org_path})
    return rid


# --- evaluation --------------------------------------------------------------------------------------
def _rank(sev):
    return SEVERITIES.index(sev) if sev in SEVERITIES else -1


def _current(conn, rule, t):
    """{key: event fields} of what the rule sees as true now."""
    params = json.loads(rule["params"])
    h, r = db.hosts, db.results
    in_scope = Scope([rule["org_path"]]).where(h.c.org_path)
    active = and_(h.c.retired_at.is_(None), *([in_scope] if in_scope is not None else []))
    out = {}
    if rule["kind"] == "new_failure":
        sevs = [s for s in SEVERITIES if _rank(s) >= _rank(params.get("severity", "high"))]
        q = (select(h.c.id, h.c.hostname, h.c.org_path, r.c.rule_id, r.c.severity, r.c.title_zh, r.c.title_en,
                    r.c.profile)
             .select_from(r.join(h, h.c.id == r.c.host_id))
             .where(active, r.c.status == "fail", r.c.severity.in_(sevs),
                    or_(r.c.waiver_until.is_(None), r.c.waiver_until <= t)))
        for hid, hostname, org, rule_id, sev, tzh, ten, profile in conn.execute(q):
            out.setdefault("%s|%s" % (hid, rule_id), {
                "host_id": hid, "hostname": hostname, "org": org, "rule_id": rule_id, "severity": sev,
                "title": {"zh": tzh, "en": ten}, "profile": profile,
                "link": "/hosts/%s#%s" % (hid, rule_id)})
    elif rule["kind"] == "host_silent":
        limit = t - int(float(params.get("days", 3)) * 86400)
        q = select(h.c.id, h.c.hostname, h.c.org_path, h.c.last_seen).where(
            active, or_(h.c.last_seen < limit, and_(h.c.last_seen.is_(None), h.c.enrolled_at < limit)))
        for hid, hostname, org, last in conn.execute(q):
            out["%s" % hid] = {"host_id": hid, "hostname": hostname, "org": org, "last_seen": last,
                               "severity": "medium", "link": "/hosts/%s" % hid}
    elif rule["kind"] == "failing_hosts":
        q = (select(r.c.rule_id, func.count(func.distinct(r.c.host_id)))
             .select_from(r.join(h, h.c.id == r.c.host_id))
             .where(active, r.c.status == "fail", or_(r.c.waiver_until.is_(None), r.c.waiver_until <= t))
             .group_by(r.c.rule_id))
        if params.get("rule"):
            q = q.where(r.c.rule_id == params["rule"])
        for rule_id, n in conn.execute(q):
            if n > int(params.get("hosts", 10)):
                out[rule_id] = {"rule_id": rule_id, "hosts": n, "threshold": int(params.get("hosts", 10)),
                                "org": rule["org_path"], "severity": "high", "link": "/rules/%s" % rule_id}
    return out


def evaluate(engine, t=None):
    """Evaluate every enabled rule once; return the number of events queued."""
    t = int(t or now())
    queued = 0
    with db.write_tx(engine) as conn:
        rules = [dict(x) for x in conn.execute(select(db.alert_rules).where(db.alert_rules.c.enabled.is_(True)))
                 .mappings()]
        for rule in rules:
            current = _current(conn, rule, t)
            said = {k for (k,) in conn.execute(select(db.alert_state.c.key)
                                               .where(db.alert_state.c.rule_id == rule["id"]))}
            started = [k for k in sorted(current) if k not in said]
            ended = [k for k in sorted(said) if k not in current]
            for key in started:
                conn.execute(insert(db.alert_state).values(rule_id=rule["id"], key=key[:300], since=t))
            if ended:
                conn.execute(delete(db.alert_state).where(db.alert_state.c.rule_id == rule["id"],
                                                          db.alert_state.c.key.in_(ended)))
            for key, state in [(k, "firing") for k in started] + [(k, "resolved") for k in ended]:
                fields = current.get(key) or {"key": key}
                event = {"event_id": str(uuid.uuid4()), "type": rule["kind"], "state": state, "rule": rule["name"],
                         "at": t, "org": fields.get("org") or rule["org_path"], "details": fields}
                conn.execute(insert(db.alert_outbox).values(
                    event_id=event["event_id"], channel_id=rule["channel_id"], event=json.dumps(event, ensure_ascii=False),
                    created_at=t, attempts=0, next_attempt_at=t))
                queued += 1
    return queued
