"""Alerts: admin-defined rules over the fleet's stored state, with durable delivery.

A rule watches one org subtree and sends to one channel. Each evaluation compares what is true now with what
the rule has already said (``alert_state``), so a host+rule that starts failing raises ONE alert, however
many reports repeat it, and one "resolved" alert when it stops; the events go into ``alert_outbox`` in the
same transaction, and delivery (scanner/server/workflow/deliver.py) takes them from there with retries, so
a receiver that is down loses nothing.

Rule kinds (params):
  new_failure        severity (minimum, default high): a latest result fails at or above it, not waived
  host_silent        days (default 3): an enrolled, not retired host has not reported for that long
  failing_hosts      hosts (N), optional rule: a rule fails on more than N hosts of the subtree
  localization_drop  points (default 5), days (default 7), by (subtree | unit): the localization rate (the
                     trend chart's: mean of the hosts' rates) is at least that many percentage points below
                     its value at the end of the day that many days ago, for the subtree as a whole or for
                     each org unit with hosts in it
  waiver_expiring    days (default 14): an approved waiver that applies in the subtree expires within that many days
  report_refusals    count (default 10), minutes (default 10), optional codes: at least that many reports were
                     refused (forged signatures, unknown hosts, stale timestamps ...) within the window; the whole
                     fleet only (org /), since a refused report may name no host
"""
from __future__ import annotations

import json
import uuid
from urllib.parse import urlencode

from sqlalchemy import and_, delete, func, insert, or_, select, update

from scanner.server.errors import ApiError, bad_request, forbidden, not_found
from scanner.server.store import db
from scanner.server.store.audit import audit
from scanner.server.store.scope import Scope, check
from scanner.server.util import clean_text, normalise_org, now

MAX_EVENTS = 100  # events one rule queues in one evaluation; beyond it, one summary (params.max_events)
KINDS = ("new_failure", "host_silent", "failing_hosts", "localization_drop", "waiver_expiring", "report_refusals")
SEVERITIES = ("info", "low", "medium", "high", "critical")
CHANNEL_KINDS = ("webhook", "syslog", "email")


# --- configuration (admins; rules are scoped like everything else, channels are fleet-wide) ----------------
def _fleet_admin(scope, what):
    if not check(scope).is_global:
        raise forbidden("fleet_admin_only", "%s: channels are shared by the whole fleet, so only a fleet-wide admin "
                        "may do this" % what)


def add_channel(engine, name, kind, config, secret=None, actor="cli", ip=None, *, scope):
    """A delivery channel (webhook, syslog, e-mail); fleet-wide admins only."""
    _fleet_admin(scope, "adding a channel")
    name = clean_text(name, 64)
    if not name or kind not in CHANNEL_KINDS:
        raise bad_request("bad_channel", "a channel needs a name and a kind: %s" % ", ".join(CHANNEL_KINDS))
    from scanner.server.workflow.deliver import check_config
    check_config(kind, config)
    with db.write_tx(engine) as conn:
        if conn.execute(select(db.alert_channels.c.id).where(db.alert_channels.c.name == name)).first():
            raise ApiError(409, "channel_exists", "a channel named %s exists" % name)
        cid = conn.execute(insert(db.alert_channels).values(
            name=name, kind=kind, config=json.dumps(config), secret=secret, created_at=now())).inserted_primary_key[0]
        audit(conn, actor, "alert.channel.add", name, {"kind": kind}, ip)
    return cid


SECRET_KEYS = ("password", "username", "secret")


def list_channels(engine, *, scope):
    """Every channel's name and kind (what a rule may send to); a fleet-wide admin also sees its settings
    (never a password or the webhook key) and its outbox: events waiting, failing, the last error."""
    check(scope)
    c, o = db.alert_channels, db.alert_outbox
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(c.c.id, c.c.name, c.c.kind, c.c.config, c.c.created_at)
                                              .order_by(c.c.name)).mappings()]
        waiting = {} if not scope.is_global else {
            cid: (n, failing) for cid, n, failing in conn.execute(
                select(o.c.channel_id, func.count(), func.count(o.c.last_error))
                .where(o.c.delivered_at.is_(None)).group_by(o.c.channel_id))}
        errors = {} if not scope.is_global else {
            cid: err for cid, err in conn.execute(
                select(o.c.channel_id, o.c.last_error).where(o.c.delivered_at.is_(None), o.c.last_error.is_not(None))
                .order_by(o.c.id))}
    out = []
    for r in rows:
        item = {"name": r["name"], "kind": r["kind"]}
        if scope.is_global:
            config = json.loads(r["config"])
            item.update(config={k: v for k, v in config.items() if k not in SECRET_KEYS},
                        waiting=waiting.get(r["id"], (0, 0))[0], failing=waiting.get(r["id"], (0, 0))[1],
                        last_error=errors.get(r["id"]), created_at=r["created_at"])
        out.append(item)
    return out


def send_test(engine, name, actor="cli", ip=None, *, scope):
    """Send a test event to a channel now (the "test" button); fleet-wide admins only. 502 with the
    reason when the receiver did not take it."""
    _fleet_admin(scope, "testing a channel")
    from scanner.server.workflow import deliver
    with engine.connect() as conn:
        row = conn.execute(select(db.alert_channels).where(db.alert_channels.c.name == str(name)[:64])).mappings().first()
    if row is None:
        raise not_found("no channel %s" % name)
    event = deliver.test_event(row["name"])
    try:
        deliver.send(dict(row), event)
        error = None
    except Exception as exc:  # noqa: BLE001 - shown to the admin as the reason
        error = ("%s: %s" % (type(exc).__name__, exc))[:300]
    with db.write_tx(engine) as conn:
        audit(conn, actor, "alert.channel.test", row["name"], {"event_id": event["event_id"], "error": error}, ip)
    if error:
        raise ApiError(502, "delivery_failed", "the test event to %s was not taken: %s" % (row["name"], error))
    return {"channel": row["name"], "event_id": event["event_id"], "sent": True}


def add_rule(engine, name, kind, params, org, channel, actor="cli", ip=None, *, scope):
    """A rule watching ``org`` (inside the creator's ``scope``) and sending to ``channel``."""
    check(scope)
    org_path = normalise_org(org or (scope.orgs[0] if len(scope.orgs) == 1 else "/"))
    if org_path is None or not scope.covers(org_path):
        raise not_found("no org %s" % org)
    name = clean_text(name, 64)
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise bad_request("bad_name", "a rule name is 1-64 letters, digits, '-', '_' or '.'")
    if kind not in KINDS:
        raise bad_request("bad_rule", "kind must be one of %s" % ", ".join(KINDS))
    params = dict(params or {})
    if kind == "new_failure" and params.setdefault("severity", "high") not in SEVERITIES:
        raise bad_request("bad_rule", "severity must be one of %s" % ", ".join(SEVERITIES))
    if kind == "host_silent" and not (isinstance(params.setdefault("days", 3), (int, float)) and params["days"] > 0):
        raise bad_request("bad_rule", "days must be a positive number")
    if kind == "failing_hosts" and not (isinstance(params.setdefault("hosts", 10), int) and params["hosts"] >= 0):
        raise bad_request("bad_rule", "hosts must be a whole number >= 0")
    if kind == "failing_hosts" and params.get("rule") is not None and not (
            isinstance(params["rule"], str) and 0 < len(params["rule"]) <= 128):
        raise bad_request("bad_rule", "rule must be a rule id such as mlps.ia.ssh-root-login")
    if kind == "host_silent" and (isinstance(params["days"], bool) or params["days"] > 3660):
        raise bad_request("bad_rule", "days must be a positive number of at most 3660")
    _check_params(kind, params, org_path)
    with db.write_tx(engine) as conn:
        ch = conn.execute(select(db.alert_channels.c.id).where(db.alert_channels.c.name == str(channel)[:64])).first()
        if ch is None:
            raise not_found("no channel %s" % channel)
        if conn.execute(select(db.alert_rules.c.id).where(db.alert_rules.c.name == name)).first():
            raise ApiError(409, "rule_exists", "an alert rule named %s exists" % name)
        rid = conn.execute(insert(db.alert_rules).values(
            name=name, kind=kind, params=json.dumps(params), org_path=org_path, channel_id=ch[0],
            enabled=True, created_by=actor, created_at=now())).inserted_primary_key[0]
        audit(conn, actor, "alert.rule.add", name, {"kind": kind, "params": params, "org": org_path,
                                                    "channel": channel}, ip, org=org_path)
    return {"id": rid, "name": name}


def list_rules(engine, *, scope):
    """The rules watching subtrees inside ``scope``, with their channel and how many things fire now."""
    r, c, st = db.alert_rules, db.alert_channels, db.alert_state
    q = (select(r.c.id, r.c.name, r.c.kind, r.c.params, r.c.org_path, r.c.enabled, r.c.created_by, r.c.created_at,
                c.c.name.label("channel"))
         .select_from(r.join(c, c.c.id == r.c.channel_id)).order_by(r.c.name))
    cond = check(scope).where(r.c.org_path)
    if cond is not None:
        q = q.where(cond)
    with engine.connect() as conn:
        rows = [dict(x) for x in conn.execute(q).mappings()]
        firing = dict(conn.execute(select(st.c.rule_id, func.count()).group_by(st.c.rule_id)).all())
    for x in rows:
        x["params"] = json.loads(x["params"])
        x["enabled"] = bool(x["enabled"])
        x["firing"] = firing.get(x.pop("id"), 0)
    return rows


def _scoped_rule(conn, name, scope):
    row = conn.execute(select(db.alert_rules).where(db.alert_rules.c.name == str(name)[:64])).mappings().first()
    if row is None or not check(scope).covers(row["org_path"]):
        raise not_found("no alert rule %s" % name)
    return row


def set_rule_enabled(engine, name, enabled, actor="cli", ip=None, *, scope):
    """Pause or resume a rule. A paused rule forgets what it had said (its next firing is new)."""
    with db.write_tx(engine) as conn:
        row = _scoped_rule(conn, name, scope)
        conn.execute(update(db.alert_rules).where(db.alert_rules.c.id == row["id"]).values(enabled=bool(enabled)))
        if not enabled:
            conn.execute(delete(db.alert_state).where(db.alert_state.c.rule_id == row["id"]))
        audit(conn, actor, "alert.rule.enable" if enabled else "alert.rule.disable", row["name"], None, ip,
              org=row["org_path"])
    return {"name": row["name"], "enabled": bool(enabled)}


def delete_rule(engine, name, actor="cli", ip=None, *, scope):
    """Delete a rule (events it already queued are still delivered)."""
    with db.write_tx(engine) as conn:
        row = _scoped_rule(conn, name, scope)
        conn.execute(delete(db.alert_state).where(db.alert_state.c.rule_id == row["id"]))
        conn.execute(delete(db.alert_rules).where(db.alert_rules.c.id == row["id"]))
        audit(conn, actor, "alert.rule.delete", row["name"], {"kind": row["kind"]}, ip, org=row["org_path"])
    return {"name": row["name"], "deleted": True}


def _number(params, key, default, low, high, whole=True):
    value = params.setdefault(key, default)
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        raise bad_request("bad_rule", "%s must be a %s from %s to %s" % (key, "whole number" if whole else "number",
                                                                          low, high))


def _check_params(kind, params, org_path):
    known = {"new_failure": {"severity"}, "host_silent": {"days"}, "failing_hosts": {"hosts", "rule"},
             "localization_drop": {"points", "days", "by"}, "waiver_expiring": {"days"},
             "report_refusals": {"count", "minutes", "codes"}}[kind]
    known = known | {"max_events"}
    extra = sorted(set(params) - known)
    if extra:
        raise bad_request("bad_rule", "%s takes %s, not %s" % (kind, ", ".join(sorted(known)), ", ".join(extra)))
    if "max_events" in params:
        _number(params, "max_events", MAX_EVENTS, 1, 10000)
    if kind == "localization_drop":
        _number(params, "points", 5, 0.1, 100, whole=False)
        _number(params, "days", 7, 1, 90)
        if params.setdefault("by", "subtree") not in ("subtree", "unit"):
            raise bad_request("bad_rule", "by must be subtree (the watched subtree as a whole) or unit (each org unit)")
    elif kind == "waiver_expiring":
        _number(params, "days", 14, 1, 366)
    elif kind == "report_refusals":
        _number(params, "count", 10, 1, 1000000)
        _number(params, "minutes", 10, 1, 1440)
        codes = params.get("codes")
        if codes is not None and (not isinstance(codes, list) or not codes or len(codes) > 20
                                  or not all(isinstance(c, str) and 0 < len(c) <= 64 for c in codes)):
            raise bad_request("bad_rule", "codes must be a list of refusal codes such as bad_signature, unknown_host")
        if org_path != "/":
            raise bad_request("bad_rule", "report_refusals watches the whole fleet (org /): a refused report may "
                              "name no host, or a host it does not come from")


# --- evaluation --------------------------------------------------------------------------------------
def _rank(sev):
    return SEVERITIES.index(sev) if sev in SEVERITIES else -1


def _current(conn, rule, t, said=frozenset()):
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
    elif rule["kind"] == "localization_drop":
        out = _localization_drop(conn, rule, params, t)
    elif rule["kind"] == "waiver_expiring":
        out = _waivers_expiring(conn, rule, params, t)
    elif rule["kind"] == "report_refusals":
        out = _refusals(conn, rule, params, t, said)
    return out


def _localization_drop(conn, rule, params, t):
    """{org key: details} of the subtree (by=subtree) or units (by=unit) whose rate fell by ``points``."""
    from scanner.server.store import rollups
    h, dr = db.hosts, db.daily_rollups
    scope = Scope([rule["org_path"]])
    per_unit = params.get("by") == "unit"
    day = rollups.today() - int(params.get("days", 7))
    # now: the latest state of the live hosts (as the trend's last point)
    q = select(h.c.org_path, func.sum(h.c.loc_rate), func.count(h.c.loc_rate)).where(
        h.c.retired_at.is_(None), h.c.latest_collected.is_not(None), h.c.loc_rate.is_not(None))
    cond = scope.where(h.c.org_path)
    if cond is not None:
        q = q.where(cond)
    now_rows = conn.execute(q.group_by(h.c.org_path)).all()
    # then: the end of that day (store/rollups.py; evaluate() has made sure it is computed)
    q = select(dr.c.org_path, func.sum(dr.c.loc_sum), func.sum(dr.c.loc_n)).where(dr.c.day == day)
    cond = scope.where(dr.c.org_path)
    if cond is not None:
        q = q.where(cond)
    then_rows = conn.execute(q.group_by(dr.c.org_path)).all()

    def fold(rows):
        acc = {}
        for org, total, n in rows:
            key = org if per_unit else rule["org_path"]
            a = acc.setdefault(key, [0.0, 0])
            a[0] += float(total or 0)
            a[1] += int(n or 0)
        return {k: a[0] / a[1] for k, a in acc.items() if a[1]}
    now_rate, then_rate = fold(now_rows), fold(then_rows)
    out = {}
    for org in sorted(now_rate):
        if org not in then_rate:
            continue   # no history to compare with: never a guess
        drop = (then_rate[org] - now_rate[org]) * 100
        if drop >= float(params.get("points", 5)) - 1e-9:
            out["org:%s" % org] = {"org": org, "rate": round(now_rate[org], 4), "was": round(then_rate[org], 4),
                                   "since": day * 86400, "drop_points": round(drop, 2),
                                   "threshold_points": params.get("points", 5), "severity": "medium",
                                   "link": "/?" + urlencode({"org": org}) if org != "/" else "/"}
    return out


def _waivers_expiring(conn, rule, params, t):
    w, h = db.waivers, db.hosts
    until = t + int(params.get("days", 14)) * 86400
    q = (select(w.c.id, w.c.rule_id, w.c.scope, w.c.scope_value, w.c.expires_at, w.c.justification, w.c.approver,
                w.c.created_by, h.c.org_path, h.c.hostname)
         .select_from(w.outerjoin(h, and_(w.c.scope == "host", h.c.id == w.c.scope_value)))
         .where(w.c.state == "approved", w.c.revoked_at.is_(None), w.c.expires_at > t, w.c.expires_at <= until))
    scope = Scope([rule["org_path"]])
    out = {}
    for wid, rule_id, kind, value, expires, why, approver, by, host_org, hostname in conn.execute(q):
        org = "/" if kind == "all" else value if kind == "org" else host_org
        if org is None or not scope.touches(org):   # a waiver granted higher up applies here too
            continue
        out["waiver:%d" % wid] = {"waiver_id": wid, "rule_id": rule_id, "scope": kind, "org": org,
                                  "hostname": hostname, "expires_at": expires, "days_left": round((expires - t) / 86400.0, 1),
                                  "justification": clean_text(why, 200), "approver": approver, "requested_by": by,
                                  "severity": "low", "link": "/waivers"}
    return out


def _refusals(conn, rule, params, t, said):
    """One key while refused reports in the window reach ``count`` (and, once firing, until they fall to
    half of it, so a burst hovering at the threshold does not flap)."""
    a = db.audit_log
    window = int(params.get("minutes", 10)) * 60
    codes = params.get("codes")
    q = select(a.c.target, a.c.detail, a.c.ip).where(a.c.action == "report.refused", a.c.at > t - window, a.c.at <= t)
    if codes:
        q = q.where(a.c.target.in_(codes))
    total, by_code, by_ip = 0, {}, {}
    for code, detail, ip in conn.execute(q):
        try:
            n = 1 + int((json.loads(detail) if detail else {}).get("suppressed") or 0)
        except (ValueError, TypeError, AttributeError):
            n = 1
        total += n
        by_code[code or "-"] = by_code.get(code or "-", 0) + n
        by_ip[ip or "-"] = by_ip.get(ip or "-", 0) + n
    limit = int(params.get("count", 10))
    key = "refusals"
    if total >= limit or (key in said and total > limit // 2):
        top = sorted(by_ip.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        return {key: {"refused": total, "threshold": limit, "minutes": window // 60, "by_code": by_code,
                      "addresses": [{"ip": ip, "refused": n} for ip, n in top], "org": "/",
                      "severity": "high", "link": "/audit"}}
    return {}


def evaluate(engine, t=None):
    """Evaluate every enabled rule once; return the number of events queued."""
    t = int(t or now())
    queued = 0
    with engine.connect() as conn:
        drops = [json.loads(p) for (p,) in conn.execute(select(db.alert_rules.c.params).where(
            db.alert_rules.c.enabled.is_(True), db.alert_rules.c.kind == "localization_drop"))]
    if drops:   # the days compared with must be rolled up (once; a separate transaction)
        from scanner.server.store import rollups
        rollups.ensure(engine, max(int(p.get("days", 7)) for p in drops))
    with db.write_tx(engine) as conn:
        rules = [dict(x) for x in conn.execute(select(db.alert_rules).where(db.alert_rules.c.enabled.is_(True)))
                 .mappings()]
        for rule in rules:
            said = {k for (k,) in conn.execute(select(db.alert_state.c.key)
                                               .where(db.alert_state.c.rule_id == rule["id"]))}
            current = _current(conn, rule, t, said)
            started = [k for k in sorted(current) if k not in said]
            ended = [k for k in sorted(said) if k not in current]
            for key in started:
                conn.execute(insert(db.alert_state).values(rule_id=rule["id"], key=key[:300], since=t))
            if ended:
                conn.execute(delete(db.alert_state).where(db.alert_state.c.rule_id == rule["id"],
                                                          db.alert_state.c.key.in_(ended)))
            changes = [(k, "firing") for k in started] + [(k, "resolved") for k in ended]
            limit = int(json.loads(rule["params"]).get("max_events", MAX_EVENTS))
            events = []
            for key, state in changes[:limit]:
                fields = current.get(key) or {"key": key}
                events.append({"event_id": str(uuid.uuid4()), "type": rule["kind"], "state": state,
                               "rule": rule["name"], "at": t, "org": fields.get("org") or rule["org_path"],
                               "details": fields})
            held = changes[limit:]
            if held:   # a storm (a new rule pack failing everywhere at once): one summary for the rest
                events.append({"event_id": str(uuid.uuid4()), "type": rule["kind"], "state": "summary",
                               "rule": rule["name"], "at": t, "org": rule["org_path"], "details": {
                                   "not_sent": len(held), "firing": sum(1 for _k, st in held if st == "firing"),
                                   "resolved": sum(1 for _k, st in held if st == "resolved"),
                                   "firing_now": len(current), "max_events": limit, "org": rule["org_path"],
                                   "severity": "high", "link": "/admin/alerts"}})
            for event in events:
                conn.execute(insert(db.alert_outbox).values(
                    event_id=event["event_id"], channel_id=rule["channel_id"], event=json.dumps(event, ensure_ascii=False),
                    created_at=t, attempts=0, next_attempt_at=t))
                queued += 1
    return queued
