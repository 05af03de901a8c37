"""The change page: the change feed's counts and the first rows of each of its lists, folded in the
database (store/changes.py ``feed`` folds every record of the window in Python: the API pages and
the exports, which hold every row).

The feed compares each key's state at FROM with its state at TO (changes.py). The state at FROM is
the *before* of the key's first change in (FROM, TO], the state at TO the *after* of its last. Each
change record carries the time of its key's change before it (``prev_at``, written at intake,
migration 0029), so a key's first change in the window is the one row with ``prev_at <= FROM`` (a
filter, not a sort of the window's rows per key); the rows after it in the window (``prev_at >
FROM``: few) each name their predecessor, so the last is the one no later row names. A key changed
once in the window (most) is one row, first and last; one changed more often is its first row joined
with its last. The counts are a GROUP BY of that, each list's first rows an ORDER BY .. LIMIT in the
list's own order (changes.row_key: strings compared by code point, COLLATE "C" on PostgreSQL; SQLite
compares bytes), from the window's keys folded once: for the findings a CTE that one statement reads
three times (counts and both lists), for the components a temporary table (their substitution rows
are read from it host by host). The statements are built once per shape and kept (``_plan``). Equal
to ``changes.feed`` with each list cut to ``limit`` rows (tests/server/test_change_records.py)."""
from __future__ import annotations

import threading
from collections import OrderedDict

from sqlalchemy import BigInteger, Integer, and_, any_, bindparam, case, func, literal, null, or_, select, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy import column as sql_column, table as sql_table
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.visitors import InternalTraversal

from scanner.server.store import changes, db
from scanner.server.store.queries import _in_scope, _where
from scanner.server.store.scope import check

BAD = changes.BAD
FOLD_WORK_MEM = "32MB"  # PostgreSQL's memory per sort or hash of the fold (fold's transaction only)

# The window's ends and each list's rows and offset, in every statement of a fold, are given when it
# runs (``_params``): a fold's statements depend otherwise only on its shape (database, scope, org,
# one list per org or not), so they are built once per shape and kept (_plan); building them took
# ~20 ms of a department's page in Python (SQLAlchemy's constructs, their column collections and cache
# keys), two thirds of its CPU.
START = bindparam("fold_start", type_=BigInteger)
END = bindparam("fold_end", type_=BigInteger)
PLANS = 48  # plans kept, three a shape, least recently used dropped: ~0.22 MB each (constructs, cache keys)
_plans, _plans_lock = OrderedDict(), threading.Lock()


def _plan(step, dialect, scope, org, per_org):
    """``step``'s statements for this shape, built by ``step(dialect, scope, org, per_org)`` the first
    time (an org outside the scope raises there, every time: nothing is kept)."""
    scope = check(scope)
    key = (step.__name__, dialect, None if scope.is_global else tuple(sorted(scope.orgs)), org, per_org)
    with _plans_lock:
        got = _plans.get(key)
        if got is not None:
            _plans.move_to_end(key)
            return got
    got = step(dialect, scope, org, per_org)
    with _plans_lock:
        _plans[key] = got
        while len(_plans) > PLANS:
            _plans.popitem(last=False)
    return got


def _str(dialect, col):
    """A string sort key compared by code point, NULL as '' (changes._s)."""
    col = func.coalesce(col, literal(""))
    return col.collate("C") if dialect == "postgresql" else col


def _live(scope, org, start=None, cols=None):
    """The ids (or ``cols`` of ``hosts``) of the live hosts inside the scope (``start``: that had reported
    by then, changes._hosts' not joined)."""
    h = db.hosts
    q = select(*(cols if cols is not None else [h.c.id])).where(h.c.retired_at.is_(None))
    if start is not None:
        f = db.host_firsts
        q = q.select_from(h.outerjoin(f, f.c.host_id == h.c.id)).where(
            or_(f.c.first_collected.is_(None), f.c.first_collected <= start))
    return _where(q, *_in_scope(scope, h.c.org_path, org))


def _ranked(dialect, scope, org, start):
    """The live hosts inside the scope that had reported by ``start``, each with its names and its place
    in the hosts' order (changes._order) as two integers: ``hr`` its rank by (org, name, id), ``nr`` by
    (org, name) alone (hosts of one org and name share it). The findings' fold keys and sorts its rows
    by them instead of by the host's id and names (36 and more characters of text carried, hashed and
    compared per row): at 10,000 hosts the whole fleet's findings statement 455 -> 375 ms (medians of 7,
    three interleaved runs, same rows), a department's 50 -> 48 ms (its hosts are read three times). A
    select: the window joins it as a subquery (from a CTE read twice, materialized, PostgreSQL hashed the
    window's 140,000 rows to join the 10,000 hosts instead of the other way round: +90 ms); the rows
    shown join it again as a CTE."""
    h = db.hosts
    order = _host_order(dialect, h.c)
    return _live(scope, org, start, [h.c.id, h.c.hostname, h.c.org_path,
                                      func.row_number().over(order_by=order).label("hr"),
                                      func.dense_rank().over(order_by=order[:2]).label("nr")])


def _part_of_fleet(dialect, scope, org):
    return dialect == "postgresql" and ((org and org != "/") or not check(scope).is_global)


def _window(dialect, table, cols, scope, org, start, end, known_before=False, ranked=None, ranked_cols=()):
    """The change rows in (start, end] of the live hosts inside the scope (``known_before``: and that
    had reported by ``start``): a CTE of ``cols``, id, at, prev_at; with ``ranked`` (_ranked: those
    hosts) the ``ranked_cols`` of each row's host too (its ranks: they key the fold). Narrow on
    purpose: the window is every record in it (tens of thousands at 10,000 hosts), so host names and
    titles are joined after the fold, for the rows kept or shown."""
    live = _live(scope, org, start if known_before else None)
    src, head = table, []
    if ranked is not None:
        ranked = ranked.subquery()
        src = table.join(ranked, ranked.c.id == table.c.host_id)
        head = [ranked.c[k] for k in ranked_cols]
    cond = [table.c.at > start, table.c.at <= end]
    if _part_of_fleet(dialect, scope, org):
        # a part of the fleet: its hosts' rows read through the (host_id, at) index, the ids as one
        # array the index scan probes (``IN (subquery)`` is a join, and this transaction has no nested
        # loops: it read the whole fleet's window by ``at`` and dropped the other hosts' rows).
        # EXPLAIN ANALYZE at 10,000 hosts, one department of 1,000: the findings fold 70 -> 46 ms; the
        # whole fleet read this way 0.47 -> 0.76 s, so it keeps the scan by ``at``
        cond.append(table.c.host_id == any_(func.array(live.scalar_subquery())))
    elif ranked is None:
        cond.append(table.c.host_id.in_(live))
    q = select(*head, *[table.c[k] for k in cols], table.c.id, table.c.at, table.c.prev_at).select_from(src).where(
        *cond)
    return q.cte()


def _pairs(w, key, start, first_cols, last_cols, prefix=""):
    """One row per key changed in the window: its first row's host (``key[0]``) and ``first_cols``, its
    last row's ``last_cols`` (labelled ``prefix`` + name). The first row: ``prev_at <= start``. The rows after
    the first (``prev_at > start``: few) each name the row before them (its ``at``: ``prev_at``), so
    a row with none of them after it is its key's last; a key changed once in the window is one
    row, first and last."""
    later = select(*[w.c[k] for k in key], w.c.prev_at, w.c.at, w.c.id).where(w.c.prev_at > start).cte()
    has_next = select(literal(1)).where(*[_same(later.c[k], w.c[k]) for k in key], later.c.prev_at == w.c.at,
                                        or_(later.c.at > w.c.at, later.c.id > w.c.id)).exists()
    head = key[:1] + first_cols
    single = select(*[w.c[k] for k in head], *[w.c[k].label(prefix + k) for k in last_cols]).where(
        w.c.prev_at <= start, ~has_next)
    f = select(w).where(w.c.prev_at <= start, has_next).subquery()
    last = select(w).where(w.c.prev_at > start, ~has_next).subquery()
    multi = select(*[f.c[k] for k in head], *[last.c[k].label(prefix + k) for k in last_cols]).select_from(
        f.join(last, and_(*[_same(last.c[k], f.c[k]) for k in key])))
    return union_all(single, multi).subquery()


def _named(k, kind):
    """The keys ``k`` of a change ``kind`` (not NULL), with their host's name and org."""
    h = db.hosts
    return select(k, kind.label("kind"), h.c.hostname, h.c.org_path).select_from(
        k.join(h, h.c.id == k.c.host_id)).where(kind.isnot(None))


def _same(a, b):
    """a = b, a NULL equal to a NULL (a NULL category or component key is a key value like another:
    the feed's fold compares tuples) and still a hash or merge join's condition."""
    if getattr(a, "nullable", False) or getattr(b, "nullable", False):  # a host's rank (_ranked) is never NULL
        return func.coalesce(a, literal("")) == func.coalesce(b, literal(""))
    return a == b


class _TempTableAs(Executable, ClauseElement):
    """CREATE TEMPORARY TABLE name AS query: executed like any statement, so its compiled form is
    cached by its structure (the query's values are bound parameters) instead of compiled every time
    (compiling took 4.7 ms a statement in process, two a change page)."""
    inherit_cache = True
    _traverse_internals = [("name", InternalTraversal.dp_string), ("query", InternalTraversal.dp_clauseelement)]

    def __init__(self, name, query):
        self.name, self.query = name, query


@compiles(_TempTableAs)
def _compile_temp_table_as(element, compiler, **kw):
    return "CREATE TEMPORARY TABLE %s AS %s" % (element.name, compiler.process(element.query, **kw))


def _kept(q, name):
    """The statement keeping ``q``'s rows in a temporary table ``name`` of the connection, and that
    table: the counts and each list's first rows are read from it, the window folded once. Dropped by
    ``_drop`` (or with the transaction when it fails)."""
    return _TempTableAs(name, q), sql_table(name, *[sql_column(c.name, c.type) for c in q.selected_columns])


def _drop(conn, t):
    conn.exec_driver_sql("DROP TABLE %s" % t.name)


def _host_order(dialect, c):
    """The hosts' order (changes._order) of the columns ``c`` (org_path, hostname, host_id or id)."""
    return [_str(dialect, c.org_path), _str(dialect, c.hostname), _str(dialect, c.host_id if "host_id" in c else c.id)]


def _params(start, end, limit, offsets):
    """The values a fold's statements take when they run: the window, and for each list (section)
    its rows (``limit``) and offset (``offsets``, default 0)."""
    out = {"fold_start": start, "fold_end": end}
    for k in changes.SECTIONS:
        out[k + "_limit"], out[k + "_offset"] = limit, offsets.get(k, 0)
    return out


def _first(rows, cond, order, section, per_org, cols=None):
    """A select of ``rows`` meeting ``cond`` in ``order`` (of ``cols``, default all): the list
    ``section``'s rows from its offset (``_params``), or with ``per_org`` the first rows of each org
    (change_digest.py builds each org's first page; any org's rows among a scope's first ``limit`` are
    among that org's first ``limit``)."""
    cols = list(rows.c) if cols is None else cols
    limit = bindparam(section + "_limit", type_=Integer)
    if not per_org:
        return select(*cols).where(cond).order_by(*order).limit(limit).offset(
            bindparam(section + "_offset", type_=Integer))
    sub = select(*cols, func.row_number().over(partition_by=rows.c.org_path, order_by=order).label("rn")) \
        .where(cond).subquery()
    return select(*[sub.c[c.name] for c in cols]).where(sub.c.rn <= limit)


def _part(parts, org_path):
    """The summary part of one org (per_org) or of the whole scope (key None)."""
    got = parts.get(org_path)
    if got is None:
        got = parts[org_path] = {"hosts": 0, "new_by_severity": {}, "counts": dict.fromkeys(changes.SECTIONS, 0)}
        for k in changes.SECTIONS:
            got[k] = []
    return got


# the findings statement's columns: the first four are a count row's too (the rest NULL there)
_FINDING_COLS = ("org_path", "kind", "status_after", "severity", "host_id", "hostname", "profile", "rule_id",
                 "status_before", "id")


def _findings_plan(dialect, scope, org, per_org):
    """One statement: the window's keys folded once (a CTE, materialized as it is read three times),
    their counts by kind, status and severity (``part`` 'count', ``n``), and the first rows of the new
    and fixed lists (``part`` the list). A temporary table held them before (the lists of components
    still are): writing it took ~9 ms of a department's 50 ms fold, and three more round trips. The
    keys' hosts are their ranks (_ranked) until the rows shown, which are given their ids and names."""
    rc = db.result_changes
    ranked = _ranked(dialect, scope, org, START)
    hosts = ranked.cte("chg_hosts")  # the rows shown: their hosts' ids and names
    by_org = ("org_path",) if per_org else ()
    w = _window(dialect, rc, ("profile", "rule_id", "status_before", "status_after", "severity"), scope, org, START,
                END, known_before=True, ranked=ranked, ranked_cols=("hr", "nr") + by_org)
    # the titles are the key's last row's (changes.feed): read by its id for the rows shown
    k = _pairs(w, ("hr", "profile", "rule_id"), START, ("nr", "profile", "rule_id", "status_before") + by_org,
               ("status_after", "severity", "id"))
    sb, sa = k.c.status_before, k.c.status_after
    kind = case((and_(sa.in_(BAD), or_(sb.is_(None), sb.notin_(BAD))), "new"),
                (and_(sb.in_(BAD), sa.isnot(None), sa.notin_(BAD)), "fixed"))
    rows = select(k, kind.label("kind")).where(kind.isnot(None)).cte("chg_findings")
    org_col = rows.c.org_path if per_org else null().label("org_path")
    counts = select(literal("count").label("part"), func.count().label("n"), org_col, rows.c.kind,
                    rows.c.status_after, rows.c.severity,
                    *[null().label(c) for c in _FINDING_COLS[4:]]).group_by(
        *([rows.c.org_path] if per_org else []), rows.c.kind, rows.c.status_after, rows.c.severity)
    rank = case(*[(rows.c.severity == s, i) for i, s in enumerate(changes.SEVERITIES)], else_=9)
    # the feed's orders (changes.row_key) with the hosts' ranks for their (org, name, id) and (org, name)
    order = {"new": [case((rows.c.status_after == "fail", 0), else_=1), rank, rows.c.nr,
                     _str(dialect, rows.c.rule_id), rows.c.hr, _str(dialect, rows.c.profile)],
             "fixed": [rows.c.hr, _str(dialect, rows.c.profile), _str(dialect, rows.c.rule_id)]}
    parts = [counts]
    mine = [rows.c[c] for c in ("hr", "kind", "status_after", "severity", "profile", "rule_id", "status_before", "id")]
    for kd in ("new", "fixed"):
        sub = _first(rows, rows.c.kind == kd, order[kd], kd, per_org, mine + [rows.c[c] for c in by_org]).subquery()
        named = {"host_id": hosts.c.id, "hostname": hosts.c.hostname, "org_path": hosts.c.org_path}
        parts.append(select(literal(kd).label("part"), literal(0).label("n"),
                            *[named[c] if c in named else sub.c[c] for c in _FINDING_COLS]).select_from(
            sub.join(hosts, hosts.c.hr == sub.c.hr)))
    return union_all(*parts)


def _findings(conn, plan, window, parts, per_org):
    rc = db.result_changes
    shown = {"new": [], "fixed": []}
    for r in conn.execute(plan, window).mappings():
        if r["part"] != "count":
            shown[r["part"]].append(r)
            continue
        got = _part(parts, r["org_path"] if per_org else None)
        got["counts"][r["kind"]] += r["n"]
        if r["kind"] == "new":
            sev = got["new_by_severity"].setdefault(r["status_after"], {})
            sev[r["severity"] or "none"] = sev.get(r["severity"] or "none", 0) + r["n"]
    ids = sorted({r["id"] for got in shown.values() for r in got})
    titles = {}
    # PostgreSQL: the ids as one array parameter (the digest's build shows ~40,000 rows: 80 statements of
    # 500 took 0.39 s); SQLite: 500 at a time (its bound parameters are limited)
    step = max(len(ids), 1) if conn.dialect.name == "postgresql" else 500
    for i in range(0, len(ids), step):
        chunk = ids[i:i + step]
        cond = (rc.c.id == any_(bindparam("ids", chunk, type_=ARRAY(rc.c.id.type)))
                if conn.dialect.name == "postgresql" else rc.c.id.in_(chunk))
        titles.update((r[0], {"zh": r[1], "en": r[2]}) for r in conn.execute(
            select(rc.c.id, rc.c.title_zh, rc.c.title_en).where(cond)))
    for kd, got in shown.items():
        for r in got:
            _part(parts, r["org_path"] if per_org else None)[kd].append({
                "host_id": r["host_id"], "hostname": r["hostname"], "org_path": r["org_path"], "profile": r["profile"],
                "rule_id": r["rule_id"], "severity": r["severity"], "title": titles[r["id"]],
                "before": r["status_before"], "after": r["status_after"]})


_DETAIL = changes.COMP_DETAIL


def _component_plan(dialect, scope, org, per_org):
    cc = db.component_changes
    w = _window(dialect, cc, ("host_id", "category", "comp_key", "op") + _DETAIL, scope, org, START, END)
    k = _pairs(w, ("host_id", "category", "comp_key"), START, ("category", "comp_key", "op") + _DETAIL,
               ("op",) + _DETAIL, prefix="l_")
    was, now_ = k.c.op == "remove", k.c.l_op == "add"
    kind = case((and_(was, ~now_), "removed"), (and_(now_, ~was), "added"))
    create, rows = _kept(_named(k, kind), "chg_components")
    by = [rows.c.org_path] if per_org else []
    counts = select(*by, rows.c.kind, func.count().label("n")).group_by(*by, rows.c.kind)
    host = _host_order(dialect, rows.c)
    shown = {}
    for kd, p in (("added", "l_"), ("removed", "")):
        order = host + [_str(dialect, rows.c.category)] + [_str(dialect, rows.c[p + x]) for x in (
            "product_id", "name_en", "name_zh", "version", "origin")]
        shown[kd] = (p, _first(rows, rows.c.kind == kd, order, kd, per_org))
    # substitutions: within a host and category, foreign components removed paired with domestic ones
    # added (changes._pair_substitutions): as many as the fewer of the two
    foreign = case((and_(rows.c.kind == "removed", rows.c.origin == "foreign"), 1), else_=0)
    domestic = case((and_(rows.c.kind == "added", rows.c.l_origin == "domestic"), 1), else_=0)
    groups = select(*by, rows.c.host_id, rows.c.category, func.sum(foreign).label("nf"),
                    func.sum(domestic).label("nd")).group_by(*by, rows.c.host_id, rows.c.category).cte()
    gby = [groups.c.org_path] if per_org else []
    paired = func.sum(case((groups.c.nf < groups.c.nd, groups.c.nf), else_=groups.c.nd)).label("n")
    substitutions = select(*gby, paired).where(groups.c.nf > 0, groups.c.nd > 0).group_by(*gby)
    return {"create": create, "rows": rows, "counts": counts, "shown": shown, "substitutions": substitutions}


def _component_lists(conn, plan, window, parts, per_org, limit, offsets):
    """The added, removed and substitution lists (``limit`` rows of each from its offset) and their counts."""
    rows = plan["rows"]
    conn.execute(plan["create"], window)
    for r in conn.execute(plan["counts"]).mappings():
        _part(parts, r["org_path"] if per_org else None)["counts"][r["kind"]] = r["n"]
    cache = {}
    for kd, (p, q) in plan["shown"].items():
        for r in conn.execute(q, window).mappings():
            _part(parts, r["org_path"] if per_org else None)[kd].append(dict(changes._host(r), **_comp(r, p, cache)))
    total = 0
    for r in conn.execute(plan["substitutions"]).mappings():
        if r["n"]:
            _part(parts, r["org_path"] if per_org else None)["counts"]["substitutions"] = int(r["n"])
            total += int(r["n"])
    skip = offsets.get("substitutions", 0)
    if per_org and total:
        # every substitution row (a few per host that replaced something), each org's first ``limit``
        for r in _substitution_rows(conn, rows, total, cache):
            got = _part(parts, r["org_path"])["substitutions"]
            if len(got) < limit:
                got.append(r)
    elif total > skip:
        _part(parts, None)["substitutions"] = _substitution_rows(conn, rows, skip + limit, cache)[skip:]
    _drop(conn, rows)


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
    order = _host_order(conn.dialect.name, rows.c)
    hosts_q = select(rows.c.host_id, rows.c.hostname, rows.c.org_path).where(cand).group_by(
        rows.c.host_id, rows.c.hostname, rows.c.org_path).order_by(*order).limit(limit)
    out, offset = [], 0
    while len(out) < limit:
        ids = [r[0] for r in conn.execute(hosts_q.offset(offset))]
        if not ids:
            break
        offset += len(ids)
        got = {}
        for i in range(0, len(ids), 500):
            for r in conn.execute(select(rows).where(cand, rows.c.host_id.in_(ids[i:i + 500])).order_by(
                    *(order + [_str(conn.dialect.name, rows.c.category),
                               _str(conn.dialect.name, rows.c.comp_key)]))).mappings():
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


def _host_plan(dialect, scope, org, per_org):
    """The joined and stopped lists (``limit`` rows of each from its offset), their counts and the
    number of hosts, decided as the feed decides them (changes.joined, changes.stopped; a host with no
    report by ``end`` is in neither), in one statement: the counts by kind and each list's rows."""
    x = changes.host_times(scope, org, START, END).subquery()
    kind = case((x.c.a.is_(None), None), (and_(x.c.first.isnot(None), x.c.first > START), "joined"),
                (and_(x.c.b.isnot(None), x.c.b > START - changes.STALE, x.c.a <= END - changes.STALE), "stopped"))
    k = select(x, kind.label("kind")).cte()
    by = [k.c.org_path] if per_org else [null().label("org_path")]
    parts_q = [select(k.c.kind, func.count().label("n"), null().label("host_id"), null().label("hostname"), *by,
                      null().label("a")).group_by(k.c.kind, *by[:1] if per_org else [])]
    cols = [k.c.kind, literal(0).label("n"), k.c.id.label("host_id"), k.c.hostname, k.c.org_path, k.c.a]
    for kd in ("joined", "stopped"):
        parts_q.append(select(_first(k, k.c.kind == kd, _host_order(dialect, k.c), kd, per_org, cols).subquery()))
    return union_all(*parts_q)


def _host_lists(conn, plan, window, parts, per_org):
    when = {"joined": "first_report", "stopped": "last_report"}
    for r in conn.execute(plan, window).mappings():
        got = _part(parts, r["org_path"] if per_org else None)
        if r["host_id"] is None:
            got["hosts"] += r["n"]
            if r["kind"] is not None:
                got["counts"][r["kind"]] = r["n"]
        else:
            got[r["kind"]].append(dict(changes._host(r), **{when[r["kind"]]: r["a"]}))


def fold(engine, scope, org, start, end, limit, offsets=None, per_org=False):
    """{None: the summary's lists, counts, new_by_severity and hosts} of the window (start, end], or
    with ``per_org`` {org path: the same of that org's hosts, each list its first ``limit`` rows}."""
    offsets = offsets or {}
    parts = {}
    with engine.connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            # every join here is of a window's rows with a few others or with the hosts: hashed. The
            # planner guesses the rows of a CTE, and with no or stale statistics on the change
            # tables (a new database, before autovacuum's ANALYZE) it chose nested loops over them:
            # 11.7 s instead of 0.15 s at 10,000 hosts (EXPLAIN ANALYZE). This transaction only.
            conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
            # and merge joins: they sorted the window's 123,000 rows by text keys to anti-join them with
            # the 15,000 rows after a key's first (on disk, over work_mem), where a hash of the few is
            # probed once a row: 0.73 s -> 0.43 s (EXPLAIN ANALYZE, 10,000 hosts, 138,576 records). The
            # sorts and hashes left fit in memory with 32 MB (4 MB by default: on disk). No JIT: it
            # compiled this statement for 77 ms of a 0.73 s run, and nothing here runs long enough to
            # gain that back.
            conn.exec_driver_sql("SET LOCAL enable_mergejoin = off")
            conn.exec_driver_sql("SET LOCAL work_mem = '%s'" % FOLD_WORK_MEM)
            conn.exec_driver_sql("SET LOCAL jit = off")
        dialect, window = conn.dialect.name, _params(start, end, limit, offsets)
        shape = (dialect, scope, org, per_org)
        _host_lists(conn, _plan(_host_plan, *shape), window, parts, per_org)
        _findings(conn, _plan(_findings_plan, *shape), window, parts, per_org)
        _component_lists(conn, _plan(_component_plan, *shape), window, parts, per_org, limit, offsets)
    if not per_org:
        _part(parts, None)
    # each list in its order (changes.row_key): the rows of several orgs (per_org), and the lists read
    # through a UNION ALL, whose parts come back in their order in practice, not by rule (a few rows each)
    for got in parts.values():
        for k in changes.SECTIONS:
            got[k].sort(key=lambda r, k=k: changes.row_key(k, r))
    return parts


def summary(engine, scope, org=None, start=None, end=None, limit=500, offsets=None):
    """``changes.feed`` with every list cut to ``limit`` rows from its offset in ``offsets`` ({section:
    rows skipped}, default 0: the first rows), with the counts, ``new_by_severity`` and ``hosts`` of
    the whole feed, folded in the database. A window reaching back before the records began
    (``recorded_since``) is read by ``feed`` itself: a pruned change leaves the first kept one of its
    key pointing at it."""
    offsets = offsets or {}
    start, end = changes._range(start, end)
    with engine.connect() as conn:
        since = changes._since(conn, start)
    if since is not None:
        return cut(changes.feed(engine, scope, org, start, end), limit, offsets)
    got = fold(engine, scope, org, start, end, limit, offsets)[None]
    out = {"from": start, "to": end, "org": org, "hosts": got["hosts"]}
    out.update((k, got[k]) for k in changes.SECTIONS)
    out["new_by_severity"] = got["new_by_severity"]
    out["counts"] = got["counts"]
    return out


def api_page(engine, scope, org, start, end, after, offset, limit):
    """``changes.page`` of the feed (the JSON API's page of ``limit`` rows after the cursor's row
    ``after``), read as the change page reads its lists (``summary``: the fold in the database) instead
    of the whole feed; None when it cannot be told that way (the caller reads the whole feed): a cursor
    without the row's position (``offset``) or naming one of several rows with the same key, or a list
    whose rows moved since (a report stored late, before the cursor's row). Each list is in
    its keys' order, so the rows after the cursor's row, found at ``offset`` - 1 with no equal key
    before it, are the ones ``page`` finds by its key."""
    at = 0 if after is None else after[0]
    if after is not None and (offset is None or offset < 1 or after[1][-1] != 0):
        return None
    # the cursor's row and the one before it are read again to check that nothing moved
    skip = 0 if after is None else max(offset - 2, 0)
    got = summary(engine, scope, org, start, end, limit + 2, {changes.SECTIONS[at]: skip})
    # (summary reads a window reaching back before the records began from the whole feed, and says so)
    out = {k: got[k] for k in ("from", "to", "org", "hosts", "new_by_severity", "counts", "recorded_since")
           if k in got}
    need, last, more = limit, None, False
    for i, k in enumerate(changes.SECTIONS):
        rows, base, prev = got[k], 0, None
        if i < at:
            out[k] = []
            continue
        if after is not None and i == at:
            mine = tuple(after[1][:-1])
            seen = [changes.row_key(k, r) for r in rows[:offset - skip]]
            if len(seen) != offset - skip or seen[-1] != mine or (len(seen) == 2 and seen[0] == mine):
                return None
            rows, base, prev = rows[offset - skip:], offset, mine
        out[k] = rows[:need]
        rank = 0
        for r in out[k]:
            key = changes.row_key(k, r)
            rank = rank + 1 if key == prev else 0
            prev = key
        if out[k]:
            last = (i, list(prev) + [rank], base + len(out[k]))
        need -= len(out[k])
        if base + len(out[k]) < got["counts"][k]:
            more = True
    return out, (last if more else None)


def cut(got, limit, offsets=None):
    """A feed with each list cut to ``limit`` rows from its offset in ``offsets`` (default 0)."""
    offsets = offsets or {}
    out = dict(got)
    for k in changes.SECTIONS:
        out[k] = got[k][offsets.get(k, 0):offsets.get(k, 0) + limit]
    return out
