"""Compacted storage of the signed report bodies: a full body per host now and then (a *base*), and
every other report of the host as a zstd delta against its base.

Intake stays at its floor: it stores the exact signed body gzip-compressed in ``reports.body_gz``
(``body_kind`` 0, "inline"), as before. The retention job (store/retention.py, one node at a time)
then compacts: for each host, in collected order, a report's body becomes

- a delta (``report_bodies``): zstd with the host's current base body as a raw-content dictionary
  (what ``zstd --patch-from`` does); a day's report of a host whose facts change a little is a few
  hundred bytes instead of ~80 KB of gzip;
- or a new base (``report_bases``, zstd at a high level) when the host has none yet, when the
  delta would be more than ``REBASE_SHARE`` of what the body alone compresses to (the host changed a
  lot since its base was taken), or when the base is more than ``REBASE_AGE`` older than the report
  (deltas grow with the days since their base). A new base is itself stored as a delta against a *root* — a base
  stored whole, any host's, the nearest in size of the newest few — when that delta is at most
  ``REBASE_SHARE`` of the root's size (hosts of one build share most of their report), else whole
  (it is then a root). Chains are one level deep: report -> its base -> a root.

``body_kind`` is then 1 and ``body_gz`` empty. Every body is decompressed again before its row is
written and compared with the report's SHA-256 (of the exact signed bytes), and so is every body
read back (``load``): a damaged delta or base is an error the reader reports (``Corrupt``), never a
silently different body. A body that does not match its digest when compacted is left inline.

On PostgreSQL ``report_bodies`` is range-partitioned by ``collected_at``, one partition a day (UTC,
``report_bodies_d<unix day>``, created by the job before it writes into a day, moving any rows the
default partition holds for that day), so retention drops whole partitions instead of deleting rows
(store/retention.py). ``report_bases`` is a plain table on both: a base lives as long
as a kept delta refers to it, it is its host's current base, or its own report is kept.
SQLite keeps a plain ``report_bodies`` and retention deletes its rows.
"""
from __future__ import annotations

import hashlib

from sqlalchemy import and_, func, select, tuple_, update

from scanner.server.store import db, jsondoc
from scanner.server.store.reports import MAX_STORED, inflate

INLINE, STORED, DROPPED = 0, 1, 2  # reports.body_kind
PART = 86400  # report_bodies partitions on PostgreSQL: a day each (UTC)
BASE_LEVEL = 19  # a base is written once per host and rebase; reading it costs the same at any level
DELTA_LEVEL = 3  # deltas are small whatever the level (measured: 133-773 B at 3, 153-567 B at 19)
REBASE_SHARE = 0.25
REBASE_AGE = 30 * 86400  # a report collected this long after its host's base: a new base (deltas stay small)
ROOTS = 4  # the newest whole bases a new base is tried against (two nearest in size)
BATCH = 100  # reports read (gzip bodies) per step


class Corrupt(jsondoc.Unreadable):
    """A compacted body that does not reconstruct to the bytes the report's SHA-256 names."""


class _Raced(Exception):
    pass


def _zstd():
    import zstandard
    return zstandard


def _dict(raw):
    z = _zstd()
    return z.ZstdCompressionDict(raw, dict_type=z.DICT_TYPE_RAWCONTENT)


def _decompress(data, raw_base=None, zdict=None):
    z = _zstd()
    if raw_base is not None and zdict is None:
        zdict = _dict(raw_base)
    try:
        d = z.ZstdDecompressor(dict_data=zdict) if zdict is not None else z.ZstdDecompressor()
        return d.decompress(data, max_output_size=MAX_STORED)
    except z.ZstdError as exc:
        raise Corrupt("stored zstd data is corrupt: %s" % exc)


def _digest(raw):
    return hashlib.sha256(raw).hexdigest()


# --- reading -----------------------------------------------------------------------------------------
def _base_rows(conn, ids):
    b, r = db.report_bases, db.reports
    out = {}
    for i in range(0, len(ids), 500):
        q = select(b.c.report_id, b.c.data, r.c.sha256, b.c.parent_id).select_from(
            b.join(r, r.c.id == b.c.report_id)).where(b.c.report_id.in_(ids[i:i + 500]))
        out.update({row[0]: (row[1], row[2], row[3]) for row in conn.execute(q)})
    return out


class _Bases(object):
    """Base bodies read and checked once per call, by report id."""

    def __init__(self, conn):
        self.conn = conn
        self.raw = {}

    def get(self, base_id, child=False):
        """(raw body, dictionary) of a base; a base made against a root is rebuilt from it (one level)."""
        if base_id not in self.raw:
            got = _base_rows(self.conn, [base_id]).get(base_id)
            if got is None:
                self.raw[base_id] = Corrupt("base body %s is missing" % base_id)
            else:
                data, sha, parent = got
                try:
                    if parent is not None and child:
                        raise Corrupt("it is made against another base (%s), itself made against one" % parent)
                    raw = _decompress(data, zdict=self.get(parent, child=True)[1] if parent is not None else None)
                    if _digest(raw) != sha:
                        raise Corrupt("it does not match its report's SHA-256")
                    self.raw[base_id] = (raw, _dict(raw), len(data))
                except jsondoc.Unreadable as exc:
                    self.raw[base_id] = Corrupt("base body %s is unreadable (%s)" % (base_id, exc))
        got = self.raw[base_id]
        if isinstance(got, Exception):
            raise got
        return got


def load(conn, rows):
    """For each row (a dict with id, sha256, collected_at, body_kind and pruned_at) whose body is compacted,
    set ``row["body"]`` to the exact signed bytes, or ``row["body_error"]`` to the Corrupt/Unreadable
    saying why they cannot be had. Other rows are left as they are. Returns ``rows``."""
    want = [row for row in rows if row.get("body_kind") == STORED and not row.get("pruned_at")]
    if not want:
        return rows
    ids = [row["id"] for row in want]
    bases = _base_rows(conn, ids)
    deltas = {}
    d = db.report_bodies
    rest = [row for row in want if row["id"] not in bases]
    for i in range(0, len(rest), 500):
        part = rest[i:i + 500]
        q = select(d.c.report_id, d.c.base_id, d.c.data).where(
            d.c.report_id.in_([row["id"] for row in part]),
            d.c.collected_at.in_(sorted({row["collected_at"] for row in part})))  # partition pruning
        deltas.update({row[0]: (row[1], row[2]) for row in conn.execute(q)})
    cache = _Bases(conn)
    for row in want:
        try:
            if row["id"] in bases:
                raw = cache.get(row["id"])[0]
            elif row["id"] in deltas:
                base_id, data = deltas[row["id"]]
                raw = _decompress(data, zdict=cache.get(base_id)[1])
            else:
                raise Corrupt("its compacted body is missing from the body store")
            if _digest(raw) != row["sha256"]:
                raise Corrupt("its compacted body does not match the report's SHA-256")
            row["body"] = raw
        except jsondoc.Unreadable as exc:
            row["body_error"] = exc
    return rows


def signed_body(conn, report_id):
    """The exact signed bytes of a stored report (raises Unreadable; reports.Pruned when dropped)."""
    from scanner.server.store.reports import Pruned
    r = db.reports
    row = conn.execute(select(r.c.id, r.c.sha256, r.c.collected_at, r.c.body_kind, r.c.pruned_at, r.c.body_gz)
                       .where(r.c.id == report_id)).mappings().first()
    if row is None:
        raise jsondoc.Unreadable("no report %s" % report_id)
    row = dict(row)
    if row["pruned_at"]:
        raise Pruned("the stored body was dropped by the retention setting (report_retention_days)")
    if row["body_kind"] == INLINE:
        return inflate(row["body_gz"])
    load(conn, [row])
    if "body_error" in row:
        raise row["body_error"]
    return row["body"]


# --- compaction --------------------------------------------------------------------------------------
def _limit(raw):
    """A delta larger than this: rebase (a share of what the body alone compresses to, quickly measured)."""
    return REBASE_SHARE * len(_zstd().ZstdCompressor(level=1).compress(raw))


def _current_base(conn, host_id):
    b = db.report_bases
    got = conn.execute(select(b.c.report_id, b.c.collected_at).where(b.c.host_id == host_id)
                       .order_by(b.c.collected_at.desc(), b.c.report_id.desc()).limit(1)).first()
    if got is None:
        return None
    try:
        raw, zdict, _n = _Bases(conn).get(got[0])
    except jsondoc.Unreadable:
        return None  # a damaged base is never built upon: the next report becomes a new base
    return {"id": got[0], "at": got[1], "raw": raw, "dict": zdict, "limit": _limit(raw)}


def _roots(conn, n=ROOTS):
    """The newest readable roots (bases stored whole), any host's: what a new base may be made against."""
    b = db.report_bases
    ids = [x[0] for x in conn.execute(select(b.c.report_id).where(b.c.parent_id.is_(None))
                                      .order_by(b.c.collected_at.desc(), b.c.report_id.desc()).limit(n))]
    cache, out = _Bases(conn), []
    for rid in ids:
        try:
            raw, zdict, stored = cache.get(rid)
        except jsondoc.Unreadable:
            continue
        out.append({"id": rid, "raw": raw, "dict": zdict, "stored": stored})
    return out


def _full(raw):
    data = _zstd().ZstdCompressor(level=BASE_LEVEL).compress(raw)
    if _decompress(data) != raw:  # never store what does not read back
        raise Corrupt("a base did not read back")
    return data


def _make_base(raw, roots):
    """(data, parent id or None): the body as a delta against the root nearest in size when that is at most
    REBASE_SHARE of the root's own stored size (hosts of one build share most of their report), else whole
    (then it is a root itself and joins ``roots``)."""
    zc = _zstd().ZstdCompressor
    for root in sorted(roots, key=lambda x: abs(len(x["raw"]) - len(raw)))[:2]:
        delta = zc(level=DELTA_LEVEL, dict_data=root["dict"]).compress(raw)  # 117 B at 3, 140 at 19 (35x the CPU)
        if len(delta) <= REBASE_SHARE * root["stored"] and _decompress(delta, zdict=root["dict"]) == raw:
            return delta, root["id"]
    return _full(raw), None


def compact(engine, batch=BATCH):
    """Move every inline body into the body store (see the module docstring). The caller holds the job
    (store/retention.py ``prune``; a second node at the same time finds the bodies claimed and stops).
    Returns {"compacted", "bases", "unreadable", "bytes_before", "bytes_after"}."""
    r = db.reports
    out = {"compacted": 0, "bases": 0, "unreadable": 0, "bytes_before": 0, "bytes_after": 0}
    after = None
    base = None
    roots = None
    pg = engine.dialect.name == "postgresql"
    zc = _zstd().ZstdCompressor
    while True:
        q = select(r.c.id, r.c.host_id, r.c.collected_at, r.c.sha256, r.c.body_gz).where(
            r.c.body_kind == INLINE, r.c.pruned_at.is_(None))
        if after is not None:
            q = q.where(tuple_(r.c.host_id, r.c.collected_at, r.c.id) > tuple_(*after))
        with engine.connect() as conn:
            rows = conn.execute(q.order_by(r.c.host_id, r.c.collected_at, r.c.id).limit(batch)).all()
            if not rows:
                break
            new_bases, new_deltas, done = [], [], []
            if roots is None:
                roots = _roots(conn)
            for rid, host_id, collected_at, sha, gz in rows:
                after = (host_id, collected_at, rid)
                if base is None or base["host"] != host_id:
                    base = _current_base(conn, host_id) or {"id": None}
                    base["host"] = host_id
                try:
                    raw = inflate(gz)
                except jsondoc.Unreadable:
                    out["unreadable"] += 1
                    continue
                if _digest(raw) != sha:
                    out["unreadable"] += 1
                    continue
                delta = None
                if base["id"] is not None and abs(collected_at - base["at"]) <= REBASE_AGE:
                    delta = zc(level=DELTA_LEVEL, dict_data=base["dict"]).compress(raw)
                    if len(delta) > base["limit"] or _decompress(delta, zdict=base["dict"]) != raw:
                        delta = None
                if delta is None:
                    data, parent = _make_base(raw, roots)
                    new_bases.append({"report_id": rid, "host_id": host_id, "collected_at": collected_at,
                                      "size": len(raw), "data": data, "parent_id": parent})
                    base = {"id": rid, "at": collected_at, "raw": raw, "dict": _dict(raw), "limit": _limit(raw),
                            "host": host_id}
                    if parent is None:
                        roots.insert(0, {"id": rid, "raw": raw, "dict": base["dict"], "stored": len(data)})
                        del roots[ROOTS:]
                    out["bases"] += 1
                    out["bytes_after"] += len(data)
                else:
                    new_deltas.append({"report_id": rid, "host_id": host_id, "collected_at": collected_at,
                                       "base_id": base["id"], "size": len(raw), "data": delta})
                    out["bytes_after"] += len(delta)
                out["bytes_before"] += len(gz)
                done.append(rid)
        if done:
            try:
                with db.write_tx(engine) as conn:
                    # the rows are claimed first: a body another node compacted meanwhile is never written twice
                    got = conn.execute(update(r).where(r.c.id.in_(done), r.c.body_kind == INLINE)
                                       .values(body_kind=STORED, body_gz=b"")).rowcount
                    if got != len(done):
                        raise _Raced()
                    if pg and new_deltas:
                        ensure_partitions(conn, {x["collected_at"] // PART for x in new_deltas})
                    if new_bases:
                        conn.execute(db.report_bases.insert(), new_bases)
                    if new_deltas:
                        conn.execute(db.report_bodies.insert(), new_deltas)
            except _Raced:  # nothing of this step is kept; the other node carries on
                out["raced"] = True
                break
            out["compacted"] += len(done)
        if len(rows) < batch:
            break
    return out


# --- PostgreSQL partitions ---------------------------------------------------------------------------
def partitions(conn):
    """[(name, lo, hi)] of report_bodies' daily partitions (PostgreSQL), oldest first."""
    rows = conn.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'report_bodies'").all()
    out = []
    for (name,) in rows:
        if name.startswith("report_bodies_d") and name[len("report_bodies_d"):].isdigit():
            day = int(name[len("report_bodies_d"):])
            out.append((name, day * PART, (day + 1) * PART))
    return sorted(out, key=lambda x: x[1])


ATTACH_WAIT_MS = 5000  # how long a partition's attach may wait for the locks it needs (see ensure_partitions)


def ensure_partitions(conn, days):
    """Create the daily partitions of ``days`` (unix day numbers) that do not exist yet; rows the
    default partition holds for such a day move into it (the attach checks none are left).

    Attaching takes an exclusive lock on the default partition, so it waits for every open reader of
    report_bodies and, while it waits, readers queue behind it. It waits at most ``ATTACH_WAIT_MS``: a
    day it could not attach is left as it was (its rows go to the default partition, where they read
    and are pruned like the others) and is attached by a later run. Returns the days attached."""
    from sqlalchemy.exc import OperationalError
    have = {name for name, _lo, _hi in partitions(conn)}
    # and the days an earlier run could not attach (the default partition is empty otherwise)
    days = set(days) | {int(x[0]) for x in conn.exec_driver_sql(
        "SELECT DISTINCT collected_at / %d FROM report_bodies_default" % PART)}
    attached = []
    for day in sorted(days):
        name = "report_bodies_d%d" % int(day)
        if name in have:
            continue
        lo, hi = int(day) * PART, (int(day) + 1) * PART
        before = conn.exec_driver_sql("SHOW lock_timeout").scalar()
        try:
            with conn.begin_nested():   # a savepoint: a timeout undoes this day only
                conn.exec_driver_sql("SELECT set_config('lock_timeout', '%dms', true)" % int(ATTACH_WAIT_MS))
                conn.exec_driver_sql("CREATE TABLE %s (LIKE report_bodies INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                                     % name)
                conn.exec_driver_sql("WITH moved AS (DELETE FROM report_bodies_default WHERE collected_at >= %d AND "
                                     "collected_at < %d RETURNING *) INSERT INTO %s SELECT * FROM moved"
                                     % (lo, hi, name))
                conn.exec_driver_sql("ALTER TABLE report_bodies ATTACH PARTITION %s FOR VALUES FROM (%d) TO (%d)"
                                     % (name, lo, hi))
                conn.exec_driver_sql("SELECT set_config('lock_timeout', %s, true)", (before,))
        except OperationalError as exc:
            if getattr(getattr(exc, "orig", None), "sqlstate", None) != "55P03":  # lock_not_available
                raise
            continue
        have.add(name)
        attached.append(day)
    return attached


def stored_bytes(conn):
    """Bytes of compacted bodies (bases and deltas) and of inline ones."""
    r, b, d = db.reports, db.report_bases, db.report_bodies
    return {"bases": conn.execute(select(func.coalesce(func.sum(func.length(b.c.data)), 0))).scalar(),
            "deltas": conn.execute(select(func.coalesce(func.sum(func.length(d.c.data)), 0))).scalar(),
            "inline": conn.execute(select(func.coalesce(func.sum(func.length(r.c.body_gz)), 0))
                                   .where(r.c.body_kind == INLINE)).scalar()}


def latest_ids():
    """The reports hosts' latest state comes from (never dropped by retention)."""
    h, hp = db.hosts, db.host_profiles
    return select(h.c.latest_report_id).where(h.c.latest_report_id.is_not(None)).union(select(hp.c.report_id))


def materialize(conn, report_ids):
    """Make the compacted bodies of ``report_ids`` bases of their own (full bodies in report_bases), so that
    retention may drop the deltas they were stored as. Returns how many moved; a body that cannot be
    reconstructed is left where it is (and reads as Corrupt)."""
    r, b = db.reports, db.report_bases
    ids = list(report_ids)
    if not ids:
        return 0
    have = {x[0] for x in conn.execute(select(b.c.report_id).where(b.c.report_id.in_(ids)))}
    rows = [dict(x) for x in conn.execute(select(r.c.id, r.c.host_id, r.c.sha256, r.c.collected_at, r.c.body_kind,
                                                 r.c.pruned_at).where(r.c.id.in_([i for i in ids if i not in have]),
                                                                      r.c.body_kind == STORED)).mappings()]
    load(conn, rows)
    new = [{"report_id": x["id"], "host_id": x["host_id"], "collected_at": x["collected_at"], "size": len(x["body"]),
            "data": _full(x["body"]), "parent_id": None} for x in rows if "body" in x]
    if new:
        conn.execute(b.insert(), new)
    return len(new)


def unused_bases(cutoff):
    """Bases retention may drop: older than ``cutoff``, no delta or other base refers to them, not their
    host's newest, and their report is not one a host's latest state comes from."""
    b, d = db.report_bases, db.report_bodies
    newer = db.report_bases.alias("newer")
    child = db.report_bases.alias("child")
    return and_(b.c.collected_at < cutoff,
                ~select(d.c.report_id).where(d.c.base_id == b.c.report_id).exists(),
                ~select(child.c.report_id).where(child.c.parent_id == b.c.report_id).exists(),
                select(newer.c.report_id).where(newer.c.host_id == b.c.host_id,
                                                newer.c.collected_at > b.c.collected_at).exists(),
                b.c.report_id.not_in(latest_ids()))
