"""Central waivers: an accepted risk for a failed rule on a host, an org subtree or all of the
granter's scope, optionally only for some items of the rule (one database instance, one account,
one file).

Life cycle (four-eyes): a waiver is *requested* with a justification and an expiry, then
*approved* or *rejected* by a different user with approval rights whose scope covers it (the
``waiver_single_step`` setting lets a user with approval rights approve their own request, for
small sites). A requested or approved waiver can be *revoked*; an approved one past its expiry is
*expired*. Nothing is deleted: every step is a ``waiver_events`` row and an audit entry.

Only approved waivers apply. A waiver never rewrites what the agent reported: the latest-state
results row points at the approved waiver covering it (``waiver_id``/``waiver_until``), and the
effective status, scores and counts are computed at query time against the clock
(store/queries.py), so an expired waiver stops applying on its own, without any job."""
from __future__ import annotations

import re

from sqlalchemy import bindparam, func, insert, select, update

from scanner.server.store import aggregates, db
from scanner.server.errors import ApiError, bad_request, forbidden, not_found
from scanner.server.store.audit import audit
from scanner.server.store.scope import check
from scanner.server.util import clean_text, dumps, loads, normalise_org, now

SCOPES = ("host", "org", "all")
STATES = ("requested", "approved", "rejected", "revoked", "expired")
RULE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
APPROVER_ROLES = ("admin", "officer")  # approval rights; the requester never approves their own (four-eyes)
MAX_ITEMS = 200
LATEST_ITEMS = 100  # intake/ingest.py keeps at most this many open items per result


def _covers(waiver, host_id, org_path):
    if waiver["scope"] == "all":
        return True
    if waiver["scope"] == "host":
        return waiver["scope_value"] == host_id
    base = waiver["scope_value"]
    return base == "/" or org_path == base or org_path.startswith(base + "/")


def _covers_items(waiver, evidence):
    """Whether a waiver for some items of a rule covers this failed result: every item that did
    not pass is a failure whose key the waiver names. A result without item keys, or whose stored
    list of open items may be cut short (intake keeps LATEST_ITEMS), is not covered: an item the
    server cannot see is never waived."""
    wanted = waiver.get("items")
    if not wanted:
        return True
    if isinstance(wanted, str):
        wanted = loads(wanted, [])
    ev = loads(evidence, {}) if isinstance(evidence, str) else (evidence or {})
    items = ev.get("items") if isinstance(ev, dict) else None
    if not isinstance(items, list) or not items or len(items) >= LATEST_ITEMS:
        return False
    keys = set(str(k) for k in wanted)
    return all(isinstance(i, dict) and i.get("status") == "fail" and str(i.get("key")) in keys for i in items)


def is_active(waiver, t=None):
    """Approved, not revoked, not expired."""
    return waiver.get("state", "approved") == "approved" and waiver.get("revoked_at") is None \
        and waiver["expires_at"] > (now() if t is None else t)


def active_waivers(conn, rule_ids=None):
    w = db.waivers
    q = select(w).where(w.c.state == "approved", w.c.revoked_at.is_(None), w.c.expires_at > now())
    if rule_ids is not None:
        q = q.where(w.c.rule_id.in_(list(rule_ids)))
    return [dict(r) for r in conn.execute(q).mappings()]


def attach_waivers(conn, host_id, org_path, rows):
    """Set waiver_id/waiver_until on failed result rows (dicts) a waiver covers."""
    failed = {r["rule_id"] for r in rows if r["status"] == "fail"}
    if failed:
        attach_from(active_waivers(conn, failed), host_id, org_path, rows)


def _best(candidates, host_id, org_path, row):
    best = None
    for wv in candidates:
        if wv["rule_id"] == row["rule_id"] and _covers(wv, host_id, org_path) \
                and _covers_items(wv, row.get("evidence")) and (best is None or wv["expires_at"] > best["expires_at"]):
            best = wv
    return best


def attach_from(candidates, host_id, org_path, rows):
    """attach_waivers with the active waivers already loaded (batch ingest)."""
    candidates = [w for w in candidates if is_active(w)]
    if not candidates:
        return
    for r in rows:
        wv = _best(candidates, host_id, org_path, r) if r["status"] == "fail" else None
        if wv:
            r["waiver_id"], r["waiver_until"] = wv["id"], wv["expires_at"]


def refresh_rule(conn, rule_id):
    """Recompute the waiver pointers of every latest result of ``rule_id``."""
    r = db.results
    # the hosts failing the rule, locked in id order like intake locks them (batch.py): a report
    # stored meanwhile for one of them waits, then sees this decision; aggregates stay exact
    conn.execute(select(db.hosts.c.id).where(db.hosts.c.id.in_(
        select(r.c.host_id).where(r.c.rule_id == rule_id, r.c.status == "fail"))).order_by(db.hosts.c.id)
        .with_for_update()).all()
    rows = conn.execute(select(r.c.host_id, r.c.profile, r.c.rule_id, r.c.evidence, r.c.waiver_id, r.c.waiver_until,
                               db.hosts.c.org_path)
                        .select_from(r.join(db.hosts, db.hosts.c.id == r.c.host_id))
                        .where(r.c.rule_id == rule_id, r.c.status == "fail")).mappings().all()
    waivers = active_waivers(conn, [rule_id])
    changes = []
    for row in rows:
        best = _best(waivers, row["host_id"], row["org_path"], row)
        wid, until = (best["id"], best["expires_at"]) if best else (None, None)
        if (wid, until) != (row["waiver_id"], row["waiver_until"]):  # only the pointers that change
            changes.append({"h": row["host_id"], "p": row["profile"], "w": wid, "u": until})
    if changes:
        conn.execute(update(r).where(r.c.host_id == bindparam("h"), r.c.profile == bindparam("p"), r.c.rule_id == rule_id)
                     .values(waiver_id=bindparam("w"), waiver_until=bindparam("u")), changes)
        aggregates.refresh_profiles(conn, [c["h"] for c in changes])
    aggregates.rebuild_rule(conn, rule_id)


def _event(conn, wid, actor, action, note=None):
    conn.execute(insert(db.waiver_events).values(waiver_id=wid, at=now(), actor=actor, action=action,
                                                 note=clean_text(note, 4000)))


def _resolve_host(engine, value, granter):
    """A host of the granter's scope by id or by host name (names are what people know)."""
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise bad_request("bad_host", "scope_value must name an enrolled host (host name or id)")
    h = db.hosts
    with engine.connect() as conn:
        rows = conn.execute(_scoped(select(h.c.id, h.c.org_path).where(h.c.id == value), granter)).all()
        if not rows:
            rows = conn.execute(_scoped(select(h.c.id, h.c.org_path).where(
                func.lower(h.c.hostname) == value.strip().lower(), h.c.retired_at.is_(None)), granter)).all()
    if not rows:
        raise bad_request("bad_host", "scope_value must name an enrolled host (host name or id); no host %r in "
                          "your org subtrees" % value)
    if len(rows) > 1:
        raise bad_request("ambiguous_host", "%d hosts are named %r; give the host id (on the host page) instead"
                          % (len(rows), value))
    return rows[0][0], rows[0][1]


def _scoped(q, scope):
    cond = scope.where(db.hosts.c.org_path)
    return q if cond is None else q.where(cond)


def _items(value):
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        value = [x for x in re.split(r"[\n,]+", value) if x.strip()]
    if not isinstance(value, list) or len(value) > MAX_ITEMS or \
            not all(isinstance(x, str) and 0 < len(x.strip()) <= 512 for x in value):
        raise bad_request("bad_items", "items must be a list of at most %d item keys of the rule (as shown "
                          "under the finding), each 1-512 characters" % MAX_ITEMS)
    return sorted(set(x.strip() for x in value))


def request_waiver(engine, data, actor, ip=None, *, scope, role=None, single_step=False):
    """Request a waiver within the requester's ``scope``: a host of it (by name or id), an org
    inside it, or "all" (for a scoped requester: their one subtree, stored as an org waiver).
    With ``single_step`` (setting ``waiver_single_step``) a requester with approval rights gets it
    approved at once."""
    granter = check(scope)
    rule_id = data.get("rule_id")
    if not isinstance(rule_id, str) or not RULE_RE.match(rule_id):
        raise bad_request("bad_rule_id", "rule_id must be a rule id such as mlps.ia.password-max-age")
    kind = data.get("scope")
    if kind not in SCOPES:
        raise bad_request("bad_scope", "scope must be host, org or all")
    value = data.get("scope_value")
    if kind == "all" and not granter.is_global:
        if len(granter.orgs) != 1:
            raise bad_request("bad_scope", "your scope has several org subtrees (%s); waive for one of them "
                              "(scope org)" % ", ".join(granter.orgs))
        kind, value = "org", granter.orgs[0]
    if kind == "org":
        value = normalise_org(value)
        if value is None:
            raise bad_request("bad_org", "scope_value must be an org path such as /gov/finance")
        if not granter.covers(value):
            raise forbidden("org_outside_scope", "you may only waive inside your own org subtrees (%s)"
                            % ", ".join(granter.orgs))
        org = value
    elif kind == "host":
        value, org = _resolve_host(engine, value, granter)
    else:
        value, org = None, "/"
    items = _items(data.get("items"))
    justification = clean_text(data.get("justification"), 4000)
    if not justification or not justification.strip():
        raise bad_request("bad_justification", "a justification is required: why the risk is accepted, until when")
    expires_at = data.get("expires_at")
    t = now()
    if not isinstance(expires_at, int) or isinstance(expires_at, bool) or not t < expires_at <= t + 3 * 366 * 86400:
        raise bad_request("bad_expiry", "expires_at must be unix seconds in the future, at most 3 years ahead")
    at_once = bool(single_step and role in APPROVER_ROLES)
    with db.write_tx(engine) as conn:
        wid = conn.execute(insert(db.waivers).values(
            rule_id=rule_id, scope=kind, scope_value=value, justification=justification,
            approver=actor if at_once else "", expires_at=expires_at, created_by=actor, created_at=t,
            state="approved" if at_once else "requested", items=dumps(items) if items else None,
            decided_by=actor if at_once else None, decided_at=t if at_once else None)).inserted_primary_key[0]
        _event(conn, wid, actor, "request", justification)
        detail = {"id": wid, "scope": kind, "scope_value": value, "items": items, "expires_at": expires_at}
        audit(conn, actor, "waiver.request", rule_id, detail, ip, org=org)
        if at_once:
            _event(conn, wid, actor, "approve", "single-step")
            refresh_rule(conn, rule_id)
            audit(conn, actor, "waiver.approve", rule_id, {"id": wid, "single_step": True}, ip, org=org)
    return get_waiver(engine, wid, scope=granter)


def create_waiver(engine, data, actor, ip=None, *, scope):
    """A waiver requested and approved in one step by the command line or a test (no four-eyes)."""
    return request_waiver(engine, data, actor, ip, scope=scope, role="admin", single_step=True)


def decide_waiver(engine, wid, decision, actor, note=None, ip=None, *, scope, role, single_step=False):
    """Approve or reject a requested waiver: a user with approval rights, inside whose ``scope`` the
    waiver lies, and who did not request it (unless ``single_step``)."""
    check(scope)
    if decision not in ("approve", "reject"):
        raise bad_request("bad_decision", "decision must be approve or reject")
    if role not in APPROVER_ROLES:
        raise forbidden("forbidden", "your role (%s) may not approve or reject waivers" % role)
    note = clean_text(note, 4000)
    t = now()
    with db.write_tx(engine) as conn:
        row = conn.execute(select(db.waivers).where(db.waivers.c.id == wid).with_for_update()).mappings().first()
        org = _waiver_org(conn, row) if row is not None else None
        if row is None or not scope.covers(org):
            raise not_found("no waiver %s" % wid)
        if row["state"] != "requested":
            raise ApiError(409, "not_requested", "waiver %s is %s, not waiting for a decision" % (wid, row["state"]))
        if decision == "approve" and row["expires_at"] <= t:
            raise ApiError(409, "expired", "waiver %s expired before it was approved; request it again" % wid)
        if row["created_by"] == actor and not single_step:
            raise forbidden("four_eyes", "a waiver is approved or rejected by someone other than who requested it")
        state = "approved" if decision == "approve" else "rejected"
        conn.execute(update(db.waivers).where(db.waivers.c.id == wid).values(
            state=state, decided_by=actor, decided_at=t, decision_note=note,
            approver=actor if state == "approved" else row["approver"]))
        _event(conn, wid, actor, decision, note)
        if state == "approved":
            refresh_rule(conn, row["rule_id"])
        audit(conn, actor, "waiver." + decision, row["rule_id"], {"id": wid, "note": note}, ip, org=org)
    return get_waiver(engine, wid, scope=scope)


def _waiver_org(conn, row):
    """The org a waiver sits in: '/' for all, its org, or its host's org (None: host gone)."""
    if row["scope"] == "all":
        return "/"
    if row["scope"] == "org":
        return row["scope_value"]
    return conn.execute(select(db.hosts.c.org_path).where(db.hosts.c.id == row["scope_value"])).scalar()


def revoke_waiver(engine, wid, actor, ip=None, *, scope):
    """Withdraw a requested or end an approved waiver; only one inside ``scope`` (404 for any other)."""
    check(scope)
    with db.write_tx(engine) as conn:
        row = conn.execute(select(db.waivers).where(db.waivers.c.id == wid).with_for_update()).mappings().first()
        org = _waiver_org(conn, row) if row is not None else None
        if row is None or not scope.covers(org):
            raise not_found("no waiver %s" % wid)
        if row["revoked_at"] is not None:
            raise ApiError(409, "already_revoked", "waiver %s is already revoked" % wid)
        if row["state"] == "rejected":
            raise ApiError(409, "rejected", "waiver %s was rejected; there is nothing to revoke" % wid)
        conn.execute(update(db.waivers).where(db.waivers.c.id == wid).values(revoked_at=now(), revoked_by=actor,
                                                                            state="revoked"))
        _event(conn, wid, actor, "revoke")
        refresh_rule(conn, row["rule_id"])
        audit(conn, actor, "waiver.revoke", row["rule_id"], {"id": wid}, ip, org=org)
    return get_waiver(engine, wid, scope=scope)


def get_waiver(engine, wid, *, scope):
    """One waiver with its history (requests, decisions, revocation)."""
    check(scope)
    h = db.hosts
    with engine.connect() as conn:
        row = conn.execute(_with_host(select(db.waivers, h.c.org_path.label("host_org"), h.c.hostname))
                           .where(db.waivers.c.id == wid)).mappings().first()
        ev = db.waiver_events
        history = [dict(e) for e in conn.execute(select(ev.c.at, ev.c.actor, ev.c.action, ev.c.note)
                                                 .where(ev.c.waiver_id == wid).order_by(ev.c.id)).mappings()]
    if row is None:
        raise not_found("no waiver %s" % wid)
    d = dict(row)
    org = _org_of(d)
    if not scope.touches(org):
        raise not_found("no waiver %s" % wid)
    return dict(waiver_out(d, org, scope), history=history)


def _with_host(q):
    h = db.hosts
    return q.select_from(db.waivers.outerjoin(h, (db.waivers.c.scope == "host") & (h.c.id == db.waivers.c.scope_value)))


def _org_of(d):
    host_org = d.pop("host_org", None)
    return "/" if d["scope"] == "all" else d["scope_value"] if d["scope"] == "org" else host_org


def state_of(row, t=None):
    """requested | active | expired | rejected | revoked (expiry is read against the clock)."""
    if row["revoked_at"] is not None or row.get("state") == "revoked":
        return "revoked"
    if row.get("state") == "rejected":
        return "rejected"
    if row["expires_at"] <= (now() if t is None else t):
        return "expired"
    return "requested" if row.get("state") == "requested" else "active"


def waiver_out(row, org=None, scope=None):
    d = dict(row)
    d["decision"] = d.pop("state", "approved")
    d["state"] = state_of(dict(d, state=d["decision"]))
    d["items"] = loads(d.get("items")) if isinstance(d.get("items"), str) else d.get("items")
    d["org_path"] = org
    # a waiver granted higher up that covers part of the caller's scope is shown, not theirs to change
    d["mine"] = bool(scope is not None and scope.covers(org))
    return d


def list_waivers(engine, *, scope, state=None):
    """Waivers inside ``scope``, and those granted above it that apply to part of it."""
    check(scope)
    h = db.hosts
    with engine.connect() as conn:
        rows = conn.execute(_with_host(select(db.waivers, h.c.org_path.label("host_org"), h.c.hostname))
                            .order_by(db.waivers.c.id.desc())).mappings().all()
    out = []
    for r in rows:
        d = dict(r)
        org = _org_of(d)
        if scope.touches(org):
            w = waiver_out(d, org, scope)
            if state is None or w["state"] == state:
                out.append(w)
    return out
