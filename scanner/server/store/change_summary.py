"""The change page: the change feed's counts and the first rows of each of its lists, folded in the
database (store/changes.py ``feed`` folds every record of the window in Python: the API pages and
the exports, which hold every row).

The feed compares each key's state at FROM with its state at TO (changes.py). The state at FROM is
the *before* of the key's first change in (FROM, TO], the state at TO the *after* of its last. The
change records are linked (migration 0029, ``changes.link``): ``prev_at`` is the time of the key's
change before a row, ``next_at`` of the one after it. So the first change of a key in the window is
the one row with ``prev_at <= FROM`` and the last the one with ``next_at`` NULL or after TO: a key
changed once in the window (most) is one row that is both; a key changed more often is its first row
joined with its last. The rows in between are never read. Counts are a GROUP BY of that, each list's
first rows an ORDER BY ... LIMIT in the list's own order (changes.row_key: strings compared by code
point, COLLATE "C" on PostgreSQL; SQLite compares bytes). Equal to ``changes.feed`` with each list cut
to ``limit`` rows (tests/server/test_change_records.py)."""
from __future__ import annotations

from sqlalchemy import and_, case, func, literal, or_, select, union_all

from scanner.server.store import changes, db
from scanner.server.store.queries import _in_scope, _where

BAD = changes.BAD


def _str(conn, col):
    """A string sort key compared by code point, NULL as '' (changes._s)."""
    col = func.coalesce(col, literal(""))
    return col.collate("C") if conn.dialect.name == "postgresql" else col


def _window(conn, table, cols, scope, org, start, end, skip_hosts=()):
    """The first and last change rows of each key changed in (start, end] of the live hosts inside
    the scope, with the host's name and org: a CTE of ``cols``, prev_at, next_at, hostname, org_path."""
    h = db.hosts
    q = select(*[table.c[k] for k in cols], table.c.prev_at, table.c.next_at, h.c.hostname, h.c.org_path).select_from(
        table.join(h, h.c.id == table.c.host_id)).where(
        table.c.at > start, table.c.at <= end, h.c.retired_at.is_(None),
        or_(table.c.prev_at <= start, table.c.next_at.is_(None), table.c.next_at > end))
    if skip_hosts:
        q = q.where(table.c.host_id.notin_(sorted(skip_hosts)))
    return _where(q, *_in_scope(scope, h.c.org_path, org)).cte()


def _pairs(w, key, start, end, first_cols, last_cols, prefix=""):
    """One row per key: the first row's ``first_cols`` and the last row's ``last_cols`` (labelled
    ``prefix`` + name): the row itself for a key changed once in the window, else its first row
    joined with its last (a few; the join hashes them)."""
    once = or_(w.c.next_at.is_(None), w.c.next_at > end)
    head = ("host_id", "hostname", "org_path") + first_cols
    single = select(*[w.c[k] for k in head], *[w.c[k].label(prefix + k) for k in last_cols]).where(
        w.c.prev_at <= start, once)
    f = select(w).where(w.c.prev_at <= start, ~once).subquery()
    last = select(w).where(w.c.prev_at > start).subquery()  # the last rows of keys changed more than once
    multi = select(*[f.c[k] for k in head], *[last.c[k].label(prefix + k) for k in last_cols]).select_from(
        f.join(last, and_(*[_same(last.c[k], f.c[k]) for k in key])))
    return union_all(single, multi).subquery()


def _same(a, b):
    """a = b, a NULL equal to a NULL (a NULL category or component key is a key value like another:
    the feed's fold compares tuples) and still a hash or merge join's condition."""
    if a.nullable or b.nullable:
        return func.coalesce(a, literal("")) == func.coalesce(b, literal(""))
    return a == b


_TEMP = [0]


def _keep(conn, q):
    """``q``'s rows in a temporary table of this connection (dropped by the caller's ``_drop``): the
    counts and each list's first rows are read from it, the window folded once."""
    import itertools
    _TEMP[0] += 1
    name = "chg_fold_%d" % _TEMP[0]
    compiled = q.compile(conn, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    if compiled.positional:
        params = tuple(params[k] for k in compiled.positiontup)
    conn.exec_driver_sql("CREATE TEMPORARY TABLE %s AS %s" % (name, compiled.string), params)
    from sqlalchemy import column, table
    return table(name, *[column(c.name, c.type) for c in itertools.chain(q.selected_columns)])


def _drop(conn, t):
    conn.exec_driver_sql("DROP TABLE %s" % t.name)


def _host_order(conn, q):
    return [_str(conn, q.c.org_path), _str(conn, q.c.hostname), _str(conn, q.c.host_id)]


def _findings(conn, scope, org, start, end, skip_hosts, limit):
    rc = db.result_changes
    w = _window(conn, rc, ("host_id", "profile", "rule_id", "status_before", "status_after", "severity", "title_zh",
                           "title_en"), scope, org, start, end, skip_hosts)
    k = _pairs(w, ("host_id", "profile", "rule_id"), start, end, ("profile", "rule_id", "status_before"),
               ("status_after", "severity", "title_zh", "title_en"))
    sb, sa = k.c.status_before, k.c.status_after
    kind = case((and_(sa.in_(BAD), or_(sb.is_(None), sb.notin_(BAD))), "new"),
                (and_(sb.in_(BAD), sa.isnot(None), sa.notin_(BAD)), "fixed"))
    rows = _keep(conn, select(k, kind.label("kind")).where(kind.isnot(None)))
    counts, by_sev = {"new": 0, "fixed": 0}, {}
    for kd, after, sev, n in conn.execute(select(rows.c.kind, rows.c.status_after, rows.c.severity, func.count())
                                          .where(rows.c.kind.isnot(None))
                                          .group_by(rows.c.kind, rows.c.status_after, rows.c.severity)):
        counts[kd] += n
        if kd == "new":
            by_sev.setdefault(after, {}).setdefault(sev or "none", 0)
            by_sev[after][sev or "none"] += n
    rank = case(*[(rows.c.severity == s, i) for i, s in enumerate(changes.SEVERITIES)], else_=9)
    host = _host_order(conn, rows)
    order = {"new": [case((rows.c.status_after == "fail", 0), else_=1), rank, host[0], host[1],
                     _str(conn, rows.c.rule_id), host[2], _str(conn, rows.c.profile)],
             "fixed": host + [_str(conn, rows.c.profile), _str(conn, rows.c.rule_id)]}
    out = {}
    for kd in ("new", "fixed"):
        out[kd] = [{"host_id": r.host_id, "hostname": r.hostname, "org_path": r.org_path, "profile": r.profile,
                    "rule_id": r.rule_id, "severity": r.severity, "title": {"zh": r.title_zh, "en": r.title_en},
                    "before": r.status_before, "after": r.status_after}
                   for r in conn.execute(select(rows).where(rows.c.kind == kd).order_by(*order[kd]).limit(limit))]
    _drop(conn, rows)
    return out, counts, by_sev


_DETAIL = changes.COMP_DETAIL


def _component_lists(conn, scope, org, start, end, limit):
    """The added, removed and substitution lists (their first ``limit`` rows) and their counts."""
    cc = db.component_changes
    w = _window(conn, cc, ("host_id", "category", "comp_key", "op") + _DETAIL, scope, org, start, end)
    k = _pairs(w, ("host_id", "category", "comp_key"), start, end, ("category", "comp_key", "op") + _DETAIL,
               ("op",) + _DETAIL, prefix="l_")
    was, now_ = k.c.op == "remove", k.c.l_op == "add"
    kind = case((and_(was, ~now_), "removed"), (and_(now_, ~was), "added"))
    rows = _keep(conn, select(k, kind.label("kind")).where(kind.isnot(None)))
    counts = {"added": 0, "removed": 0}
    for kd, n in conn.execute(select(rows.c.kind, func.count()).where(rows.c.kind.isnot(None)).group_by(rows.c.kind)):
        counts[kd] = n
    host = _host_order(conn, rows)
    cache, out = {}, {}
    for kd, p in (("added", "l_"), ("removed", "")):
        order = host + [_str(conn, rows.c.category)] + [_str(conn, rows.c[p + x]) for x in (
            "product_id", "name_en", "name_zh", "version", "origin")]
        out[kd] = [dict(changes._host(r), **_comp(r, p, cache)) for r in conn.execute(
            select(rows).where(rows.c.kind == kd).order_by(*order).limit(limit)).mappings()]
    # substitutions: within a host and category, foreign components removed paired with domestic ones
    # added (changes._pair_substitutions): as many as the fewer of the two
    foreign = case((and_(rows.c.kind == "removed", rows.c.origin == "foreign"), 1), else_=0)
    domestic = case((and_(rows.c.kind == "added", rows.c.l_origin == "domestic"), 1), else_=0)
    groups = select(rows.c.host_id, rows.c.category, func.sum(foreign).label("nf"), func.sum(domestic).label("nd")) \
        .group_by(rows.c.host_id, rows.c.category).cte()
    both = groups.c.nf > 0, groups.c.nd > 0
    counts["substitutions"] = int(conn.execute(select(func.coalesce(func.sum(case((groups.c.nf < groups.c.nd, groups.c.nf),
                                                                            else_=groups.c.nd)), 0))
                                               .where(*both)).scalar())
    out["substitutions"] = _substitution_rows(conn, rows, limit, cache) if counts["substitutions"] else []
    _drop(conn, rows)
    return out, counts


def _comp(r, p, cache):
    return {"category": r["category"], "product_id": r[p + "product_id"], "name_zh": r[p + "name_zh"],
            "name_en": r[p + "name_en"], "origin": r[p + "origin"], "version": r[p + "version"],
            "substitutes": changes._subs(r[p + "substitutes"], cache)}


def _substitution_rows(conn, rows, limit, cache):
    """The first ``limit`` substitution rows: the candidates (foreign components removed, domestic
    ones added) of the first hosts in order, ``limit`` hosts at a time, paired host by host as the
    feed pairs them, until the hosts read give ``limit`` rows or none is left."""
    cand = or_(and_(rows.c.kind == "removed", rows.c.origin == "foreign"),
               and_(rows.c.kind == "added", rows.c.l_origin == "domestic"))
    order = _host_order(conn, rows)
    hosts_q = select(rows.c.host_id, rows.c.hostname, rows.c.org_path).where(cand).group_by(
        rows.c.host_id, rows.c.hostname, rows.c.org_path).order_by(*order).limit(limit)
    out, offset = [], 0
    while len(out) < limit:
        ids = [r[0] for r in conn.execute(hosts_q.offset(offset))]
        if not ids:
            break
        offset += len(ids)
        got = {}
        for r in conn.execute(select(rows).where(cand, rows.c.host_id.in_(ids)).order_by(
                *(order + [_str(conn, rows.c.category), _str(conn, rows.c.comp_key)]))).mappings():
            removed, added = got.setdefault(r["host_id"], (changes._host(r), [], []))[1:]
            if r["kind"] == "removed":
                removed.append(_comp(r, "", cache))
            else:
                added.append(_comp(r, "l_", cache))
        for hid in ids:
            host, removed, added = got[hid]
            out.extend(changes._substitution_rows(host, removed, added))
    out.sort(key=lambda r: changes.row_key("substitutions", r))
    return out[:limit]


def summary(engine, scope, org=None, start=None, end=None, limit=500):
    """``changes.feed`` with every list cut to its first ``limit`` rows (the counts, ``new_by_severity``
    and ``hosts`` of the whole feed), folded in the database. A window reaching back before the
    records began (``recorded_since``) is read by ``feed`` itself: a pruned change leaves the first
    kept one of its key pointing at it."""
    start, end = changes._range(start, end)
    changes.link_pending(engine)
    with engine.connect() as conn:
        since = changes._since(conn, start)
    if since is not None:
        return cut(changes.feed(engine, scope, org, start, end), limit)
    with engine.connect() as conn, conn.begin():
        hosts = changes._hosts(conn, scope, org, start, end)
        joined = {hid for hid, x in hosts.items() if x["b"] is None}
        found, counts, by_sev = _findings(conn, scope, org, start, end, joined, limit)
        comps, comp_counts = _component_lists(conn, scope, org, start, end, limit)
    out = {"from": start, "to": end, "org": org, "hosts": len(hosts), "new": found["new"], "fixed": found["fixed"],
           "joined": [], "stopped": []}
    for hid in changes._order(hosts):
        x = hosts[hid]
        if x["a"] is None:
            continue
        if x["b"] is None:
            out["joined"].append(dict(changes._host(x), first_report=x["a"]))
        elif x["b"] > start - changes.STALE and x["a"] <= end - changes.STALE:
            out["stopped"].append(dict(changes._host(x), last_report=x["a"]))
    out.update(comps)
    counts.update(comp_counts)
    counts["joined"], counts["stopped"] = len(out["joined"]), len(out["stopped"])
    for k in ("joined", "stopped"):
        out[k] = out[k][:limit]
    out["new_by_severity"] = by_sev
    out["counts"] = {k: counts[k] for k in changes.SECTIONS}
    return out


def cut(got, limit):
    """A feed with each list cut to its first ``limit`` rows."""
    out = dict(got)
    for k in changes.SECTIONS:
        out[k] = got[k][:limit]
    return out
