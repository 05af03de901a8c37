"""The change page's default view kept ahead: the last 7 days of changes of every org, counted by one
node every ``change_digest_interval`` seconds, so that opening /changes reads a few rows instead of
folding every change record of the week (store/change_summary.py: about 0.3 s at 10,000 hosts).

``build`` folds the window (at - 7 days, at] once for the whole fleet and keeps, per org path that has
live hosts, that org's counts, new failures by severity, host count and the first page of each list
(change_summary.fold with ``per_org``), in ``change_digests`` (one JSON body per org path, the table
rewritten in one transaction). ``read`` serves a scope: the rows of the org paths inside it (the same
``_in_scope`` conditions as every fleet query), counts summed and lists merged in the feed's order and
cut to the page (any of the scope's first rows is among its org's first rows). The view is as of
``at``: the page says so and offers the count of this moment (``?live=1``), and pages past the first
of a list are read live over the same window. A digest older than twice the interval (the job stopped,
or none yet) is not used: the page counts live, as without a digest; so does a fleet whose week holds
fewer than ``change_digest_min_records`` change records (no digest is kept: live is quick there).
"""
from __future__ import annotations

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


def build(engine, limit, t=None, min_records=0):
    """Fold the last ``WINDOW`` seconds before ``t`` (default now) per org and replace the digest with
    it; {"at", "orgs", "records", "skipped"}. Nothing is kept (the page counts live) when the window
    holds fewer than ``min_records`` change records (folding them live is quick and always current),
    or reaches back before the change records began (changes.feed's ``recorded_since``)."""
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
        return {"at": t, "orgs": 0, "records": records, "skipped": skipped}
    parts = change_summary.fold(engine, Scope.everything(), None, start, t, limit, per_org=True)
    rows = [{"org_path": org, "at": t, "body": json.dumps(got, sort_keys=True, ensure_ascii=False)}
            for org, got in sorted(parts.items())]
    with db.write_tx(engine) as conn:
        conn.execute(delete(db.change_digests))
        for i in range(0, len(rows), 500):
            conn.execute(insert(db.change_digests), rows[i:i + 500])
    return {"at": t, "orgs": len(rows), "records": records, "skipped": None}


def read(engine, scope, org, limit, max_age, t=None):
    """The change page's default view of ``scope`` (narrowed to ``org``) from the digest: the summary's
    shape (change_summary.summary with each list's first ``limit`` rows) plus ``as_of``; None when
    there is no digest made in the last ``max_age`` seconds."""
    t = now() if t is None else t
    d = db.change_digests
    with engine.connect() as conn:
        at = conn.execute(select(func.max(d.c.at))).scalar()
        if at is None or at < t - max_age:
            return None
        bodies = [r[0] for r in conn.execute(_where(select(d.c.body).where(d.c.at == at),
                                                    *_in_scope(scope, d.c.org_path, org)))]
    out = {"from": at - WINDOW, "to": at, "org": org, "hosts": 0, "new_by_severity": {}, "as_of": at,
           "counts": dict.fromkeys(changes.SECTIONS, 0)}
    lists = {k: [] for k in changes.SECTIONS}
    try:
        for body in bodies:
            got = json.loads(body)
            out["hosts"] += got["hosts"]
            for k in changes.SECTIONS:
                out["counts"][k] += got["counts"][k]
                lists[k].extend(got[k])
            for status, by_sev in got["new_by_severity"].items():
                mine = out["new_by_severity"].setdefault(status, {})
                for sev, n in by_sev.items():
                    mine[sev] = mine.get(sev, 0) + n
        for k in changes.SECTIONS:
            lists[k].sort(key=lambda r, k=k: changes.row_key(k, r))
            out[k] = lists[k][:limit]
    except (ValueError, KeyError, TypeError, AttributeError):
        # a row this code did not write as it reads it (another version's, or damaged): the page counts live
        log.warning("change digest of %d unreadable: counting live", at)
        return None
    return out
