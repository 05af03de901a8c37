"""Central waivers: a failed rule on a host, an org subtree or everywhere, with justification,
approver and expiry. A waiver never rewrites what the agent reported; the latest-state results
row points at the waiver covering it, and the effective status is computed at query time, so an
expired waiver stops applying on its own."""
from __future__ import annotations

import re

from sqlalchemy import insert, select, update

from scanner.server.store import db
from scanner.server.errors import ApiError, bad_request, not_found
from scanner.server.store.audit import audit
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


def create_waiver(engine, data, actor, ip=None):
    rule_id = data.get("rule_id")
    if not isinstance(rule_id, str) or not RULE_RE.match(rule_id):
        raise bad_request("bad_rule_id", "rule_id must be a rule id such as mlps.ia.password-max-age")
    scope = data.get("scope")
    if scope not in SCOPES:
        raise bad_request("bad_scope", "scope must be host, org or all")
    value = data.get("scope_value")
    if scope == "org":
        value = normalise_org(value)
        if value is None:
            raise bad_request("bad_org", "scope_value must be an org path such as /gov/finance")
    elif scope == "host":
        with engine.connect() as conn:
            if not isinstance(value, str) or conn.execute(select(db.hosts.c.id).where(db.hosts.c.id == value)).first() is None:
                raise bad_request("bad_host", "scope_value must be the id of an enrolled host")
    else:
        value = None
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
            rule_id=rule_id, scope=scope, scope_value=value, justification=justification, approver=approver,
            expires_at=expires_at, created_by=actor, created_at=t)).inserted_primary_key[0]
        refresh_rule(conn, rule_id)
        audit(conn, actor, "waiver.create", rule_id, {"id": wid, "scope": scope, "scope_value": value,
                                                      "approver": approver, "expires_at": expires_at}, ip)
    return get_waiver(engine, wid)


def revoke_waiver(engine, wid, actor, ip=None):
    with db.write_tx(engine) as conn:
        row = conn.execute(select(db.waivers).where(db.waivers.c.id == wid)).mappings().first()
        if row is None:
            raise not_found("no waiver %s" % wid)
        if row["revoked_at"] is not None:
            raise ApiError(409, "already_revoked", "waiver %s is already revoked" % wid)
        conn.execute(update(db.waivers).where(db.waivers.c.id == wid).values(revoked_at=now(), revoked_by=actor))
        refresh_rule(conn, row["rule_id"])
        audit(conn, actor, "waiver.revoke", row["rule_id"], {"id": wid}, ip)
    return get_waiver(engine, wid)


def get_waiver(engine, wid):
    with engine.connect() as conn:
        row = conn.execute(select(db.waivers).where(db.waivers.c.id == wid)).mappings().first()
    if row is None:
        raise not_found("no waiver %s" % wid)
    return waiver_out(row)


def waiver_out(row):
    d = dict(row)
    t = now()
    d["state"] = "revoked" if d["revoked_at"] else ("expired" if d["expires_at"] <= t else "active")
    return d


def list_waivers(engine):
    with engine.connect() as conn:
        rows = conn.execute(select(db.waivers).order_by(db.waivers.c.id.desc())).mappings().all()
    return [waiver_out(r) for r in rows]
