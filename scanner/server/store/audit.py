"""The audit log: one row per action of a person or an agent that changed something."""
from __future__ import annotations

from sqlalchemy import insert

from scanner.server.store import db
from scanner.server.util import clean_text, dumps, now


def audit(conn, actor, action, target=None, detail=None, ip=None):
    conn.execute(insert(db.audit_log).values(
        at=now(), actor=actor or "-", action=action, target=clean_text(target, 512),
        detail=dumps(detail) if detail is not None else None, ip=clean_text(ip, 64)))
