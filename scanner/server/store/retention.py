"""Retention of stored report bodies (setting ``report_retention_days``; 0 keeps every body), and the
compaction of new bodies into deltas (store/bodies.py) that runs before it.

A report older than the retention period keeps its row — received and collected times, profile,
score, localization rate, failure count, size and the SHA-256 of the signed body: the daily summary
of the host's history, so trends and roll-ups are unchanged; its stored body (the signed document)
and any re-evaluated document are dropped, ``pruned_at`` is set and ``body_kind`` is 2. The reports
a host's latest state came from (hosts.latest_report_id, host_profiles.report_id) are never pruned,
however old. Reading a pruned report answers 410 (store/reports.py); re-evaluation skips it. With
daily summaries (setting ``report_daily_summaries``, on by default) a host that reports more than once
a day keeps, past the period, only the row of its last report of each UTC day and profile: the rows
the daily roll-ups read (store/rollups.py), so trends are the same; the others are deleted. The
(host, day) pairs pruned wait in ``summary_pending`` (written in the transaction that drops the bodies,
deleted in the one that summarizes the day), so a day pruned while the setting was off, or by a run
stopped between the two steps, is summarized by the next run that has the setting on.

Bodies go by whole UTC days: the cutoff is the start of the day ``report_retention_days`` days
ago, so a body is kept between N and N + 1 days (the same on both databases). Where the bodies are
decides how they go:
- deltas (``report_bodies``): on PostgreSQL a day's partition older than the cutoff is dropped
  (DROP TABLE: no row deletes, no dead rows, no vacuum), after the few bodies in it that must stay
  (a latest-state report of a host that went silent) were made bases of their own. Rows of the
  default partition, and the rows on SQLite, are deleted.
- bases (``report_bases``): dropped when older than the cutoff, no kept delta refers to them, a newer
  base of their host exists and no latest state comes from them; otherwise kept (and readable).
- bodies still inline (``body_gz``; compaction did not run or could not read them): blanked.

Change records (``result_changes``, ``component_changes``: the change feed's rows, store/changes.py)
go by the setting ``change_retention_days`` (its own period, longer than the bodies' as a rule: the
feed compares windows months apart): the rows stamped before the start of the UTC day that many days
ago are deleted, a batch a transaction, and ``change_epoch`` moves to that day, so a feed of an
earlier window says from when it knows (as after an upgrade with history).

``run`` (the server's job and `xcscan server prune`) compacts, then prunes, under a PostgreSQL
advisory lock (job 2) so that when several server nodes or cron jobs start it at once, one does the
work and the others return at once (SQLite: the write transactions serialize them, and a body is
compacted once: the update that records it checks it is still inline).
"""
from __future__ import annotations

import contextlib

from sqlalchemy import and_, column, delete, func, insert, select, table as sa_table, text, tuple_, update

from scanner.server.store import bodies, db
from scanner.server.util import now

LOCK_KEY = 0x78637363616E0002  # pg advisory lock id: "xcscan" + job 2
BATCH = 2000


@contextlib.contextmanager
def one_node(engine):
    """Yields True when this node holds the job (PostgreSQL advisory lock; SQLite: always)."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    lock_conn = engine.connect()
    try:
        got = lock_conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
        lock_conn.commit()
        try:
            yield bool(got)
        finally:
            if got:
                lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                lock_conn.commit()
    finally:
        lock_conn.close()


def _table(name):
    return sa_table(name, column("report_id"), column("collected_at"), column("data"))


def _inline_candidates(cutoff):
    r = db.reports
    return and_(r.c.collected_at < cutoff, r.c.pruned_at.is_(None), r.c.body_kind == bodies.INLINE,
                r.c.id.not_in(bodies.latest_ids()))


def prune(engine, days, t=None, batch=BATCH, compact=True, summaries=True, change_days=0):
    """Compact new bodies (``compact``), then drop the bodies of reports collected more than ``days``
    days ago (see the module docstring); with ``summaries``, of the reports that lost their bodies (in
    this run or an earlier one) only each host's last of every UTC day and profile keeps its row (daily
    summaries); then delete the change records older than ``change_days`` days (0: none). Returns
    {"reports": pruned, "bytes": stored body bytes freed, "partitions": partitions dropped,
    "summarized": rows deleted as not the last of their day, "changes": change records deleted,
    "compacted", "bases", "compacted_bytes_before"/"_after", "skipped": True when another node holds
    the job}."""
    with one_node(engine) as mine:
        if not mine:
            return {"reports": 0, "bytes": 0, "changes": 0, "skipped": True}
        out = {"reports": 0, "bytes": 0, "partitions": 0, "summarized": 0, "changes": 0, "skipped": False}
        if compact:
            c = bodies.compact(engine)
            out.update(compacted=c["compacted"], bases=c["bases"], unreadable=c["unreadable"],
                       compacted_bytes_before=c["bytes_before"], compacted_bytes_after=c["bytes_after"])
        if days and days > 0:
            t = now() if t is None else t
            _prune(engine, cutoff_of(t, days), t, batch, out)
        if summaries:  # the days this run pruned, and any an earlier run left pending
            out["summarized"] = _summarize(engine, batch)
        if change_days and change_days > 0:
            out["changes"] = prune_changes(engine, cutoff_of(now() if t is None else t, change_days), batch)
        if engine.dialect.name == "postgresql" and (out.get("compacted") or out["reports"] or out["summarized"]
                                                    or out["changes"]):
            _vacuum(engine, changes=bool(out["changes"]))
        return out


def prune_changes(engine, cutoff, batch=BATCH):
    """Delete the change records stamped before ``cutoff`` (unix seconds), ``batch`` rows a transaction
    (by the ``at`` index, oldest first), and move ``change_epoch`` forward to ``cutoff`` when any went:
    the change feed of a window starting earlier says it knows changes from then on. Returns how many
    rows were deleted."""
    deleted = 0
    for table in (db.result_changes, db.component_changes):
        while True:
            oldest = select(table.c.id).where(table.c.at < cutoff).order_by(table.c.at).limit(batch)
            with db.write_tx(engine) as conn:
                n = conn.execute(delete(table).where(table.c.id.in_(oldest.scalar_subquery()))).rowcount
            deleted += n
            if n < batch:
                break
    if deleted:
        e = db.change_epoch
        with db.write_tx(engine) as conn:
            since = conn.execute(select(e.c.since).where(e.c.id == 1)).scalar()
            if since is None:
                conn.execute(insert(e).values(id=1, since=cutoff))
            elif since < cutoff:
                conn.execute(update(e).where(e.c.id == 1).values(since=cutoff))
    return deleted


def _vacuum(engine, changes=False):
    """The reports rows this run rewrote (each compacted or pruned body is one dead version) and the bases it
    dropped (with ``changes``, the change records it deleted) are made reusable now rather than at
    autovacuum's threshold (20% of a year's reports); VACUUM skips the pages no run touched (the
    visibility map)."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("VACUUM (ANALYZE) reports, report_bases" + (", result_changes, component_changes"
                                                                          if changes else ""))


def cutoff_of(t, days):
    """Bodies of reports collected before this go: the start of the UTC day ``days`` days before ``t``."""
    return (int(t) - int(days) * 86400) // bodies.PART * bodies.PART


def _mark(conn, ids, t):
    """Drop the bodies of the reports ``ids``; their (host, day) pairs wait in summary_pending (same
    transaction) until a run keeps their days as daily summaries."""
    r, p = db.reports, db.summary_pending
    pairs = sorted({(h, at // 86400) for h, at in conn.execute(select(r.c.host_id, r.c.collected_at)
                                                                .where(r.c.id.in_(ids)))})
    if pairs:
        conn.execute(db.insert_new(conn, p, ["host_id", "day"]), [{"host_id": h, "day": day} for h, day in pairs])
    freed = conn.execute(select(func.coalesce(func.sum(func.length(r.c.body_gz)), 0) +
                                func.coalesce(func.sum(func.length(r.c.evaluated_gz)), 0))
                         .where(r.c.id.in_(ids))).scalar() or 0
    n = conn.execute(update(r).where(r.c.id.in_(ids), r.c.pruned_at.is_(None))
                     .values(body_gz=b"", evaluated_gz=None, pruned_at=t, body_kind=bodies.DROPPED)).rowcount
    return n, int(freed)


def _prune(engine, cutoff, t, batch, out):
    r, b, d = db.reports, db.report_bases, db.report_bodies
    pg = engine.dialect.name == "postgresql"
    latest = bodies.latest_ids()
    if pg:  # the days older than the cutoff: drop their partitions
        with engine.connect() as conn:
            old = [p for p in bodies.partitions(conn) if p[2] <= cutoff]
        for name, _lo, _hi in old:
            with db.write_tx(engine) as conn:
                part = _table(name)  # the partition itself
                keep = [x[0] for x in conn.execute(select(part.c.report_id).where(part.c.report_id.in_(latest)))]
                bodies.materialize(conn, keep)
                out["bytes"] += conn.execute(select(func.coalesce(func.sum(func.length(part.c.data)), 0))).scalar()
                ids = [x[0] for x in conn.execute(select(part.c.report_id).where(part.c.report_id.not_in(keep)))]
                for i in range(0, len(ids), batch):
                    n, freed = _mark(conn, ids[i:i + batch], t)
                    out["reports"] += n
                    out["bytes"] += freed
                conn.execute(text("DROP TABLE %s" % name))
                out["partitions"] += 1
        rows_of = _table("report_bodies_default")
    else:
        rows_of = d
    while True:  # delta rows deleted one by one: SQLite, and PostgreSQL's default partition
        with db.write_tx(engine) as conn:
            got = conn.execute(select(rows_of.c.report_id, rows_of.c.collected_at, func.length(rows_of.c.data))
                               .where(rows_of.c.collected_at < cutoff).limit(batch)).all()
            if not got:
                break
            ids = [x[0] for x in got]
            keep = {x[0] for x in conn.execute(select(r.c.id).where(r.c.id.in_(ids), r.c.id.in_(latest)))}
            bodies.materialize(conn, keep)
            conn.execute(delete(rows_of).where(rows_of.c.report_id.in_(ids)))
            drop = [i for i in ids if i not in keep]
            if drop:
                n, freed = _mark(conn, drop, t)
                out["reports"] += n
                out["bytes"] += freed
            out["bytes"] += sum(x[2] for x in got)
        if len(got) < batch:
            break
    while True:  # bases nothing needs any more
        with db.write_tx(engine) as conn:
            got = conn.execute(select(b.c.report_id, func.length(b.c.data)).where(bodies.unused_bases(cutoff))
                               .limit(batch)).all()
            if not got:
                break
            ids = [x[0] for x in got]
            conn.execute(delete(b).where(b.c.report_id.in_(ids)))
            n, freed = _mark(conn, ids, t)
            out["reports"] += n
            out["bytes"] += freed + sum(x[1] for x in got)
        if len(got) < batch:
            break
    while True:  # bodies still inline
        with db.write_tx(engine) as conn:
            ids = [row[0] for row in conn.execute(select(r.c.id).where(_inline_candidates(cutoff))
                                                  .order_by(r.c.collected_at).limit(batch))]
            if not ids:
                break
            n, freed = _mark(conn, ids, t)
            out["reports"] += n
            out["bytes"] += freed
        if len(ids) < batch:
            break


def _summarize(engine, batch):
    """Daily summaries: of each (host, UTC day) whose reports lost their bodies (summary_pending: this
    run's, and any an earlier run left, e.g. while the setting was off or when it stopped between the
    two steps), keep the row of the day's last report of each profile (and so the day's last report:
    what the daily roll-ups read, store/rollups.py, so a recomputed day is the same) and delete the
    other rows whose bodies are gone and that no latest state comes from; the pair leaves
    summary_pending in the same transaction. A host reporting once a day keeps every row."""
    r, p = db.reports, db.summary_pending
    deleted = 0
    while True:
        with db.write_tx(engine) as conn:
            pairs = conn.execute(select(p.c.host_id, p.c.day).order_by(p.c.host_id, p.c.day).limit(batch)).all()
            if not pairs:
                break
            latest = {x[0] for x in conn.execute(bodies.latest_ids())}
            drop = []
            for host_id, day in pairs:
                rows = conn.execute(select(r.c.id, r.c.profile, r.c.collected_at, r.c.body_kind).where(
                    r.c.host_id == host_id, r.c.collected_at >= day * 86400,
                    r.c.collected_at < (day + 1) * 86400)).all()
                last = {}
                for row in rows:
                    k = row.profile or ""
                    if k not in last or (row.collected_at, row.id) > (last[k].collected_at, last[k].id):
                        last[k] = row
                keep = {x.id for x in last.values()}
                drop += [x.id for x in rows if x.id not in keep and x.body_kind == bodies.DROPPED
                         and x.id not in latest]
            for j in range(0, len(drop), 500):
                deleted += conn.execute(delete(r).where(r.c.id.in_(drop[j:j + 500]),
                                                        r.c.body_kind == bodies.DROPPED)).rowcount
            for j in range(0, len(pairs), 500):
                conn.execute(delete(p).where(tuple_(p.c.host_id, p.c.day).in_([tuple(x) for x in pairs[j:j + 500]])))
        if len(pairs) < batch:
            break
    return deleted
