"""The change page's default view kept ahead: the last 7 days of changes of every org, counted by one
node every ``change_digest_interval`` seconds, so that opening /changes reads a few rows instead of
folding every change record of the week (store/change_summary.py: about 0.3 s at 10,000 hosts).

``build`` folds the window (at - 7 days, at] once for the whole fleet (change_summary.fold with
``per_org``: each org's counts, new failures by severity, host count and the first page of each list)
and keeps in ``change_digests`` one JSON body per org with hosts and per org above them up to '/', each
its whole subtree's (the orgs' parts merged: counts summed, lists merged in the feed's order and cut to
the page; any of a subtree's first rows is among its org's first rows); the table is rewritten in one
transaction. ``read`` serves a scope from the rows of its subtrees (Scope.subtrees: one row for a user
of one department or of the whole fleet, a few merged for a user of several), under the same
``_in_scope`` conditions as every fleet query. The view is as of
``at``: the page says so and offers the count of this moment (``?live=1``); a list's next pages keep
that window (``?at=``) and come from the digest too while it is the one made then, up to the rows it
keeps of each list (its first ``PAGES`` pages), then are folded live over the same window. A digest
older than twice the interval (the job stopped, or none yet) is not used: the page counts live, as
without a digest; so does a fleet whose week holds fewer than ``change_digest_min_records`` change
records (no digest is kept: live is quick there).
"""
from __future__ import annotations

import heapq
import itertools
import json
import logging

from sqlalchemy import delete, func, insert, select

from scanner.server.store import change_summary, changes, db
from scanner.server.store.queries import _in_scope, _where
from scanner.server.store.scope import Scope
from scanner.server.util import now

log = logging.getLogger("xcscan.server")
JOB = "change_digest"
WINDOW = 7 * 86400  # the page's default window (changes._range)
ROWS = 50  # each list's rows on a page of the change page (web/pages.py CHANGES_SHOWN)
PAGES = 4  # each list's first pages kept: the default view's next pages are read from the digest too
KEPT = ROWS * PAGES


def _ancestors(org_path):
    """The org itself and every org above it, up to '/'."""
    parts = org_path.strip("/").split("/") if org_path != "/" else []
    return ["/"] + ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _merge(parts, limit):
    """The summaries ``parts`` of disjoint sets of hosts as one: counts, severities and hosts summed,
    each list merged in the feed's order and cut to ``limit`` (any of the union's first ``limit`` rows
    is among its part's first ``limit``)."""
    out = {"hosts": 0, "new_by_severity": {}, "counts": dict.fromkeys(changes.SECTIONS, 0)}
    lists = {k: [] for k in changes.SECTIONS}
    for got in parts:
        out["hosts"] += got["hosts"]
        for k in changes.SECTIONS:
            out["counts"][k] += got["counts"][k]
            lists[k].append(got[k])
        for status, by_sev in got["new_by_severity"].items():
            mine = out["new_by_severity"].setdefault(status, {})
            for sev, n in by_sev.items():
                mine[sev] = mine.get(sev, 0) + n
    for k in changes.SECTIONS:
        # each part's list is in the feed's order already (fold sorts each org's; bodies are kept so)
        out[k] = list(itertools.islice(heapq.merge(*lists[k], key=lambda r, k=k: changes.row_key(k, r)), limit))
    out["kept"] = limit
    return out


def build(engine, limit, t=None, min_records=0):
    """Fold the last ``WINDOW`` seconds before ``t`` (default now) per org and replace the digest with
    it: one row per org with hosts and per org above one ('/' included), each the summary of its whole
    subtree (a scope of one subtree reads one row); {"at", "orgs", "nodes", "records", "skipped"}.
    Nothing is kept (the page counts live) when the window holds fewer than ``min_records`` change
    records (folding them live is quick and always current), or reaches back before the change records
    began (changes.feed's ``recorded_since``)."""
    t = now() if t is None else int(t)
    start = t - WINDOW
    with engine.connect() as conn:
        since = changes._since(conn, start)
        records = sum(conn.execute(select(func.count()).where(x.c.at > start, x.c.at <= t)).scalar()
                      for x in (db.result_changes, db.component_changes))
        kept = conn.execute(select(func.count()).select_from(db.change_digests)).scalar()
    skipped = "recorded_since" if since is not None else "few_records" if records < min_records else None
    if skipped is not None:
        if kept:
            with db.write_tx(engine) as conn:
                conn.execute(delete(db.change_digests))
        return {"at": t, "orgs": 0, "nodes": 0, "records": records, "skipped": skipped}
    parts = change_summary.fold(engine, Scope.everything(), None, start, t, limit, per_org=True)
    nodes = {}
    for org, got in parts.items():
        for node in _ancestors(org):
            nodes.setdefault(node, []).append(got)
    rows = [{"org_path": node, "at": t, "body": json.dumps(_merge(got, limit), sort_keys=True, ensure_ascii=False)}
            for node, got in sorted(nodes.items())]
    with db.write_tx(engine) as conn:
        conn.execute(delete(db.change_digests))
        for i in range(0, len(rows), 500):
            conn.execute(insert(db.change_digests), rows[i:i + 500])
    return {"at": t, "orgs": len(parts), "nodes": len(rows), "records": records, "skipped": None}


def read(engine, scope, org, limit, max_age, t=None, offsets=None, at=None):
    """The change page's default view of ``scope`` (narrowed to ``org``) from the digest: the summary's
    shape (change_summary.summary with each list's ``limit`` rows from its offset in ``offsets``) plus
    ``as_of``; None when there is no digest made in the last ``max_age`` seconds, or (``at``) none
    made at that time (a list's next pages keep the window of its first: ?at=), or a list's rows asked
    go past the rows the digest keeps of it (its first ``KEPT``). Reads the rows of the scope's subtrees
    (Scope.subtrees: one for a user of one department), under the same conditions as every query."""
    t = now() if t is None else t
    offsets = offsets or {}
    d = db.change_digests
    conds = _in_scope(scope, d.c.org_path, org)  # 404 for an org outside the scope, as every fleet query
    with engine.connect() as conn:
        # one statement: the rows of one build (each build replaces the table in one transaction; two
        # statements could straddle a build's commit)
        got = conn.execute(_where(select(d.c.at, d.c.body).where(d.c.org_path.in_(scope.subtrees(org) or [""])),
                                  *conds)).all()
        # the scope's subtrees have no hosts: the digest's time says whether it is current
        made = got[0][0] if got else conn.execute(select(func.max(d.c.at))).scalar()
    if made is None or (made != at if at is not None else made < t - max_age):
        return None
    bodies = [body for _at, body in got]
    try:
        parts = [json.loads(b) for b in bodies]
        kept = min([p.get("kept", ROWS) for p in parts] or [KEPT])  # (a body without "kept": its first page)
        out = _merge(parts, kept)
    except (ValueError, KeyError, TypeError, AttributeError):
        # a row this code did not write as it reads it (another version's, or damaged): the page counts live
        log.warning("change digest of %d unreadable: counting live", made)
        return None
    for k in changes.SECTIONS:
        skip = offsets.get(k, 0)
        if skip + limit > kept and out["counts"][k] > kept:
            return None  # rows past those kept: the page folds the window live
        out[k] = out[k][skip:skip + limit]
    del out["kept"]
    out.update({"from": made - WINDOW, "to": made, "org": org, "as_of": made})
    return out
