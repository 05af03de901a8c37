"""What changed in a scope between two times (issue #15 item 5), from change records written at intake.

A host's state at time T is its newest report collected at or before T (per profile for results;
the newest of any profile for its inventory). Between FROM and TO:

- new findings: a rule whose status at TO is ``fail`` or ``error`` and at FROM was neither (a rule
  the host did not report at FROM counts as new); by status and severity;
- fixed findings: a rule that failed or erred at FROM and at TO reports another status;
- components added and removed (by category and product); a *substitution* is a foreign component
  removed and a domestic one of the same category added on the same host (a domestic product listed
  among the foreign one's substitutes is paired first);
- hosts that stopped reporting: reporting at FROM (a report in the 3 days before it) and silent at
  TO (none in the 3 days before it);
- hosts that joined: no report at or before FROM; their findings are not listed as new.

Statuses are the agents' (central waivers change scores, not what a scan found). Only live hosts
inside the caller's Scope are read.

How: whenever a host's latest state is replaced (intake/batch.py, and re-evaluation through
intake/ingest.py ``apply_latest``), the transaction that writes it also writes one
``result_changes`` row per rule whose reported status or severity changed, and one
``component_changes`` row per component added or removed (a component whose details changed is
removed with the old and added with the new), stamped with the report's collected time. A host's
first report writes none (it joined). The rows of one key, in time order, form a chain: the state
at FROM is the *before* of the first row after FROM, the state at TO the *after* of the last row
at or before TO, so the feed folds the rows of the window per key (indexed by time) instead of
reading two report documents per host. Hosts that joined or stopped come from the hosts table and
the reports index. A report arriving after a newer one of its host and profile (a spool backlog)
changes no latest state and writes no change (the feed equals the reading of the stored documents
for reports stored in collection order: tests/server/test_change_records.py). Re-evaluation writes
the difference it makes to the latest state at the latest report's time; past changes stay as
they were recorded. Changes before the records began (``change_epoch``, a database upgraded with
history) are not listed; the feed says from when it knows."""
from __future__ import annotations

from sqlalchemy import and_, case, func, select

from scanner.server.store import db
from scanner.server.store.queries import _in_scope, _where
from scanner.server.util import now

STALE = 3 * 86400
DAY = 86400
BAD = ("fail", "error")
SEVERITIES = ("critical", "high", "medium", "low", "info")

# --- writing (in the transaction of the latest-state write) ------------------------------------------
RESULT_COLS = ("host_id", "profile", "rule_id", "at", "status_before", "status_after", "severity", "title_zh",
               "title_en")
COMPONENT_COLS = ("host_id", "at", "op", "category", "comp_key", "product_id", "name_zh", "name_en", "origin",
                  "version", "substitutes")
COMP_DETAIL = ("product_id", "name_zh", "name_en", "origin", "version", "substitutes")
STORED_COMPONENT_COLS = ("host_id", "seq", "category") + COMP_DETAIL


def result_changes(host_id, profile, at, before, after):
    """Change rows (tuples of RESULT_COLS) between two states of one host profile: ``before`` {rule_id:
    dict with status, severity}, ``after`` an iterable of result dicts (rule_id, status, severity,
    title_zh, title_en)."""
    after = {x["rule_id"]: x for x in after}
    out = []
    for rid in sorted(set(before) | set(after)):
        b, a = before.get(rid), after.get(rid)
        sb = (b["status"], b["severity"]) if b is not None else (None, None)
        sa = (a["status"], a["severity"]) if a is not None else (None, None)
        if sb != sa:
            out.append((host_id, profile, rid, at, sb[0], sa[0], sa[1], a["title_zh"] if a else None,
                        a["title_en"] if a else None))
    return out


def result_state(rows):
    """{rule_id: {status, severity}} of result dicts (the ``before`` of the next change)."""
    return {x["rule_id"]: {"status": x["status"], "severity": x["severity"]} for x in rows}


def component_state(rows):
    """{(category, key): details} of component dicts in their report order (a later one with the
    same key wins, as in the feed's reading of a document)."""
    out = {}
    for c in rows:
        out[(c["category"], c["product_id"] or c["name_en"])] = tuple(c[k] for k in COMP_DETAIL)
    return out


def component_changes(host_id, at, before, after):
    """Change rows (tuples of COMPONENT_COLS) between two ``component_state``s of one host."""
    out = []
    for key in sorted(set(before) | set(after), key=lambda k: tuple(str(x) for x in k)):
        b, a = before.get(key), after.get(key)
        if b == a:
            continue
        if b is not None:
            out.append((host_id, at, "remove") + key + b)
        if a is not None:
            out.append((host_id, at, "add") + key + a)
    return out


def stored_components(sql, host_ids, rows=None):
    """{host_id: component_state} of the latest components stored for ``host_ids`` (batch statements);
    ``rows``: the STORED_COMPONENT_COLS rows already read (of these hosts and maybe others)."""
    if not host_ids:
        return {}
    if rows is None:
        rows = sql.select_in(db.components, STORED_COMPONENT_COLS, "host_id", sorted(host_ids))
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    out = {h: [] for h in host_ids}
    for r in rows:
        if r[0] in out:
            out[r[0]].append(dict(zip(("category",) + COMP_DETAIL, r[2:])))
    return {h: component_state(rows) for h, rows in out.items()}


# each table's key: a key's rows form its chain; prev_at is the time of the row before in the chain
KEYS = {"result_changes": ("host_id", "profile", "rule_id"), "component_changes": ("host_id", "category", "comp_key")}
_KEY_AT = {"result_changes": tuple(RESULT_COLS.index(k) for k in KEYS["result_changes"]),
           "component_changes": tuple(COMPONENT_COLS.index(k) for k in KEYS["component_changes"])}


def chained(table, rows):
    """``rows`` (tuples of the table's columns, in the order written) each with its ``prev_at``
    appended: the time of the row before it of its key among ``rows``, or None — the newest stored
    change of the key, looked up when the row is inserted (store/rawsql.py ``insert_chained``; -1
    when there is none). A key's rows are written in time order (a report older than its host
    profile's latest writes no change; re-evaluation writes at the latest report's time)."""
    key_at, at = _KEY_AT[table.name], 3 if table.name == "result_changes" else 1
    last, out = {}, []
    for r in rows:
        k = tuple(r[i] for i in key_at)
        out.append(r + (last.get(k),))
        last[k] = r[at]
    return out


def write(sql, result_rows, component_rows):
    """Insert change rows through the batch writer's statements (store/rawsql.py), in order, each
    with its key's change before it (``prev_at``)."""
    for table, cols, rows in ((db.result_changes, RESULT_COLS, result_rows),
                              (db.component_changes, COMPONENT_COLS, component_rows)):
        if rows:
            sql.insert_chained(table, cols, KEYS[table.name], chained(table, rows))


def write_conn(conn, result_rows, component_rows):
    """The same through a SQLAlchemy connection (the rare writers: re-evaluation); a row's
    ``prev_at`` not known from the rows before it is read here, one query a row."""
    for table, cols, rows in ((db.result_changes, RESULT_COLS, result_rows),
                              (db.component_changes, COMPONENT_COLS, component_rows)):
        out = []
        for r in chained(table, rows):
            d = dict(zip(cols + ("prev_at",), r))
            if d["prev_at"] is None:
                d["prev_at"] = conn.execute(select(func.max(table.c.at)).where(
                    *[table.c[k].is_(None) if d[k] is None else table.c[k] == d[k] for k in KEYS[table.name]])
                ).scalar()
                d["prev_at"] = -1 if d["prev_at"] is None else d["prev_at"]
            out.append(d)
        if out:
            conn.execute(table.insert(), out)


def read_components(conn, host_id):
    c = db.components
    rows = conn.execute(select(*[c.c[k] for k in ("category",) + COMP_DETAIL]).where(c.c.host_id == host_id)
                        .order_by(c.c.seq)).mappings().all()
    return component_state(rows)


def read_results(conn, host_id, profile):
    r = db.results
    return {x.rule_id: {"status": x.status, "severity": x.severity} for x in conn.execute(
        select(r.c.rule_id, r.c.status, r.c.severity).where(r.c.host_id == host_id, r.c.profile == profile))}


# --- reading -----------------------------------------------------------------------------------------
def host_times(scope, org, start, end):
    """The live hosts of the scope (id, hostname, org_path, first, a, b) with the
    collected time of their first report (``first``, store/db.py host_firsts) and of their newest report at
    or before ``end`` (a) and ``start`` (b), each an index probe of reports(host_id, collected_at)
    unless the host's newest report overall (hosts.latest_collected) answers it. ``b`` is read only
    where it can matter, for a host silent in the STALE before ``end`` (whether it stopped); else
    None."""
    h, r = db.hosts, db.reports

    def newest(t):
        return select(func.max(r.c.collected_at)).where(r.c.host_id == h.c.id, r.c.collected_at <= t) \
            .correlate(h).scalar_subquery()
    latest = h.c.latest_collected
    a = case((latest.is_(None), None), (latest <= end, latest), else_=newest(end))
    b = case((latest.is_(None), None), (and_(latest > end - STALE, latest <= end), None), (latest <= start, latest),
             else_=newest(start))
    f = db.host_firsts
    return _where(select(h.c.id, h.c.hostname, h.c.org_path, f.c.first_collected.label("first"), a.label("a"),
                         b.label("b")).select_from(h.outerjoin(f, f.c.host_id == h.c.id)),
                  *_in_scope(scope, h.c.org_path, org), h.c.retired_at.is_(None))


def _hosts(conn, scope, org, start, end):
    """{host_id: {host_id, hostname, org_path, first, a, b}}: ``host_times``' rows."""
    return {x[0]: {"host_id": x[0], "hostname": x[1], "org_path": x[2], "first": x[3], "a": x[4], "b": x[5]}
            for x in conn.execute(host_times(scope, org, start, end))}


def joined(x, start):
    """Whether the host (a ``_hosts`` entry) sent its first report after ``start``."""
    return x["first"] is not None and x["first"] > start


def stopped(x, start, end):
    """Whether the host (a ``_hosts`` entry with a report at ``end``, not joined) reported in the
    STALE before ``start`` and not in the STALE before ``end``."""
    return x["b"] is not None and x["b"] > start - STALE and x["a"] <= end - STALE


def _fold(conn, table, cols, nkey, scope, org, start, end, host_ids=None):
    """{key: (first row, last row)} of the change rows of ``table`` in (start, end] of the live hosts
    inside the scope (tuples of ``cols``; the key: the first ``nkey`` of them, the host first), read in
    time order; ``host_ids``: of those hosts only (read through the (host_id, at) index, 500 at a time)."""
    h = db.hosts
    q = _where(select(*[table.c[k] for k in cols]).select_from(table.join(h, h.c.id == table.c.host_id)).where(
        table.c.at > start, table.c.at <= end, h.c.retired_at.is_(None)), *_in_scope(scope, h.c.org_path, org))
    parts = [q] if host_ids is None else [q.where(table.c.host_id.in_(host_ids[i:i + 500]))
                                          for i in range(0, len(host_ids), 500)]
    out = {}
    get = out.get
    for part in parts:  # a host's rows are all in one part
        for row in conn.execute(part.order_by(table.c.at, table.c.id)):
            k = row[:nkey]
            cur = get(k)
            out[k] = (row, row) if cur is None else (cur[0], row)
    return out


def _subs(value, cache):
    """The substitutes (a JSON list of product ids, as intake wrote it), decoded once per distinct text."""
    got = cache.get(value)
    if got is None:
        from scanner.server.store.jsondoc import decode
        try:
            got = decode(value, [])
        except Exception:  # noqa: BLE001 - an unreadable list names no substitute
            got = []
        got = cache[value] = [s for s in got if isinstance(s, str)] if isinstance(got, list) else []
    return list(got)


# component change rows as read: host_id, category, comp_key, op, then COMP_DETAIL
_C_READ = ("host_id", "category", "comp_key", "op") + COMP_DETAIL


def _comp_out(row, cache):
    return {"category": row[1], "product_id": row[4], "name_zh": row[5], "name_en": row[6], "origin": row[7],
            "version": row[8], "substitutes": _subs(row[9], cache)}


def _pair_substitutions(removed, added):
    """[(foreign removed, domestic added)] within one host and category."""
    foreign = [c for c in removed if c.get("origin") == "foreign"]
    domestic = [c for c in added if c.get("origin") == "domestic"]
    pairs = []
    for f in list(foreign):  # a listed substitute first
        match = next((d for d in domestic if d.get("product_id") in (f.get("substitutes") or [])), None)
        if match is not None:
            pairs.append((f, match))
            foreign.remove(f)
            domestic.remove(match)
    pairs.extend(zip(foreign, domestic))
    return pairs


def _order(hosts):
    return sorted(hosts, key=lambda x: (hosts[x]["org_path"], hosts[x]["hostname"] or "", x))


def _host(x):
    return {"host_id": x["host_id"], "hostname": x["hostname"], "org_path": x["org_path"]}


def _components(conn, scope, org, start, end, hosts, only=False):
    """{host_id: (removed, added)} component dicts (each sorted by key) of the hosts in ``hosts``
    (``only``: the change rows of those hosts alone are read)."""
    folded = _fold(conn, db.component_changes, _C_READ, 3, scope, org, start, end,
                   sorted(hosts) if only else None)
    out, cache = {}, {}
    for k in sorted(folded, key=lambda k: (k[0], str(k[1]), str(k[2]))):
        hid = k[0]
        if hid not in hosts or hosts[hid]["a"] is None:
            continue
        first, last = folded[k]
        was, now_ = first[3] == "remove", last[3] == "add"
        if was and not now_:
            out.setdefault(hid, ([], []))[0].append(_comp_out(first, cache))
        elif now_ and not was:
            out.setdefault(hid, ([], []))[1].append(_comp_out(last, cache))
    return out


def _substitution_rows(host, removed, added):
    rows = []
    for cat in sorted({c["category"] for c in removed} & {c["category"] for c in added}, key=str):
        for f, d in _pair_substitutions([c for c in removed if c["category"] == cat],
                                        [c for c in added if c["category"] == cat]):
            rows.append(dict(host, category=cat, from_product=f["product_id"], from_zh=f["name_zh"],
                             from_en=f["name_en"], to_product=d["product_id"], to_zh=d["name_zh"], to_en=d["name_en"],
                             listed=d["product_id"] in (f["substitutes"] or [])))
    return rows


def _range(start, end):
    end = now() if end is None else int(end)
    start = end - 7 * DAY if start is None else int(start)
    if start >= end:
        from scanner.server.errors import bad_request
        raise bad_request("bad_range", "from must be before to")
    return start, end


def _since(conn, start):
    since = conn.execute(select(db.change_epoch.c.since).where(db.change_epoch.c.id == 1)).scalar()
    return since if since is not None and start < since else None


def feed(engine, scope, org=None, start=None, end=None):
    """The changes between ``start`` and ``end`` (unix seconds; default the last 7 days)."""
    start, end = _range(start, end)
    rc = db.result_changes
    with engine.connect() as conn:
        hosts = _hosts(conn, scope, org, start, end)
        folded = _fold(conn, rc, ("host_id", "profile", "rule_id", "status_before", "status_after", "severity",
                                  "title_zh", "title_en"), 3, scope, org, start, end)
        comps = _components(conn, scope, org, start, end, hosts)
        since = _since(conn, start)
    by_host = {}
    for key in folded:
        by_host.setdefault(key[0], []).append(key)
    out = {"from": start, "to": end, "org": org, "hosts": len(hosts), "new": [], "fixed": [], "added": [],
           "removed": [], "substitutions": [], "stopped": [], "joined": []}
    if since is not None:
        out["recorded_since"] = since
    for hid in _order(hosts):
        x = hosts[hid]
        if x["a"] is None:
            continue  # no report yet at the end: nothing to compare
        host = _host(x)
        new_host = joined(x, start)
        if new_host:
            out["joined"].append(dict(host, first_report=x["a"]))
        elif stopped(x, start, end):
            out["stopped"].append(dict(host, last_report=x["a"]))
        if not new_host:  # findings (a host that joined has no earlier state)
            for key in sorted(by_host.get(hid, ()), key=lambda k: (str(k[1]), k[2])):
                first, last = folded[key]
                sb, sa = first[3], last[4]
                if sa in BAD and sb not in BAD:
                    kind = "new"
                elif sb in BAD and sa is not None and sa not in BAD:
                    kind = "fixed"
                else:
                    continue
                out[kind].append(dict(host, profile=key[1], rule_id=key[2], severity=last[5],
                                      title={"zh": last[6], "en": last[7]}, before=sb, after=sa))
        removed, added = comps.get(hid, ([], []))
        out["removed"].extend(dict(host, **c) for c in removed)
        out["added"].extend(dict(host, **c) for c in added)
        out["substitutions"].extend(_substitution_rows(host, removed, added))
    for k in SECTIONS:  # each list in the order of its rows' keys (the keyset cursor's order, see page)
        out[k].sort(key=lambda r, k=k: row_key(k, r))
    counts = {}
    for r in out["new"]:
        counts.setdefault(r["after"], {}).setdefault(r["severity"] or "none", 0)
        counts[r["after"]][r["severity"] or "none"] += 1
    out["new_by_severity"] = counts
    out["counts"] = {k: len(out[k]) for k in ("new", "fixed", "added", "removed", "substitutions", "stopped", "joined")}
    return out


def substitutions(engine, scope, org, start, end):
    """{count, by_category, rows} of the substitutions completed between ``start`` and ``end``
    (the component change rows of the window only)."""
    start, end = _range(start, end)
    h = db.hosts
    with engine.connect() as conn:
        # a substitution pairs a foreign component gone with a domestic one new in a host and category
        # (_pair_substitutions): a component new over the window was last added in it, by a change row
        # carrying its origin, so only the hosts with a domestic component added in the window can have
        # one; the others' rows are not read (the partial index ix_component_changes_domestic_add finds
        # them, migration 0034). At 10,000 hosts x 90 days (bench/fleet_scale.py: 179,000 component change
        # rows, 500 hosts with a substitution), the 90-day substitutions 1,297-1,392 -> 56 ms, the same rows.
        cc = db.component_changes
        ids = [x[0] for x in conn.execute(_where(select(cc.c.host_id).distinct().select_from(
            cc.join(h, h.c.id == cc.c.host_id)).where(cc.c.at > start, cc.c.at <= end, cc.c.op == "add",
                                                      cc.c.origin == "domestic", h.c.retired_at.is_(None)),
            *_in_scope(scope, h.c.org_path, org)))]
        hosts = {}
        for i in range(0, len(ids), 500):
            hosts.update((x[0], {"host_id": x[0], "hostname": x[1], "org_path": x[2], "a": x[3]}) for x in conn.execute(
                select(h.c.id, h.c.hostname, h.c.org_path, h.c.latest_collected).where(h.c.id.in_(ids[i:i + 500]))))
        comps = _components(conn, scope, org, start, end, hosts, only=True)
        since = _since(conn, start)
    rows = []
    for hid in _order(hosts):
        removed, added = comps.get(hid, ([], []))
        rows.extend(_substitution_rows(_host(hosts[hid]), removed, added))
    by_cat = {}
    for s in rows:
        by_cat[s["category"]] = by_cat.get(s["category"], 0) + 1
    out = {"count": len(rows), "by_category": by_cat, "rows": rows}
    if since is not None:
        out["recorded_since"] = since
    return out


# --- paging (the JSON API) ---------------------------------------------------------------------------
SECTIONS = ("new", "fixed", "added", "removed", "substitutions", "stopped", "joined")
_SEV_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def _s(value):
    return "" if value is None else str(value)


def row_key(section, r):
    """The sort key of a feed row in its list: what a keyset cursor carries (strings and integers).
    Equal keys (the same component twice on a host) are told apart by their rank among equals (page)."""
    host = (_s(r["org_path"]), _s(r["hostname"]), _s(r["host_id"]))
    if section == "new":
        return (int(r["after"] != "fail"), _SEV_RANK.get(r["severity"], 9), host[0], host[1], _s(r["rule_id"]),
                host[2], _s(r["profile"]))
    if section == "fixed":
        return host + (_s(r["profile"]), _s(r["rule_id"]))
    if section in ("added", "removed"):
        return host + tuple(_s(r.get(f)) for f in ("category", "product_id", "name_en", "name_zh", "version", "origin"))
    if section == "substitutions":
        return host + tuple(_s(r.get(f)) for f in ("category", "from_product", "to_product", "from_en", "to_en"))
    return host


def _keys(section, rows):
    keys, prev, n = [], None, 0
    for r in rows:
        k = row_key(section, r)
        n = n + 1 if k == prev else 0
        prev = k
        keys.append(k + (n,))
    return keys


def page(got, after, limit):
    """``got`` (a feed) with its row lists cut to the ``limit`` rows that follow ``after`` (None: from
    the start; else (section index, key of the last row of the previous page)) taken section after
    section in SECTIONS order (the CSV's order), each list in its keys' order. A keyset, not an
    offset: a change recorded meanwhile (a report stored late) before the previous page's last row
    shifts nothing after it, so no row is listed twice or left out across the pages. The counts,
    ``new_by_severity`` and ``hosts`` stay those of the whole feed. Returns (the page, the ``after``
    of the next page or None: (section index, key, the position after the page's last row in its
    section: a hint change_summary.api_page reads the next page from))."""
    import bisect
    out = dict(got)
    need, last, more = limit, None, False
    for i, k in enumerate(SECTIONS):
        rows = got[k]
        if after is not None and i < after[0]:
            out[k] = []
            continue
        keys = _keys(k, rows)
        start = 0
        if after is not None and i == after[0]:
            try:
                start = bisect.bisect_right(keys, tuple(after[1]))
            except TypeError:  # a key of another shape than this section's
                from scanner.server.errors import ApiError
                raise ApiError(422, "bad_cursor", "cursor is not one this server handed out") from None
        out[k] = rows[start:start + need]
        if out[k]:
            last = (i, list(keys[start + len(out[k]) - 1]), start + len(out[k]))
        need -= len(out[k])
        if start + len(out[k]) < len(rows):
            more = True
    return out, (last if more else None)


def cursor(start, end, org, after):
    """An opaque cursor for the page after ``after`` ((section index, key): see ``page``) of the feed of
    ``org`` between ``start`` and ``end`` (the resolved window: a default ``to`` of now stays the same
    for every page). It carries no scope: each page is read with the caller's own."""
    import base64
    import json
    body = {"v": 2, "from": start, "to": end, "org": org, "s": after[0], "k": after[1]}
    if len(after) > 2:
        body["o"] = after[2]  # where the row was in its list: a hint, checked against the key when read
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def read_cursor(value):
    """{from, to, org, after} of a cursor made by ``cursor``; a 422 (bad_cursor) for anything else."""
    import base64
    import binascii
    import json
    from scanner.server.errors import ApiError
    bad = ApiError(422, "bad_cursor", "cursor is not one this server handed out (use the 'next' of an answer as it is)")
    try:
        got = json.loads(base64.urlsafe_b64decode(value.encode("ascii") + b"=" * (-len(value) % 4)).decode())
    except (ValueError, UnicodeError, binascii.Error):
        raise bad from None
    if not isinstance(got, dict) or got.get("v") != 2:
        raise bad
    ints = [got.get(k) for k in ("from", "to")]
    key = got.get("k")
    if not all(type(x) is int and 0 <= x < 2 ** 40 for x in ints) or \
            not (got.get("org") is None or isinstance(got["org"], str) and len(got["org"]) <= 512) or \
            type(got.get("s")) is not int or not 0 <= got["s"] < len(SECTIONS) or \
            not isinstance(key, list) or not 1 <= len(key) <= 12 or \
            not all(type(x) is int and abs(x) < 2 ** 40 or isinstance(x, str) and len(x) <= 1024 for x in key) or \
            not (got.get("o") is None or type(got["o"]) is int and 1 <= got["o"] < 2 ** 31):
        raise bad
    return {"from": ints[0], "to": ints[1], "org": got["org"], "after": (got["s"], key), "offset": got.get("o")}


CSV_FIELDS = ("change", "hostname", "org_path", "profile", "rule_id", "severity", "before", "after", "category",
              "product_id", "name_zh", "name_en", "origin", "to_product", "at")


def csv_rows(got):
    """The feed as flat rows (dicts with CSV_FIELDS) for the CSV export."""
    for kind in ("new", "fixed"):
        for r in got[kind]:
            yield {"change": "new_" + r["after"] if kind == "new" else "fixed", "hostname": r["hostname"],
                   "org_path": r["org_path"], "profile": r["profile"], "rule_id": r["rule_id"],
                   "severity": r["severity"], "before": r["before"], "after": r["after"]}
    for kind in ("added", "removed"):
        for r in got[kind]:
            yield {"change": "component_" + kind, "hostname": r["hostname"], "org_path": r["org_path"],
                   "category": r["category"], "product_id": r["product_id"], "name_zh": r["name_zh"],
                   "name_en": r["name_en"], "origin": r["origin"]}
    for r in got["substitutions"]:
        yield {"change": "substitution", "hostname": r["hostname"], "org_path": r["org_path"], "category": r["category"],
               "product_id": r["from_product"], "name_zh": r["from_zh"], "name_en": r["from_en"], "origin": "foreign",
               "to_product": r["to_product"]}
    for r in got["stopped"]:
        yield {"change": "stopped_reporting", "hostname": r["hostname"], "org_path": r["org_path"], "at": r["last_report"]}
    for r in got["joined"]:
        yield {"change": "joined", "hostname": r["hostname"], "org_path": r["org_path"], "at": r["first_report"]}
