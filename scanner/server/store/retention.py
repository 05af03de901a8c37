"""Retention of stored report bodies (setting ``report_retention_days``; 0 keeps every body).

A report older than the retention period keeps its row — received and collected times, profile,
score, localization rate, failure count, size and the SHA-256 of the signed body — so the host's
history, trends and roll-ups are unchanged; its stored body (the signed document, gzip) and any
re-evaluated document are dropped and ``pruned_at`` is set. The report a host's latest state came
from (hosts.latest_report_id, host_profiles.report_id) is never pruned, however old. Reading a
pruned report answers 410 (store/reports.py); re-evaluation skips it.

``prune`` runs in batches, each its own transaction, under a PostgreSQL advisory lock (job 2) so
that when several server nodes or cron jobs start it at once, one does the work and the others
return at once (SQLite: the write transaction serializes them).
"""
from __future__ import annotations

from sqlalchemy import and_, func, select, text, update

from scanner.server.store import db
from scanner.server.util import now

LOCK_KEY = 0x78637363616E0002  # pg advisory lock id: "xcscan" + job 2
BATCH = 2000


def _candidates(cutoff):
    r, h, hp = db.reports, db.hosts, db.host_profiles
    return and_(r.c.collected_at < cutoff, r.c.pruned_at.is_(None),
                r.c.id.not_in(select(h.c.latest_report_id).where(h.c.latest_report_id.is_not(None))),
                r.c.id.not_in(select(hp.c.report_id)))


def prune(engine, days, t=None, batch=BATCH):
    """Drop the bodies of reports collected more than ``days`` days ago (see the module docstring).
    Returns {"reports": pruned, "bytes": stored body bytes freed, "skipped": True when another
    node holds the job}."""
    if not days or days <= 0:
        return {"reports": 0, "bytes": 0, "skipped": False}
    t = now() if t is None else t
    cutoff = t - int(days) * 86400
    r = db.reports
    total = freed = 0
    pg = engine.dialect.name == "postgresql"
    if pg:  # one node at a time; a session lock spans the batches
        lock_conn = engine.connect()
        if not lock_conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar():
            lock_conn.close()
            return {"reports": 0, "bytes": 0, "skipped": True}
    try:
        while True:
            with db.write_tx(engine) as conn:
                ids = [row[0] for row in conn.execute(select(r.c.id).where(_candidates(cutoff))
                                                      .order_by(r.c.collected_at).limit(batch))]
                if not ids:
                    break
                freed += conn.execute(select(func.coalesce(func.sum(func.length(r.c.body_gz)), 0) +
                                             func.coalesce(func.sum(func.length(r.c.evaluated_gz)), 0))
                                      .where(r.c.id.in_(ids))).scalar() or 0
                conn.execute(update(r).where(r.c.id.in_(ids), r.c.pruned_at.is_(None))
                             .values(body_gz=b"", evaluated_gz=None, pruned_at=t))
                total += len(ids)
            if len(ids) < batch:
                break
    finally:
        if pg:
            lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            lock_conn.close()
    return {"reports": total, "bytes": int(freed), "skipped": False}
