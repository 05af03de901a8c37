"""Central waivers: a failed rule on a host, an org subtree or everywhere, with justification,
approver and expiry. A waiver never rewrites what the agent reported; the latest-state results
row points at the waiver covering it, and the effective status is computed at query time, so an
expired waiver stops applying on its own."""
from __future__ import annotations

import re

from sqlalchemy import insert, select, update

from scanner.server.store import db
from scanner.server.errors import ApiError, bad_request, forbidden, not_found
from scanner.server.store.audit import audit
from scanner.server.store.scope import check
from scanner.server.util import clean_text, normalise_org, now

SCOPES = ("host", "org", "all")
RULE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")



def _covers(waiver, host_id, org_path):
    if waiver["scope"] == "all":
        return True
    if waiver["scope"] == "host":
        return waiver["scope_value"] == host_id
    base = waiver["scope_value"]
    return base == "/" or org_path == base or org_path.startswith(base + "/")


def active_waivers(conn, rule_ids=None):
    w = db.waivers
    q = select(w).where(w.c.revoked_at.is_(None), w.c.expires_at > now())
    if rule_ids is not None:
        q = q.where(w.c.rule_id.in_(list(rule_ids)))
    return [dict(r) for r in conn.execute(q).mappings()]


def attach_waivers(conn, host_id, org_path, rows):
    """Set waiver_id/waiver_until on failed result rows (dicts) a waiver covers."""
    failed = {r["rule_id"] for r in rows if r["status"] == "fail"}
    if failed:
        attach_from(active_waivers(conn, failed), host_id, org_path, rows)


def attach_from(candidates, host_id, org_path, rows):
    """attach_waivers with the active waivers already loaded (batch ingest)."""
    by_rule = {}
    for wv in candidates:
        if _covers(wv, host_id, org_path):
            best = by_rule.get(wv["rule_id"])
            if best is None or wv["expires_at"] > best["expires_at"]:
                by_rule[wv["rule_id"]] = wv
    for r in rows:
        wv = by_rule.get(r["rule_id"]) if r["status"] == "fail" else None
        if wv:
            r["waiver_id"], r["waiver_until"] = wv["id"], wv["expires_at"]


def refresh_rule(conn, rule_id):
    """Recompute the waiver pointers of every latest result of ``rule_id``."""
    r = db.results
    rows = conn.execute(select(r.c.host_id, r.c.profile, db.hosts.c.org_path)
                        .select_from(r.join(db.hosts, db.hosts.c.id == r.c.host_id))
                        .where(r.c.rule_id == rule_id, r.c.status == "fail")).all()
    waivers = active_waivers(conn, [rule_id])
    for host_id, profile, org_path in rows:
        best = None
        for wv in waivers:
            if _covers(wv, host_id, org_path) and (best is None or wv["expires_at"] > best["expires_at"]):
                best = wv
        conn.execute(update(r).where(r.c.host_id == host_id, r.c.profile == profile, r.c.rule_id == rule_id)
                     .values(waiver_id=best["id"] if best else None, waiver_until=best["expires_at"] if best else None))


def create_waiver(engine, data, actor, ip=None, *, scope):
    """A waiver within the granter's ``scope``: a host of it, an org inside it, or "all" (for a
    scoped granter: their one subtree, stored as an org waiver)."""
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
        with engine.connect() as conn:
            org = conn.execute(select(db.hosts.c.org_path).where(db.hosts.c.id == value)).scalar() \
                if isinstance(value, str) else None
        if org is None or not granter.covers(org):
            raise bad_request("bad_host", "scope_value must be the id of an enrolled host")
    else:
        value, org = None, "/"
    justification = clean_text(data.get("justification"), 4000)
    approver = clean_text(data.get("approver"), 128)
    if not justification or not justification.strip():
        raise bad_request("bad_justification", "a justification is required")
    if not approver or not approver.strip():
        raise bad_request("bad_approver", "an approver is required")
    expires_at = data.get("expires_at")
    t = now()
    if not isinstance(expires_at, int) or isinstance(expires_at, bool) or not t < expires_at <= t + 3 * 366 * 86400:
        raise bad_request("bad_expiry", "expires_at must be unix seconds in the future, at most 3 years ahead")
    with db.write_tx(engine) as conn:
        wid = conn.execute(insert(db.waivers).values(
            rule_id=rule_id, scope=kind, scope_value=value, justification=justification, approver=approver,
            expires_at=expires_at, created_by=actor, created_at=t)).inserted_primary_key[0]
        refresh_rule(conn, rule_id)
        audit(conn, actor, "waiver.create", rule_id, {"id": wid, "scope": kind, "scope_value": value,
                                                      "approver": approver, "expires_at": expires_at}, ip, org=org)
    return get_waiver(engine, wid, scope=granter)


def _waiver_org(conn, row):
    """The org a waiver sits in: '/' for all, its org, or its host's org (None: host gone)."""
    if row["scope"] == "all":
        return "/"
    if row["scope"] == "org":
        return row["scope_value"]
    return conn.execute(select(db.hosts.c.org_path).where(db.hosts.c.id == row["scope_value"])).scalar()


def revoke_waiver(engine, wid, actor, ip=None, *, scope):
    """Only a waiver inside ``scope`` (404 for any other)."""
    check(scope)
    with db.write_tx(engine) as conn:
        row = conn.execute(select(db.waivers).where(db.waivers.c.id == wid)).mappings().first()
        org = _waiver_org(conn, row) if row is not None else None
        if row is None or not scope.covers(org):
            raise not_found("no waiver %s" % wid)
        if row["revoked_at"] is not None:
            raise ApiError(409, "already_revoked", "waiver %s is already revoked" % wid)
        conn.execute(update(db.waivers).where(db.waivers.c.id == wid).values(revoked_at=now(), revoked_by=actor))
        refresh_rule(conn, row["rule_id"])
        audit(conn, actor, "waiver.revoke", row["rule_id"], {"id": wid}, ip, org=org)
    return get_waiver(engine, wid, scope=scope)


def get_waiver(engine, wid, *, scope):
    check(scope)
    with engine.connect() as conn:
        row = conn.execute(select(db.waivers).where(db.waivers.c.id == wid)).mappings().first()
        org = _waiver_org(conn, row) if row is not None else None
    if row is None or not scope.touches(org):
        raise not_found("no waiver %s" % wid)
    return waiver_out(row, org, scope)


def waiver_out(row, org=None, scope=None):
    d = dict(row)
    t = now()
    d["state"] = "revoked" if d["revoked_at"] else ("expired" if d["expires_at"] <= t else "active")
    d["org_path"] = org
    # a waiver granted higher up that covers part of the caller's scope is shown, not theirs to change
    d["mine"] = bool(scope is not None and scope.covers(org))
    return d


def list_waivers(engine, *, scope):
    """Waivers inside ``scope``, and those granted above it that apply to part of it."""
    check(scope)
    h = db.hosts
    with engine.connect() as conn:
        rows = conn.execute(select(db.waivers, h.c.org_path.label("host_org"))
                            .select_from(db.waivers.outerjoin(h, (db.waivers.c.scope == "host")
                                                              & (h.c.id == db.waivers.c.scope_value)))
                            .order_by(db.waivers.c.id.desc())).mappings().all()
    out = []
    for r in rows:
        d = dict(r)
        host_org = d.pop("host_org")
        org = "/" if d["scope"] == "all" else d["scope_value"] if d["scope"] == "org" else host_org
        if scope.touches(org):
            out.append(waiver_out(d, org, scope))
    return out
