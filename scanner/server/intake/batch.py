"""Batched report storage: the reports that arrive while one transaction commits are stored
together in the next one, with one statement per table instead of one per report and row.

Every report is still acknowledged only after the transaction holding it has committed. If a
batch fails (e.g. two worker processes racing on the same report id), each of its reports is
retried alone, so one bad neighbour never fails the others.
"""
from __future__ import annotations

import collections
import itertools
import operator
import queue
import sys
import threading
import time
from concurrent.futures import Future

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from scanner.server.store import aggregates
from scanner.server.store import changes
from scanner.server.store import db
from scanner.server.store import rawsql
from scanner.server.store import rollups
from scanner.server.errors import ApiError
from scanner.server.util import now
from scanner.server.workflow.waivers import attach_from, is_active

Item = collections.namedtuple("Item", "report_id host_id received_at collected_at derived body_gz size sha256")
MAX_BATCH = 64


def _ack(report_id, host_id, received_at):
    from scanner.server.intake.ingest import ack
    return ack(report_id, host_id, received_at)


def _dedupe(row, host_id):
    if row["host_id"] != host_id:
        return ApiError(409, "report_id_conflict", "this report_id was already submitted by another host")
    return _ack(row["id"], row["host_id"], row["received_at"])


REPORT_COLS = ("id", "host_id", "received_at", "collected_at", "profile", "score", "loc_rate", "fail_count", "size",
               "sha256", "body_gz", "loc_cats")
COMPONENT_COLS = ("host_id", "seq", "category", "product_id", "name_zh", "name_en", "vendor_zh", "vendor_en", "origin",
                  "version", "evidence", "substitutes", "row_hash")
COMPONENT_KEYS = ("host_id", "seq")
HOST_LATEST_COLS = ("last_seen", "latest_report_id", "latest_collected", "os_name", "os_family", "loc_domestic",
                    "loc_foreign", "loc_unknown", "loc_rate")
PROFILE_COLS = ("report_id", "collected_at", "score", "score_without_waivers", "passed", "failed", "errors", "other",
                "waived_n", "waived_score", "waived_min", "waived_max", "fail_weight", "waived_weight")
RESULT_COLS = ("host_id", "profile", "rule_id", "title_zh", "title_en", "category", "severity", "status", "actual",
               "expected", "evidence", "waiver_id", "waiver_until", "row_hash")
RESULT_KEYS = ("host_id", "profile", "rule_id")
# a full row's values in the written column order, read in C (a lazy row makes its texts when first read)
_RESULT_ROW, _COMPONENT_ROW = operator.itemgetter(*RESULT_COLS), operator.itemgetter(*COMPONENT_COLS[1:])
# what is read of the stored latest components: what the writer compares (seq, row_hash) and counts
# (category, origin), and what the change records compare (changes.STORED_COMPONENT_COLS)
STORED_COMPONENT_COLS = ("host_id", "seq", "category", "origin", "row_hash") + tuple(
    k for k in changes.COMP_DETAIL if k != "origin")
_CHANGE_COLS = tuple(STORED_COMPONENT_COLS.index(k) for k in changes.STORED_COMPONENT_COLS)
# what is read of the stored latest results to decide which rows changed and what they counted
STORED_COLS = ("host_id", "profile", "rule_id", "severity", "category", "status", "waiver_id", "waiver_until", "row_hash")
# what the org sums (aggregates.host_share, profile_share) count of a host (after whether it has a latest state) and of a
# host profile: a batch leaving them all as stored need not subtract and add back their share
HOST_ORG_COLS = ("loc_domestic", "loc_foreign", "loc_unknown", "loc_rate")
PROFILE_ORG_COLS = ("score", "score_without_waivers", "passed", "failed", "waived_n", "waived_score", "waived_min",
                    "waived_max")
_PROFILE_ORG_AT = tuple(PROFILE_COLS.index(k) for k in PROFILE_ORG_COLS)
WAIVER_COLS = ("id", "rule_id", "scope", "scope_value", "expires_at", "revoked_at", "state", "items")


def store_batch(conn, items):
    """Store ``items`` in the caller's transaction; return one ack dict or ApiError per item.

    Reads first (known report ids, the hosts locked in id order, their profile rows, the waivers
    that could cover a failure), then decides in Python which report is each host's newest, then
    writes with one statement per table and operation (scanner/server/rawsql.py)."""
    sql = rawsql.for_connection(conn)
    r, h, hp = db.reports, db.hosts, db.host_profiles
    host_ids = sorted({i.host_id for i in items})
    # each report's failed results (what waivers can cover), found once
    failed = {id(i.derived): [x for x in i.derived["results"] or () if x["status"] == "fail"] for i in items}
    failing = sorted({x["rule_id"] for rows in failed.values() for x in rows})
    profiled = sorted({i.host_id for i in items if i.derived["profile_row"] is not None})
    # every read in one round trip (PostgreSQL: pipelined, in this order, so the host rows are locked
    # before their latest-state rows are read)
    reads = sql.select_many([
        (r, ("id", "host_id", "received_at"), "id", sorted({i.report_id for i in items})),
        (h, ("id", "latest_collected", "org_path", "retired_at") + HOST_ORG_COLS, "id", host_ids, True),
        (hp, ("host_id", "profile", "collected_at") + PROFILE_ORG_COLS, "host_id", host_ids),
        (db.components, STORED_COMPONENT_COLS, "host_id", host_ids),
        (db.results, STORED_COLS, "host_id", profiled),
        (db.host_firsts, ("host_id", "first_collected"), "host_id", host_ids),
    ] + ([(db.waivers, WAIVER_COLS, "rule_id", failing)] if failing else []))
    seen = {row[0]: {"id": row[0], "host_id": row[1], "received_at": row[2]} for row in reads[0]}
    firsts = dict(reads[5])
    hosts = {row[0]: {"latest_collected": row[1], "org_path": row[2], "retired_at": row[3],
                      "first_collected": firsts.get(row[0])} for row in reads[1]}
    profiles = {(row[0], row[1]): row[2] for row in reads[2]}
    # what the org sums count of each host and host profile as stored (aggregates.host_share, profile_share)
    org_counted = {row[0]: (row[1] is not None,) + tuple(row[4:]) for row in reads[1]}
    org_counted.update({(row[0], row[1]): tuple(row[3:]) for row in reads[2]})
    stored_comps, stored_results = reads[3], reads[4]
    candidates = []
    if failing:
        t = now()
        candidates = [dict(zip(WAIVER_COLS, row)) for row in reads[6]]
        candidates = [w for w in candidates if is_active(w, t)]

    in_db = set(profiles)
    out, new_reports, host_seen, host_latest, comps, hp_rows, results = [], [], {}, {}, {}, {}, {}
    # each successive latest state this batch gives a host's components and a host profile's results,
    # (collected_at, rows, first report of the host): the change records (store/changes.py)
    comp_states, result_states, host_first = {}, {}, {}
    for it in items:
        if it.host_id not in hosts:  # no host row to lock: nothing of it is written (the rows of a host
            # carry no foreign key, migration 0031; intake checks the sender's key first, so this is a race
            # with a database restored or edited underneath)
            out.append(ApiError(403, "unknown_host", "this host is not enrolled on this aggregator; enroll it again"))
            continue
        if hosts[it.host_id]["retired_at"] is not None:
            out.append(ApiError(403, "host_retired", "this host was retired by the aggregator's administrator; "
                                "enroll it again if it is back in service"))
            continue
        prior = seen.get(it.report_id)
        if prior is not None:
            out.append(_dedupe(prior, it.host_id))
            continue
        seen[it.report_id] = {"id": it.report_id, "host_id": it.host_id, "received_at": it.received_at}
        d = it.derived
        new_reports.append((it.report_id, it.host_id, it.received_at, it.collected_at, d["profile"], d["score"],
                            d["loc_rate"], d["fail_count"], it.size, it.sha256, it.body_gz, d.get("loc_cats")))
        host = hosts[it.host_id]
        host_seen[it.host_id] = it.received_at
        if host["first_collected"] is None or it.collected_at < host["first_collected"]:
            host["first_collected"] = it.collected_at  # the host's first report (the change feed's "joined")
            host_first[it.host_id] = it.collected_at
        fresh = host["latest_collected"] is None  # the host's first report: it joined, no change recorded
        if fresh or it.collected_at >= host["latest_collected"]:
            comp_states.setdefault(it.host_id, []).append((it.collected_at, d["components"], fresh))
            host["latest_collected"] = it.collected_at
            counts = d["counts"]
            host_latest[it.host_id] = (it.report_id, it.collected_at, d["os_name"], d["os_family"], counts["domestic"],
                                       counts["foreign"], counts["unknown"], d["loc_rate"])
            comps[it.host_id] = d["components"]
        row = d["profile_row"]
        if row is not None:
            key = (it.host_id, row["profile"])
            current = profiles.get(key)
            if current is None or it.collected_at >= current:
                profiles[key] = it.collected_at
                rows = LatestResults(it.host_id, row["profile"], d["results"], failed[id(d)], candidates,
                                     host["org_path"])
                results[key] = rows
                result_states.setdefault(key, []).append((it.collected_at, rows, fresh))
                hp_rows[key] = (it.report_id, it.collected_at, row["score"], row["score_without_waivers"],
                                row["passed"], row["failed"], row["errors"], row["other"]) + rows.waived_score()
        out.append(_ack(it.report_id, it.host_id, it.received_at))

    # every write in one round trip (PostgreSQL: pipelined; a large insert is a COPY between two)
    sql.begin_pipeline()
    try:
        _write(conn, sql, items, hosts, in_db, new_reports, host_seen, host_latest, comps, comp_states,
               stored_comps, hp_rows, results, result_states, stored_results, org_counted)
        # a host's first report, or one from a backlog older than it (store/db.py host_firsts)
        moved = sorted(host_first.items())
        sql.insert(db.host_firsts, ("host_id", "first_collected"), [r for r in moved if r[0] not in firsts])
        sql.update(db.host_firsts, ("host_id",), ("first_collected",), [r for r in moved if r[0] in firsts])
    except BaseException:
        sql.end_pipeline(sys.exc_info())
        raise
    sql.end_pipeline()
    return out


def _write(conn, sql, items, hosts, in_db, new_reports, host_seen, host_latest, comps, comp_states,
           stored_comps, hp_rows, results, result_states, stored_results, org_counted):
    r, h, hp = db.reports, db.hosts, db.host_profiles
    sql.insert(r, REPORT_COLS, new_reports)
    if new_reports:  # a report late for a day already rolled up makes that day's roll-up stale
        _invalidate_rollups(conn, sql, min(row[3] for row in new_reports) // rollups.DAY)
    comp_changes = []
    # a host given one inventory whose every row is as stored (seq and digest, as _write_components
    # compares them; the digest covers every field of a component change) records no change
    recorded = [h_id for h_id in comp_states if len(comp_states[h_id]) > 1
                or not _same_components(comp_states[h_id][0][1], h_id, stored_comps)]
    if recorded:
        stored = changes.stored_components(sql, [h_id for h_id in recorded if not comp_states[h_id][0][2]],
                                           rows=[tuple(row[i] for i in _CHANGE_COLS) for row in stored_comps])
        for h_id in sorted(recorded):
            state = stored.get(h_id)
            for at, rows, fresh in comp_states[h_id]:
                new = changes.component_state(rows)
                if not fresh:
                    comp_changes.extend(changes.component_changes(h_id, at, state, new))
                state = new
    _write_components(sql, {h_id: hosts[h_id]["org_path"] for h_id in comps}, comps, stored_comps)
    changed = _org_changed(host_latest, hp_rows, org_counted)
    sql.update(h, ("id",), HOST_LATEST_COLS,
               [(host_id, host_seen[host_id]) + host_latest[host_id] for host_id in sorted(host_latest)])
    sql.update(h, ("id",), ("last_seen",),
               [(host_id, host_seen[host_id]) for host_id in sorted(host_seen) if host_id not in host_latest])
    keys = sorted(hp_rows)
    sql.insert(hp, ("host_id", "profile") + PROFILE_COLS, [k + hp_rows[k] for k in keys if k not in in_db])
    sql.update(hp, ("host_id", "profile"), PROFILE_COLS, [k + hp_rows[k] for k in keys if k in in_db])
    _org_delta(changed, hosts, host_latest, hp_rows, org_counted).write(sql)
    result_changes = _write_results(sql, {h_id: h["org_path"] for h_id, h in hosts.items()}, keys, results,
                                    result_states, stored_results)
    changes.write(sql, result_changes, comp_changes)


def _same_components(rows, host_id, stored_rows):
    """Whether the component rows (dicts) a report gives ``host_id`` are its stored ones (STORED_COMPONENT_COLS
    tuples): the same positions, each with the same non-null digest."""
    stored = {row[1]: row[4] for row in stored_rows if row[0] == host_id}
    if len(stored) != len(rows):
        return False
    for x in rows:
        digest = x["row_hash"]
        if digest is None or stored.get(x["seq"]) != digest:
            return False
    return True


def _org_changed(host_latest, hp_rows, org_counted):
    """The hosts whose share of the org sums (org_hosts, org_profiles) this batch may move, sorted.
    A host whose latest values and host profiles all stay as stored (``org_counted``, read under
    the host row lock: HOST_ORG_COLS and PROFILE_ORG_COLS) is left out: its share would be
    subtracted and added back."""
    hosts = set(host_latest) | {k[0] for k in hp_rows}
    moved = set()
    for host_id, latest in host_latest.items():
        # a host's first latest state (latest_collected was NULL) starts counting its loc_rate
        if org_counted.get(host_id) != (True,) + latest[4:]:
            moved.add(host_id)
    for key, row in hp_rows.items():
        if org_counted.get(key) != tuple(row[i] for i in _PROFILE_ORG_AT):
            moved.add(key[0])
    return sorted(moved & hosts)


def _org_delta(changed, hosts, host_latest, hp_rows, org_counted):
    """The org sums' changes (aggregates.OrgDelta) for the hosts in ``changed``: the share of each
    host and host profile this batch writes, as stored (``org_counted``, read under the host row
    lock; a profile not stored yet had none) and as written."""
    delta = aggregates.OrgDelta()
    moved = set(changed)
    for host_id in sorted(moved & set(host_latest)):
        org_path = hosts[host_id]["org_path"]
        before, after = org_counted[host_id], (True,) + tuple(host_latest[host_id][4:])
        if before != after:  # equal shares cancel (and leave no float residue in the sums)
            delta.host(org_path, before, -1)
            delta.host(org_path, after, +1)
    for key in sorted(k for k in hp_rows if k[0] in moved):
        org_path = hosts[key[0]]["org_path"]
        before, after = org_counted.get(key), tuple(hp_rows[key][i] for i in _PROFILE_ORG_AT)
        if before != after:
            if before is not None:
                delta.profile(org_path, key[1], before, -1)
            delta.profile(org_path, key[1], after, +1)
    return delta


def _invalidate_rollups(conn, sql, day):
    """rollups.invalidate_from, as raw statements that ride the pipeline on PostgreSQL."""
    if not isinstance(sql, rawsql.PgSql):
        rollups.invalidate_from(conn, day)
    elif day < rollups.today():
        sql.execute(_INVALIDATE, {"day": day})


# rollups.INVALIDATED's rows from a day on, in one statement (each data-modifying WITH runs once, to
# completion): one pipelined statement per late batch instead of three
_INVALIDATE = "".join(
    ["WITH "] + [("d%d AS (DELETE FROM %s WHERE day >= %%(day)s), " % (i, t.name)) for i, t in
                 enumerate(rollups.INVALIDATED[:-1])]).rstrip(", ") + " DELETE FROM %s WHERE day >= %%(day)s" % (
    rollups.INVALIDATED[-1].name)


def _with_values(row, **values):
    """A copy of a derived result row with ``values`` added (a LatestRow stays lazy)."""
    with_values = getattr(row, "with_values", None)
    return with_values(**values) if with_values is not None else dict(row, **values)


_NO_WAIVER = (None, None)


class LatestResults(object):
    """The result rows one report gives a host profile: the derived rows (``source``, ingest.LatestRow
    or dicts) and the waiver pointers of the failed ones a waiver covers (``pointers`` {rule_id:
    (waiver_id, waiver_until)}, attach_from on copies of the failed rows only). The full rows
    (RESULT_COLS dicts, as written) are copied only when asked for (``row``, ``rows``): the writer
    compares a result with its stored row by digest and pointer first, and a report whose results
    are all as stored copies none of them."""
    __slots__ = ("host_id", "profile", "source", "failed", "pointers", "_made", "_rows")

    def __init__(self, host_id, profile, source, failed, candidates, org_path):
        self.host_id, self.profile, self.source, self.failed = host_id, profile, source, failed
        self._made, self._rows, self.pointers = {}, None, {}
        if candidates and failed:
            rows = [_with_values(x, host_id=host_id, profile=profile, waiver_id=None, waiver_until=None) for x in failed]
            attach_from(candidates, host_id, org_path, rows)
            for x in rows:
                self._made[x["rule_id"]] = x
                if x["waiver_id"] is not None or x["waiver_until"] is not None:
                    self.pointers[x["rule_id"]] = (x["waiver_id"], x["waiver_until"])

    def row(self, x):
        """The full row of the derived row ``x`` (made once)."""
        rid = x["rule_id"]
        out = self._made.get(rid)
        if out is None:
            out = self._made[rid] = _with_values(x, host_id=self.host_id, profile=self.profile, waiver_id=None,
                                                 waiver_until=None)
        return out

    def rows(self):
        """Every full row, in the report's order."""
        if self._rows is None:
            self._rows = [self.row(x) for x in self.source]
        return self._rows

    def __iter__(self):
        return iter(self.rows())

    def __len__(self):
        return len(self.source)

    def waived_score(self):
        """aggregates.waived_score of the full rows; without a waiver pointer, from the failed rows alone."""
        if self.pointers:
            return aggregates.waived_score(self.rows())
        return aggregates.unwaived_score(self.failed)


def _write_components(sql, orgs, comps, stored_rows):
    """Replace the latest components of each host in ``comps`` ({host_id: its derived component
    rows, dicts}) writing only the difference, by position in the report's inventory (``seq``): a row
    is updated only when its digest (``row_hash``) changed, rows past the new list's end are
    deleted, new ones inserted; an unchanged inventory writes nothing. component_counts gets the
    same difference (store/aggregates.py)."""
    if not comps:
        return
    c = db.components
    stored = {}
    for row in stored_rows:  # STORED_COMPONENT_COLS of the batch's hosts
        if row[0] in comps:
            stored.setdefault(row[0], {})[row[1]] = (row[2], row[3], row[4])
    counts = collections.Counter()
    inserts, updates, deletes = [], [], []
    for host_id in sorted(comps):
        org = orgs[host_id]
        before = stored.get(host_id, {})
        for x in comps[host_id]:
            prev = before.pop(x["seq"], None)
            if prev is not None and prev[2] == x["row_hash"] and x["row_hash"] is not None:
                continue
            row = (host_id,) + _COMPONENT_ROW(x)
            counts[(org, x["category"], x["origin"])] += 1
            if prev is None:
                inserts.append(row)
            else:
                counts[(org, prev[0], prev[1])] -= 1
                updates.append(row)
        for seq in sorted(before):
            category, origin, _d = before[seq]
            counts[(org, category, origin)] -= 1
            deletes.append((host_id, seq))
    sql.delete(c, COMPONENT_KEYS, deletes)
    sql.update(c, COMPONENT_KEYS, COMPONENT_COLS[2:], updates)
    sql.insert(c, COMPONENT_COLS, inserts)
    sql.add_counts(db.component_counts, ("org_path", "category", "origin"), "n",
                   [k + (n,) for k, n in sorted(counts.items()) if n])


_HASH, _WAIVER_ID, _WAIVER_UNTIL = (STORED_COLS.index(k) for k in ("row_hash", "waiver_id", "waiver_until"))
_HOST_PROFILE, _RULE = operator.itemgetter(0, 1), operator.itemgetter(2)


def _write_results(sql, orgs, keys, results, states=None, stored_rows=None):
    """Replace the latest results of each (host, profile) in ``keys`` by ``results[key]``
    (LatestResults, or lists of full row dicts), writing only the difference: rows of rules no
    longer reported are deleted, new ones inserted, and a row is updated only when what the report
    says of it (``row_hash``) or its waiver pointer changed; an unchanged result is not rewritten
    (no dead row, no index churn). The maintained aggregates (store/aggregates.py) get the same
    difference. Returns the change records (store/changes.py) of ``states`` {key: [(collected_at,
    rows, first report of the host)]}: each successive state against the one before, the first
    against the stored rows. ``stored_rows``: the STORED_COLS rows already read of (at least) these
    hosts, else they are read here. The stored rows are compared as tuples; dicts of them and full
    new rows are made only for a host profile that moved."""
    if not keys:
        return []
    changed = []
    res = db.results
    wanted = {k[0] for k in keys}
    if stored_rows is None:
        stored_rows = sql.select_in(res, STORED_COLS, "host_id", sorted(wanted))
    stored = {}  # {(host_id, profile): {rule_id: STORED_COLS tuple}}, grouped in C
    stored_profiles = {}  # {host_id: [its stored profiles]}
    for key, group in itertools.groupby(stored_rows, _HOST_PROFILE):
        if key[0] in wanted:
            group = list(group)
            by_rule = stored.get(key)
            if by_rule is None:
                stored[key] = dict(zip(map(_RULE, group), group))
                stored_profiles.setdefault(key[0], []).append(key[1])
            else:  # the rows did not come grouped
                by_rule.update(zip(map(_RULE, group), group))
    delta = aggregates.Delta()
    inserts, updates, deletes = [], [], []
    by_host = {}
    for key in keys:
        by_host.setdefault(key[0], []).append(key[1])
    for host_id in sorted(by_host):
        org = orgs[host_id]
        moved = {}  # {profile: (stored rows that changed, as dicts; their new full rows)}
        for profile in by_host[host_id]:
            old = stored.get((host_id, profile), {})
            new = results[(host_id, profile)]
            if not isinstance(new, LatestResults):
                new = _Full(new)
            pointers = new.pointers
            gone = dict(old)
            old_changed, new_changed = [], []  # the stored rows rewritten or deleted; the rows written
            for x in new.source:
                rid = x["rule_id"]
                prev = gone.pop(rid, None)
                if prev is None:
                    full = new.row(x)
                    inserts.append(_RESULT_ROW(full))
                    new_changed.append(full)
                elif prev[_HASH] != x["row_hash"] or (
                        (prev[_WAIVER_ID], prev[_WAIVER_UNTIL]) != pointers.get(rid, _NO_WAIVER) if pointers
                        else prev[_WAIVER_ID] is not None or prev[_WAIVER_UNTIL] is not None):
                    full = new.row(x)
                    updates.append(_RESULT_ROW(full))
                    old_changed.append(prev)
                    new_changed.append(full)
            deletes.extend((host_id, profile, rid) for rid in sorted(gone))
            old_changed.extend(gone.values())
            key_states = (states or {}).get((host_id, profile), ())
            if len(key_states) <= 1:
                if not old_changed and not new_changed:
                    # every row as stored (the digest covers status, severity and category; the waiver
                    # pointer compared): no aggregate moves and no change is recorded
                    continue
                # one new state: what moves the aggregates and makes change records is the rows that
                # changed alone (an unchanged row has the same status, severity, category and pointer
                # before and after: its counts cancel and it records no change)
                old_rows = [dict(zip(STORED_COLS, row)) for row in old_changed]
                rows = new_changed
                if key_states and not key_states[0][2]:
                    changed.extend(changes.result_changes(host_id, profile, key_states[0][0],
                                                          changes.result_state(old_rows), rows))
            else:
                # several states of one host profile in this batch: each against the one before, whole
                old_rows = [dict(zip(STORED_COLS, row)) for row in old.values()]
                state = changes.result_state(old_rows)
                for at, state_rows, fresh in key_states:
                    state_rows = list(state_rows)
                    if not fresh:
                        changed.extend(changes.result_changes(host_id, profile, at, state, state_rows))
                    state = changes.result_state(state_rows)
                rows = new.rows()
            delta.results(org, profile, old_rows, -1)
            delta.results(org, profile, rows, +1)
            moved[profile] = (old_rows, rows)
        if moved:
            # the failing map (rule -> earliest cover, worst severity over the host's profiles) moves
            # only for the rules of the rows that changed: their stored rows of every profile, as dicts
            touched = {d["rule_id"] for old_rows, rows in moved.values() for d in old_rows}
            touched.update(x["rule_id"] for old_rows, rows in moved.values() for x in rows)
            made = {(profile, d["rule_id"]): d for profile in moved for d in moved[profile][0]}
            before_rows = {}
            for profile in stored_profiles.get(host_id, ()):
                by_rule = stored[(host_id, profile)]
                for rid in touched:
                    row = by_rule.get(rid)
                    if row is not None:
                        key = (profile, rid)
                        before_rows[key] = made.get(key) or dict(zip(STORED_COLS, row))
            after = dict(before_rows)
            for profile, (old_rows, rows) in moved.items():
                for d in old_rows:
                    del after[(profile, d["rule_id"])]
                for x in rows:
                    after[(profile, x["rule_id"])] = x
            if after != before_rows:
                delta.failing(org, aggregates.failing_map(before_rows.values()),
                              aggregates.failing_map(after.values()))
    sql.delete(res, RESULT_KEYS, deletes)
    sql.update(res, RESULT_KEYS, RESULT_COLS[3:], updates)
    sql.insert(res, RESULT_COLS, inserts)
    delta.write(sql)
    return changed


class _Full(object):
    """Full row dicts (a caller of _write_results that made them) in LatestResults' terms."""

    def __init__(self, rows):
        self.source = rows
        self.pointers = {x["rule_id"]: (x["waiver_id"], x["waiver_until"]) for x in rows
                         if x["waiver_id"] is not None or x["waiver_until"] is not None}

    @staticmethod
    def row(x):
        return x

    def rows(self):
        return self.source


class BatchWriter(object):
    """One writer thread per process; ``write(item)`` blocks until the item's batch committed.

    Group commit without idle latency: a request thread ``announce``s its report when it starts
    the CPU work that makes the item (Intake.submit_body) and the announcement ends when the item
    is queued (``write(item, announced=True)``) or the work failed (``withdraw``). The writer, once
    it has an item, keeps collecting while announced items are on their way, at most ``max_wait``
    seconds and ``max_batch`` items; with nothing announced it commits at once, unless reports are
    coming back to back: when its first item came less than ``busy_gap`` after the previous batch
    was acknowledged, it also waits up to ``linger`` for a report to be announced. Under load the
    clients just acknowledged send their next reports at once, but those are announced only once
    received, just after the writer took the one report ready: without lingering each batch was
    one report (three workers, eight clients, synthetic reports: 1.1 to 2 reports per batch,
    PostgreSQL CPU 3.8 ms per report; lingering 8 ms: 2.6-2.75 ms, server CPU 4.6-4.9 -> 3.2 ms,
    and p99 latency 65 -> 45 ms). A report after a quiet spell still commits at once."""

    def __init__(self, engine, max_batch=MAX_BATCH, max_wait=0.02, linger=0.008, busy_gap=0.01):
        self.engine = engine
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.linger = linger
        self.busy_gap = busy_gap
        self._last_end = None  # when the last batch's acknowledgements were given (monotonic)
        self.queue = queue.Queue()
        self.thread = None
        self.lock = threading.Lock()
        self.on_batch = None   # callable(reports, seconds) after each committed batch (metrics)
        self.announced = 0     # reports being made that will be written (announce/withdraw)
        self._cond = threading.Condition(threading.Lock())

    def announce(self):
        """A report is being made and will be ``write``n with ``announced=True`` or ``withdraw``n."""
        with self._cond:
            self.announced += 1

    def withdraw(self):
        """An announced report will not be written (its request failed)."""
        with self._cond:
            self.announced -= 1
            self._cond.notify_all()

    def write(self, item, announced=False):
        """Queue ``item`` and wait for its acknowledgement (or ApiError, raised). ``announced``: this
        ends the caller's announcement, whatever happens."""
        try:
            with self.lock:
                if self.thread is None or not self.thread.is_alive():
                    self.thread = threading.Thread(target=self._run, name="xcscan-batch-writer", daemon=True)
                    self.thread.start()
            fut = Future()
        except BaseException:
            if announced:
                self.withdraw()
            raise
        with self._cond:  # queued and no longer announced at once: the writer sees one or the other
            self.queue.put((item, fut))
            if announced:
                self.announced -= 1
            self._cond.notify_all()
        result = fut.result()
        if isinstance(result, Exception):
            raise result
        return result

    def _collect(self):
        """The next batch: the first item queued, then whatever is queued, and while reports are
        announced, those as they are queued, up to ``max_wait`` after the first one."""
        batch = [self.queue.get()]
        deadline = None
        t = time.monotonic()
        busy = self._last_end is not None and t - self._last_end < self.busy_gap
        linger_until = t + self.linger if busy and self.linger else None
        while len(batch) < self.max_batch:
            try:
                batch.append(self.queue.get_nowait())
                continue
            except queue.Empty:
                pass
            with self._cond:
                if not self.queue.empty():
                    continue
                if self.announced <= 0:
                    t = time.monotonic()
                    if linger_until is None or t >= linger_until:
                        break
                    self._cond.wait(linger_until - t)
                    continue
                t = time.monotonic()
                if deadline is None:
                    deadline = t + self.max_wait
                if t >= deadline:
                    break
                self._cond.wait(deadline - t)
        return batch

    def _run(self):
        while True:
            batch = self._collect()
            started = time.monotonic()
            try:
                with db.write_tx(self.engine) as conn:
                    outs = store_batch(conn, [item for item, _f in batch])
                if self.on_batch is not None:
                    self.on_batch(len(batch), time.monotonic() - started)
            except Exception:  # noqa: BLE001 - retried one by one below
                for item, fut in batch:
                    fut.set_result(self._single(item))
                continue
            for (_item, fut), result in zip(batch, outs):
                fut.set_result(result)
            self._last_end = time.monotonic()

    def _single(self, item):
        try:
            with db.write_tx(self.engine) as conn:
                return store_batch(conn, [item])[0]
        except (IntegrityError, self.engine.dialect.dbapi.IntegrityError):
            with self.engine.connect() as conn:  # a concurrent process stored the same report id first
                row = conn.execute(select(db.reports.c.id, db.reports.c.host_id, db.reports.c.received_at)
                                   .where(db.reports.c.id == item.report_id)).mappings().first()
            if row is None:
                return RuntimeError("could not store report %s" % item.report_id)
            return _dedupe(dict(row), item.host_id)
        except Exception as exc:  # noqa: BLE001 - surfaces as a generic 500 for this request only
            return exc
