"""The audit log: one row per action of a person or an agent that changed something."""
from __future__ import annotations

import threading
import time

from sqlalchemy import insert

from scanner.server.store import db
from scanner.server.util import clean_text, dumps, now


def audit(conn, actor, action, target=None, detail=None, ip=None, org=None):
    """``org``: the department the action concerns; a scoped reader of the audit log sees the
    entries inside their subtrees (and their own), a global reader sees all."""
    conn.execute(insert(db.audit_log).values(
        at=now(), actor=actor or "-", action=action, target=clean_text(target, 512),
        detail=dumps(detail) if detail is not None else None, ip=clean_text(ip, 64), org_path=clean_text(org, 512)))


class SecurityEvents(object):
    """Refused reports and enrollments (forged signatures, stale timestamps, unknown hosts, unknown,
    expired, revoked or used-up tokens ...) into the audit log, at most ``per_minute`` entries a
    minute per action and client address: a flood cannot fill the disk. What was left out is
    counted in the next entry that is written (``detail.suppressed``)."""

    def __init__(self, per_minute=20, max_keys=10000):
        self.per_minute = per_minute
        self.max_keys = max_keys
        self.lock = threading.Lock()
        self.windows = {}  # (action, ip) -> [window start, written, suppressed]

    def admit(self, action, ip, t=None):
        """None: leave this one out; else the number suppressed since the last written entry."""
        t = time.monotonic() if t is None else t
        key = (action, ip)
        with self.lock:
            w = self.windows.get(key)
            if w is None or t - w[0] >= 60:
                if len(self.windows) >= self.max_keys:
                    self.windows.clear()
                suppressed = w[2] if w else 0
                self.windows[key] = [t, 1, 0]
                return suppressed
            if w[1] >= self.per_minute:
                w[2] += 1
                return None
            w[1] += 1
            suppressed, w[2] = w[2], 0
            return suppressed

    def record(self, engine, action, code, ip, detail=None, org=None):
        suppressed = self.admit(action, ip)
        if suppressed is None:
            return False
        from scanner.server.store import db as _db
        detail = dict(detail or {}, code=code)
        if suppressed:
            detail["suppressed"] = suppressed
        with _db.write_tx(engine) as conn:
            audit(conn, "-", action, code, detail, ip, org=org)
        return True
