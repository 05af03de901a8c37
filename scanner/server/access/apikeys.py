"""API keys for other systems (asset databases, ticketing, SIEM pull): long-lived, revocable, scoped.

A key is ``xck_`` + 43 random characters, shown once at creation and stored as its SHA-256 (high-entropy
secret: a fast hash is enough, like session tokens). Each key has a role — ``auditor`` (read-only) or
``officer`` (read and waiver requests) — never admin, org subtrees inside its creator's scope, an expiry, and a
last-used time. A request with ``Authorization: Bearer xck_…`` acts as user ``key:NAME`` with that role and
scope; every write it makes is in the audit log (``apikey.write``) besides the action's own entry.
"""
from __future__ import annotations

import json
import secrets

from sqlalchemy import insert, select, update

from scanner.server.errors import ApiError, bad_request, forbidden, not_found
from scanner.server.store import db
from scanner.server.store.audit import audit
from scanner.server.store.scope import Scope, check
from scanner.server.util import clean_text, normalise_org, now, sha256_hex

PREFIX = "xck_"
ROLES = ("auditor", "officer")
TOUCH_EVERY = 60


def create(engine, name, role, orgs, expires_in, actor="cli", ip=None, *, scope):
    name = clean_text(name, 64)
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise bad_request("bad_name", "a key name is 1-64 letters, digits, '-', '_' or '.'")
    if role not in ROLES:
        raise bad_request("bad_role", "an API key's role is auditor (read-only) or officer (waiver editor)")
    paths = [normalise_org(o) for o in (orgs or ["/"])]
    if None in paths:
        raise bad_request("bad_org", "orgs must be paths like /gov/finance")
    key_scope = Scope(paths)
    if not check(scope).covers_scope(key_scope):
        raise forbidden("org_outside_scope", "a key's orgs must be inside your own (%s)" % ", ".join(scope.orgs))
    if not isinstance(expires_in, int) or not 0 < expires_in <= 3 * 365 * 86400:
        raise bad_request("bad_expiry", "a key expires within 3 years")
    key = PREFIX + secrets.token_urlsafe(32)
    t = now()
    with db.write_tx(engine) as conn:
        if conn.execute(select(db.api_keys.c.id).where(db.api_keys.c.name == name)).first() is not None:
            raise ApiError(409, "name_taken", "an API key named %s exists" % name)
        conn.execute(insert(db.api_keys).values(
            name=name, key_hash=sha256_hex(key), role=role, orgs=json.dumps(list(key_scope.orgs)), created_by=actor,
            created_at=t, expires_at=t + expires_in))
        audit(conn, actor, "apikey.create", name, {"role": role, "orgs": list(key_scope.orgs),
                                                    "expires_at": t + expires_in}, ip, org=key_scope.root())
    return {"name": name, "key": key, "role": role, "orgs": list(key_scope.orgs), "expires_at": t + expires_in}


def _mine(orgs, scope):
    """A key belongs to a (scoped) admin when every one of its subtrees is inside theirs."""
    return scope.is_global or bool(orgs) and scope.covers_scope(Scope(orgs))


def revoke(engine, name, actor="cli", ip=None, *, scope):
    """Revoke a key at once; only one whose subtrees are all inside ``scope`` (404 for any other)."""
    check(scope)
    k = db.api_keys
    with db.write_tx(engine) as conn:
        row = conn.execute(select(k.c.id, k.c.orgs).where(k.c.name == str(name)[:64], k.c.revoked_at.is_(None))).first()
        orgs = json.loads(row[1]) if row else []
        if row is None or not _mine(orgs, scope):
            raise not_found("no active API key %s" % name)
        conn.execute(update(k).where(k.c.id == row[0]).values(revoked_at=now()))
        audit(conn, actor, "apikey.revoke", name, None, ip, org=Scope(orgs).root())


def list_keys(engine, *, scope):
    """Keys whose subtrees are all inside ``scope`` (never the key itself: only its hash is stored)."""
    check(scope)
    k = db.api_keys
    with engine.connect() as conn:
        rows = conn.execute(select(k.c.name, k.c.role, k.c.orgs, k.c.created_by, k.c.created_at, k.c.expires_at,
                                   k.c.last_used_at, k.c.revoked_at).order_by(k.c.name)).mappings()
        out = [dict(r, orgs=json.loads(r["orgs"])) for r in rows]
    return [r for r in out if _mine(r["orgs"], scope)]


def key_user(engine, key):
    """The pseudo-user behind an API key, or None (unknown, expired, revoked)."""
    if not key.startswith(PREFIX) or len(key) > 128:
        return None
    k = db.api_keys
    h = sha256_hex(key)
    with engine.connect() as conn:
        row = conn.execute(select(k).where(k.c.key_hash == h)).mappings().first()
    t = now()
    if row is None or row["revoked_at"] is not None or row["expires_at"] <= t:
        return None
    if not row["last_used_at"] or t - row["last_used_at"] >= TOUCH_EVERY:
        with db.write_tx(engine) as conn:
            conn.execute(update(k).where(k.c.key_hash == h).values(last_used_at=t))
    orgs = json.loads(row["orgs"])
    return {"id": None, "username": "key:%s" % row["name"], "role": row["role"], "disabled": False, "csrf": None,
            "orgs": orgs, "scope": Scope(orgs), "api_key": row["name"], "token_hash": None}


def audit_write(engine, user, method, path, ip=None):
    with db.write_tx(engine) as conn:
        audit(conn, user["username"], "apikey.write", "%s %s" % (method, path[:400]), None, ip)
