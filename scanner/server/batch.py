"""Batched report storage: the reports that arrive while one transaction commits are stored
together in the next one, with one statement per table instead of one per report and row.

Every report is still acknowledged only after the transaction holding it has committed. If a
batch fails (e.g. two worker processes racing on the same report id), each of its reports is
retried alone, so one bad neighbour never fails the others.
"""
from __future__ import annotations

import collections
import queue
import threading
from concurrent.futures import Future

from sqlalchemy import delete, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from scanner.server import db
from scanner.server.errors import ApiError
from scanner.server.waivers import active_waivers, attach_from

Item = collections.namedtuple("Item", "report_id host_id received_at collected_at derived body_gz size sha256")
MAX_BATCH = 64


def _ack(report_id, host_id, received_at):
    from scanner.server.ingest import ack
    return ack(report_id, host_id, received_at)


def _dedupe(row, host_id):
    if row["host_id"] != host_id:
        return ApiError(409, "report_id_conflict", "this report_id was already submitted by another host")
    return _ack(row["id"], row["host_id"], row["received_at"])


_PG_TYPES = {"VARCHAR": "text", "TEXT": "text", "INTEGER": "int4", "BIGINT": "int8", "FLOAT": "float8"}


def bulk_insert(conn, table, rows):
    """Insert many rows with one statement. On PostgreSQL: INSERT ... SELECT FROM
    json_to_recordset(one JSON parameter) — fixed statement text (parsed and planned once) and
    the rows encoded in C; elsewhere the driver's executemany (sqlite3 runs it in C)."""
    if not rows:
        return
    cols = [col for col in table.columns if col.name in rows[0]]
    types = [_PG_TYPES.get(col.type.compile(conn.dialect).split("(")[0]) for col in cols]
    if conn.dialect.name != "postgresql" or len(rows) == 1 or None in types:
        conn.execute(insert(table), rows)  # e.g. reports: bytea does not travel in JSON
        return
    from sqlalchemy import text
    from scanner.server.util import dumps
    names = ", ".join(c.name for c in cols)
    sql = "INSERT INTO %s (%s) SELECT %s FROM json_to_recordset(CAST(:rows AS json)) AS x(%s)" % (
        table.name, names, names, ", ".join("%s %s" % (c.name, t) for c, t in zip(cols, types)))
    conn.execute(text(sql), {"rows": dumps([{c.name: row.get(c.name) for c in cols} for row in rows])})


def store_batch(conn, items):
    """Store ``items`` in the caller's transaction; return one ack dict or ApiError per item."""
    r, h, hp, c, res = db.reports, db.hosts, db.host_profiles, db.components, db.results
    seen = {row.id: dict(row._mapping) for row in conn.execute(
        select(r.c.id, r.c.host_id, r.c.received_at).where(r.c.id.in_(sorted({i.report_id for i in items}))))}
    host_ids = sorted({i.host_id for i in items})
    hosts = {row.id: dict(row._mapping) for row in conn.execute(
        select(h.c.id, h.c.latest_collected, h.c.org_path).where(h.c.id.in_(host_ids)).order_by(h.c.id).with_for_update())}
    profiles = {(row.host_id, row.profile): row.collected_at for row in conn.execute(
        select(hp.c.host_id, hp.c.profile, hp.c.collected_at).where(hp.c.host_id.in_(host_ids)))}
    failing = {x["rule_id"] for i in items for x in (i.derived["results"] or ()) if x["status"] == "fail"}
    candidates = active_waivers(conn, failing) if failing else []

    in_db = set(profiles)
    out, new_reports, host_values, comps, hp_rows, results = [], [], {}, {}, {}, {}
    for it in items:
        prior = seen.get(it.report_id)
        if prior is not None:
            out.append(_dedupe(prior, it.host_id))
            continue
        seen[it.report_id] = {"id": it.report_id, "host_id": it.host_id, "received_at": it.received_at}
        d = it.derived
        new_reports.append({"id": it.report_id, "host_id": it.host_id, "received_at": it.received_at,
                            "collected_at": it.collected_at, "profile": d["profile"], "score": d["score"],
                            "loc_rate": d["loc_rate"], "fail_count": d["fail_count"], "size": it.size,
                            "sha256": it.sha256, "body_gz": it.body_gz})
        host = hosts[it.host_id]
        values = host_values.setdefault(it.host_id, {})
        values["last_seen"] = it.received_at
        if host["latest_collected"] is None or it.collected_at >= host["latest_collected"]:
            host["latest_collected"] = it.collected_at
            counts = d["counts"]
            values.update(latest_report_id=it.report_id, latest_collected=it.collected_at, os_name=d["os_name"],
                          os_family=d["os_family"], loc_domestic=counts["domestic"], loc_foreign=counts["foreign"],
                          loc_unknown=counts["unknown"], loc_rate=d["loc_rate"])
            comps[it.host_id] = [dict(x, host_id=it.host_id) for x in d["components"]]
        row = d["profile_row"]
        if row is not None:
            key = (it.host_id, row["profile"])
            current = profiles.get(key)
            if current is None or it.collected_at >= current:
                profiles[key] = it.collected_at
                hp_rows[key] = dict(row, host_id=it.host_id, report_id=it.report_id, collected_at=it.collected_at,
                                    existed=key in in_db)
                rows = [dict(x, host_id=it.host_id, profile=row["profile"], waiver_id=None, waiver_until=None)
                        for x in d["results"]]
                attach_from(candidates, it.host_id, host["org_path"], rows)
                results[key] = rows
        out.append(_ack(it.report_id, it.host_id, it.received_at))

    bulk_insert(conn, r, new_reports)
    if comps:
        conn.execute(delete(c).where(c.c.host_id.in_(sorted(comps))))
        bulk_insert(conn, c, [x for host_id in sorted(comps) for x in comps[host_id]])
    for host_id in sorted(host_values):
        conn.execute(update(h).where(h.c.id == host_id).values(**host_values[host_id]))
    fresh = [dict((k, v) for k, v in row.items() if k != "existed") for row in hp_rows.values() if not row["existed"]]
    bulk_insert(conn, hp, fresh)
    for (host_id, profile), row in sorted(hp_rows.items()):
        if row["existed"]:
            values = dict((k, v) for k, v in row.items() if k not in ("existed", "host_id", "profile"))
            conn.execute(update(hp).where(hp.c.host_id == host_id, hp.c.profile == profile).values(**values))
    if results:
        # host_id IN (...) lets both databases use the index; a row-value IN alone makes SQLite
        # scan the whole table
        keys = sorted(results)
        conn.execute(delete(res).where(res.c.host_id.in_(sorted({k[0] for k in keys})),
                                       tuple_(res.c.host_id, res.c.profile).in_(keys)))
        bulk_insert(conn, res, [x for key in sorted(results) for x in results[key]])
    return out


class BatchWriter(object):
    """One writer thread per process; ``write(item)`` blocks until the item's batch committed."""

    def __init__(self, engine, max_batch=MAX_BATCH):
        self.engine = engine
        self.max_batch = max_batch
        self.queue = queue.Queue()
        self.thread = None
        self.lock = threading.Lock()

    def write(self, item):
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="xcscan-batch-writer", daemon=True)
                self.thread.start()
        fut = Future()
        self.queue.put((item, fut))
        result = fut.result()
        if isinstance(result, Exception):
            raise result
        return result

    def _run(self):
        while True:
            batch = [self.queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with db.write_tx(self.engine) as conn:
                    outs = store_batch(conn, [item for item, _f in batch])
            except Exception:  # noqa: BLE001 - retried one by one below
                for item, fut in batch:
                    fut.set_result(self._single(item))
                continue
            for (_item, fut), result in zip(batch, outs):
                fut.set_result(result)

    def _single(self, item):
        try:
            with db.write_tx(self.engine) as conn:
                return store_batch(conn, [item])[0]
        except IntegrityError:
            with self.engine.connect() as conn:  # a concurrent process stored the same report id first
                row = conn.execute(select(db.reports.c.id, db.reports.c.host_id, db.reports.c.received_at)
                                   .where(db.reports.c.id == item.report_id)).mappings().first()
            if row is None:
                return RuntimeError("could not store report %s" % item.report_id)
            return _dedupe(dict(row), item.host_id)
        except Exception as exc:  # noqa: BLE001 - surfaces as a generic 500 for this request only
            return exc
