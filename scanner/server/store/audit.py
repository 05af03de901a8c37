"""The audit log: one row per action of a person or an agent that changed something."""
from __future__ import annotations

from sqlalchemy import insert

from scanner.server.store import db
from scanner.server.util import clean_text, dumps, now


def audit(conn, actor, action, target=None, detail=None, ip=None, org=None):
    """``org``: the department the action concerns; a scoped reader of the audit log sees the
    entries inside their subtrees (and their own), a global reader sees all."""
    conn.execute(insert(db.audit_log).values(
        at=now(), actor=actor or "-", action=action, target=clean_text(target, 512),
        detail=dumps(detail) if detail is not None else None, ip=clean_text(ip, 64), org_path=clean_text(org, 512)))
