"""The working paper's frame on the aggregator: 被测单位, 系统名称, 备案号 / 报告编号, 安全保护等级, 测评人员,
测评时间 and time zone — the fields of the agent's ``--assessment FILE`` (scanner/assessment_info.py,
whose ``check`` validates them here too; there is no second copy of the rules) — set per org unit
by an assessor (or an admin) inside their org subtrees, audited.

Which frame a report shows (the rule stated on the frame page and in docs/server.md):

- a host's paper, and the roll-up of an org subtree, use the frame of the nearest org unit up the
  tree that has one (the host's own unit, else its parent, ... up to ``/``);
- that frame, set by the assessor on the server, wins over the one the agent's report carries,
  field by field: a field the server's frame leaves empty keeps the report's value;
- the assessor's verdicts for manual items are not part of this frame: they are recorded on the
  coverage page (workflow/assessments.py), so ``manual`` is refused here.

Scope: a frame can be read or set only inside the caller's org subtrees; outside, 404 as if there
were none."""
from __future__ import annotations

from sqlalchemy import delete, insert, select, update

from scanner.assessment_info import FIELDS, check as check_frame
from scanner.errors import DataError
from scanner.server.errors import bad_request, forbidden
from scanner.server.store import db
from scanner.server.store.audit import audit
from scanner.server.store.scope import check
from scanner.server.util import clean_text, dumps, loads, normalise_org, now, org_ancestors

EDITOR_ROLES = ("admin", "assessor")  # the roles that record assessors' verdicts (workflow/assessments.py)
FRAME_FIELDS = tuple(f for f in FIELDS if f != "manual")


def _org(scope, org):
    path = normalise_org(org) if org else scope.root()
    if path is None:
        raise bad_request("bad_org", "org must be an org path such as /gov/finance")
    scope.require(path, "org unit %s" % path)
    return path


def validate(data):
    """The frame checked by the agent's rules (scanner/assessment_info.check); 400 naming the field."""
    if not isinstance(data, dict):
        raise bad_request("bad_frame", "the frame is a mapping of fields: %s" % ", ".join(FRAME_FIELDS))
    if data.get("manual") is not None:
        raise bad_request("bad_frame", "manual verdicts are recorded per test item on the coverage page "
                                       "(/coverage, /api/v1/assessments), not in the frame")
    given = {}
    for key, value in data.items():  # control characters dropped as in every text a user gives the server
        if isinstance(value, str):
            value = clean_text(value, 1000)
        elif isinstance(value, list):
            value = [clean_text(v, 1000) if isinstance(v, str) else v for v in value]
        if value is not None and value != [] and not (isinstance(value, str) and not value.strip()):
            given[key] = value
    try:
        return check_frame(given, path="frame")
    except DataError as exc:
        raise bad_request("bad_frame", exc.message)


def _nearest(conn, org):
    f = db.assessment_frames
    rows = conn.execute(select(f).where(f.c.org_path.in_(org_ancestors(org)))).mappings().all()
    if not rows:
        return None
    row = max(rows, key=lambda r: len(r["org_path"]) if r["org_path"] != "/" else 0)
    return {"org": row["org_path"], "frame": loads(row["frame"], {}) or {}, "updated_at": row["updated_at"],
            "updated_by": row["updated_by"]}


def effective_frame(conn, org_path, *, scope):
    """The frame that applies to an object at ``org_path`` (inside ``scope``): the nearest one up
    the org tree, {org, frame, updated_at, updated_by}, or None."""
    check(scope)
    scope.require(org_path, "org unit")
    path = normalise_org(org_path)
    return _nearest(conn, path) if path else None


def get_frame(engine, org, *, scope):
    """{org, own: frame set at this unit or None, effective: the nearest frame up the tree or None}."""
    check(scope)
    path = _org(scope, org)
    with engine.connect() as conn:
        near = _nearest(conn, path)
    own = near if near is not None and near["org"] == path else None
    return {"org": path, "own": own, "effective": near, "fields": list(FRAME_FIELDS)}


def set_frame(engine, org, data, actor, ip=None, *, scope, role):
    """Set (or, with every field empty, remove) the frame of one org unit; returns ``get_frame``."""
    check(scope)
    path = _org(scope, org)  # outside the scope: 404 whatever the role
    if role not in EDITOR_ROLES:
        raise forbidden("forbidden", "your role (%s) may not set the assessment frame" % role)
    frame = validate(data)
    f = db.assessment_frames
    t = now()
    with db.write_tx(engine) as conn:
        old = conn.execute(select(f.c.frame).where(f.c.org_path == path)).scalar()
        if not frame:
            if old is not None:
                conn.execute(delete(f).where(f.c.org_path == path))
                audit(conn, actor, "frame.clear", path, {"before": loads(old, {})}, ip, org=path)
        elif old is None:
            conn.execute(insert(f).values(org_path=path, frame=dumps(frame), updated_at=t, updated_by=actor))
            audit(conn, actor, "frame.set", path, {"frame": frame}, ip, org=path)
        else:
            conn.execute(update(f).where(f.c.org_path == path).values(frame=dumps(frame), updated_at=t, updated_by=actor))
            audit(conn, actor, "frame.set", path, {"frame": frame, "before": loads(old, {})}, ip, org=path)
    return get_frame(engine, path, scope=scope)


def apply_frame(doc, frame):
    """Put the server's frame on a report document (in place): its fields replace the report's own,
    field by field; the report's other fields (and its manual verdicts) stay."""
    if not frame or not isinstance(doc, dict):
        return doc
    merged = dict(doc.get("assessment")) if isinstance(doc.get("assessment"), dict) else {}
    merged.update(dict((k, v) for k, v in frame.items() if k in FRAME_FIELDS))
    doc["assessment"] = merged
    return doc
