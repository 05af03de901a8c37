"""Assessors' verdicts for the GB/T 28448 items rules cannot decide (status manual or partial in
rules/controls/<level>.yaml): per host, or per org subtree (one backup policy covering a
department), 符合 / 部分符合 / 不符合 / 不适用 with a 测评记录, optional evidence files (size-limited,
type-checked by their first bytes, stored in the database), who and when, and a validity period.

A verdict counts for an item while it is valid (read against the clock: it lapses on its own) and
not revoked. For a host the most specific verdict wins: the host's own, else the one of the
nearest org unit above it (the newest if several). Everything is scoped: a verdict can only be
recorded, seen or revoked inside the assessor's org subtrees (404 outside)."""
from __future__ import annotations

import base64
import binascii
import hashlib

from sqlalchemy import func, insert, select, update

from scanner.server.errors import ApiError, bad_request, forbidden, not_found
from scanner.server.store import db
from scanner.server.store.audit import audit
from scanner.server.store.coverage import ASSESSABLE, VERDICTS, level_items
from scanner.server.store.scope import check
from scanner.server.util import clean_text, normalise_org, now

ASSESSOR_ROLES = ("admin", "assessor")
MAX_FILES = 5
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_RECORD = 8000
# evidence types by their first bytes (the declared name or type is not trusted)
MAGIC = ((b"%PDF-", "application/pdf"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))


def sniff(data):
    """The content type of an evidence file from its bytes, or None when not an accepted kind."""
    for magic, kind in MAGIC:
        if data.startswith(magic):
            return kind
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/plain" if "\x00" not in text else None


def _files(files):
    """[(filename, bytes)] from [{"name", "data" (base64)}] or already-decoded pairs; checked."""
    out = []
    files = files or []
    if not isinstance(files, list) or len(files) > MAX_FILES:
        raise bad_request("bad_files", "at most %d evidence files" % MAX_FILES)
    for f in files:
        if isinstance(f, tuple):
            name, data = f
        elif isinstance(f, dict):
            name = f.get("name")
            raw = f.get("data")
            if not isinstance(raw, str) or len(raw) > (MAX_FILE_BYTES * 4) // 3 + 8:
                raise ApiError(413, "file_too_large", "each evidence file may be at most %d bytes" % MAX_FILE_BYTES)
            try:
                data = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise bad_request("bad_files", "file %r: data must be base64" % (name,))
        else:
            raise bad_request("bad_files", "files must be a list of {name, data}")
        name = clean_text(name, 255)
        if not name or not name.strip() or "/" in name or "\\" in name:
            raise bad_request("bad_files", "every evidence file needs a plain file name")
        if len(data) > MAX_FILE_BYTES:
            raise ApiError(413, "file_too_large", "%s: %d bytes; each evidence file may be at most %d bytes"
                           % (name, len(data), MAX_FILE_BYTES))
        if not data:
            raise bad_request("bad_files", "%s is empty" % name)
        kind = sniff(data)
        if kind is None:
            raise bad_request("bad_file_type", "%s: only PDF, PNG, JPEG or UTF-8 text evidence is accepted" % name)
        out.append((name, kind, data))
    return out


def _target(engine, scope, kind, value):
    """(target, org_path) inside ``scope``: a host by name or id, or an org subtree."""
    if kind == "org":
        org = normalise_org(value)
        if org is None:
            raise bad_request("bad_org", "target must be an org path such as /gov/finance")
        if not scope.covers(org):
            raise forbidden("org_outside_scope", "you may only record verdicts inside your own org subtrees (%s)"
                            % ", ".join(scope.orgs))
        return org, org
    if kind != "host":
        raise bad_request("bad_target", "target_kind must be host or org")
    h = db.hosts
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise bad_request("bad_host", "target must name an enrolled host (host name or id)")
    with engine.connect() as conn:
        rows = conn.execute(select(h.c.id, h.c.org_path).where(h.c.id == value)).all() or conn.execute(
            select(h.c.id, h.c.org_path).where(func.lower(h.c.hostname) == value.strip().lower(),
                                               h.c.retired_at.is_(None))).all()
    rows = [r for r in rows if scope.covers(r[1])]
    if len(rows) != 1:
        raise bad_request("bad_host" if not rows else "ambiguous_host",
                          "no host %r in your org subtrees" % value if not rows else
                          "%d hosts are named %r; give the host id instead" % (len(rows), value))
    return rows[0][0], rows[0][1]


def record_assessment(engine, data, actor, ip=None, *, scope, role):
    """Record a verdict for a manual or partial item; returns it."""
    check(scope)
    if role not in ASSESSOR_ROLES:
        raise forbidden("forbidden", "your role (%s) may not record assessment verdicts" % role)
    level = data.get("level") or "mlps-l3"
    items = level_items(level)
    item_id = data.get("item_id")
    item = items.get(item_id) if isinstance(item_id, str) else None
    if item is None:
        raise bad_request("bad_item", "item_id must be a test item of %s such as %s" % (level, next(iter(items))))
    if item.get("status") not in ASSESSABLE:
        raise bad_request("not_assessable", "%s is decided by rules (automated); verdicts are recorded for manual "
                          "and partial items" % item_id)
    verdict = data.get("verdict")
    if verdict not in VERDICTS:
        raise bad_request("bad_verdict", "verdict must be one of %s" % ", ".join(VERDICTS))
    record = clean_text(data.get("record"), MAX_RECORD)
    if not record or not record.strip():
        raise bad_request("bad_record", "a 测评记录 (what was examined and found) is required")
    t = now()
    valid_until = data.get("valid_until")
    if not isinstance(valid_until, int) or isinstance(valid_until, bool) or not t < valid_until <= t + 3 * 366 * 86400:
        raise bad_request("bad_validity", "valid_until must be unix seconds in the future, at most 3 years ahead")
    files = _files(data.get("files"))
    target, org = _target(engine, scope, data.get("target_kind"), data.get("target"))
    with db.write_tx(engine) as conn:
        aid = conn.execute(insert(db.assessments).values(
            level=level, item_id=item_id, target_kind=data["target_kind"], target=target, org_path=org,
            verdict=verdict, record=record, assessor=actor, created_at=t, valid_until=valid_until)).inserted_primary_key[0]
        for name, kind, blob in files:
            conn.execute(insert(db.assessment_files).values(
                assessment_id=aid, filename=name, content_type=kind, size=len(blob),
                sha256=hashlib.sha256(blob).hexdigest(), data=blob))
        audit(conn, actor, "assessment.record", "%s %s" % (level, item_id),
              {"id": aid, "target_kind": data["target_kind"], "target": target, "verdict": verdict,
               "valid_until": valid_until, "files": [n for n, _k, _b in files]}, ip, org=org)
    return get_assessment(engine, aid, scope=scope)


def _out(row, files=()):
    d = dict(row)
    t = now()
    d["state"] = "revoked" if d["revoked_at"] else ("expired" if d["valid_until"] <= t else "valid")
    d["files"] = [dict(f) for f in files]
    return d


FILE_COLS = (db.assessment_files.c.id, db.assessment_files.c.assessment_id, db.assessment_files.c.filename,
             db.assessment_files.c.content_type, db.assessment_files.c.size, db.assessment_files.c.sha256)


def get_assessment(engine, aid, *, scope):
    check(scope)
    a = db.assessments
    with engine.connect() as conn:
        row = conn.execute(select(a).where(a.c.id == aid)).mappings().first()
        if row is None or not scope.covers(row["org_path"]):
            raise not_found("no assessment %s" % aid)
        files = conn.execute(select(*FILE_COLS).where(db.assessment_files.c.assessment_id == aid)).mappings().all()
    return _out(row, files)


def list_assessments(engine, *, scope, target=None):
    """Verdicts inside ``scope`` (newest first), optionally for one target (host id or org path)."""
    check(scope)
    a = db.assessments
    q = select(a).order_by(a.c.id.desc()).limit(5000)
    cond = scope.where(a.c.org_path)
    if cond is not None:
        q = q.where(cond)
    if target:
        q = q.where(a.c.target == target)
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
        files = {}
        if rows:
            for f in conn.execute(select(*FILE_COLS).where(
                    db.assessment_files.c.assessment_id.in_([r["id"] for r in rows]))).mappings():
                files.setdefault(f["assessment_id"], []).append(f)
    return [_out(r, files.get(r["id"], ())) for r in rows]


def evidence_file(engine, aid, file_id, *, scope):
    """(filename, content_type, bytes) of one evidence file of a verdict inside ``scope``."""
    get_assessment(engine, aid, scope=scope)
    f = db.assessment_files
    with engine.connect() as conn:
        row = conn.execute(select(f.c.filename, f.c.content_type, f.c.data)
                           .where(f.c.id == file_id, f.c.assessment_id == aid)).first()
    if row is None:
        raise not_found("no file %s" % file_id)
    return row[0], row[1], bytes(row[2])


def revoke_assessment(engine, aid, actor, ip=None, *, scope, role):
    check(scope)
    if role not in ASSESSOR_ROLES:
        raise forbidden("forbidden", "your role (%s) may not revoke assessment verdicts" % role)
    a = db.assessments
    with db.write_tx(engine) as conn:
        row = conn.execute(select(a).where(a.c.id == aid)).mappings().first()
        if row is None or not scope.covers(row["org_path"]):
            raise not_found("no assessment %s" % aid)
        if row["revoked_at"] is not None:
            raise ApiError(409, "already_revoked", "assessment %s is already revoked" % aid)
        conn.execute(update(a).where(a.c.id == aid).values(revoked_at=now(), revoked_by=actor))
        audit(conn, actor, "assessment.revoke", "%s %s" % (row["level"], row["item_id"]), {"id": aid}, ip,
              org=row["org_path"])
    return get_assessment(engine, aid, scope=scope)
