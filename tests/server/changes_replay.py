"""The change feed as it was computed before the change records (scanner/server/store/changes.py): by
reading two stored report documents per host on demand. Kept as the reference the records are compared
with (test_change_records.py) and timed against (bench/progress_feed.py); the refusal of a scope over
MAX_HOSTS is off unless asked for (``max_hosts``).

What changed in a scope between two times (issue #15 item 5), from the stored report history.

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
inside the caller's Scope are read; a scope of more than ``MAX_HOSTS`` live hosts is refused with
the count (ask for a narrower org unit), so one request never inflates an unbounded history."""
from __future__ import annotations

from sqlalchemy import func, select

from scanner.server.errors import ApiError
from scanner.server.store import bodies, db
from scanner.server.store.jsondoc import skipped
from scanner.server.store.queries import _in_scope, _where
from scanner.server.store.reports import report_document
from scanner.server.util import now

MAX_HOSTS = 2000
STALE = 3 * 86400
DAY = 86400
BAD = ("fail", "error")
SEVERITIES = ("critical", "high", "medium", "low", "info")


def _hosts(conn, scope, org, max_hosts=None):
    h = db.hosts
    conds = list(_in_scope(scope, h.c.org_path, org)) + [h.c.retired_at.is_(None)]
    n = conn.execute(_where(select(func.count()).select_from(h), *conds)).scalar() or 0
    if max_hosts is not None and n > max_hosts:
        raise ApiError(422, "scope_too_large", "%d hosts: the change feed reads at most %d at once; choose an org "
                       "unit below this one" % (n, MAX_HOSTS))
    return {r[0]: {"host_id": r[0], "hostname": r[1], "org_path": r[2]}
            for r in conn.execute(_where(select(h.c.id, h.c.hostname, h.c.org_path), *conds))}


def _latest_ids(conn, host_ids, t):
    """{(host_id, profile): (report_id, collected_at)}: the newest report of each host and profile
    collected at or before ``t``."""
    r = db.reports
    out = {}
    ids = sorted(host_ids)
    for i in range(0, len(ids), 500):
        k = func.row_number().over(partition_by=(r.c.host_id, r.c.profile),
                                   order_by=(r.c.collected_at.desc(), r.c.id.desc())).label("k")
        inner = select(r.c.id, r.c.host_id, r.c.profile, r.c.collected_at, k).where(
            r.c.host_id.in_(ids[i:i + 500]), r.c.collected_at <= t).subquery()
        for rid, hid, profile, at in conn.execute(select(inner.c.id, inner.c.host_id, inner.c.profile,
                                                         inner.c.collected_at).where(inner.c.k == 1)):
            out[(hid, profile)] = (rid, at)
    return out


def _first_ids(conn, host_ids, start, end):
    """{host_id: (report_id, collected_at)}: the first report of each host collected after ``start``
    and at or before ``end`` (the inventory a host that joined in the window started with)."""
    r = db.reports
    out = {}
    ids = sorted(host_ids)
    for i in range(0, len(ids), 500):
        k = func.row_number().over(partition_by=r.c.host_id, order_by=(r.c.collected_at.asc(), r.c.id.asc())).label("k")
        inner = select(r.c.id, r.c.host_id, r.c.collected_at, k).where(
            r.c.host_id.in_(ids[i:i + 500]), r.c.collected_at > start, r.c.collected_at <= end).subquery()
        for rid, hid, at in conn.execute(select(inner.c.id, inner.c.host_id, inner.c.collected_at)
                                         .where(inner.c.k == 1)):
            out[hid] = (rid, at)
    return out


def _documents(conn, report_ids):
    r = db.reports
    docs = {}
    ids = sorted(set(report_ids))
    for i in range(0, len(ids), 200):
        for row in conn.execute(select(r.c.id, r.c.body_gz, r.c.evaluated_gz, r.c.body_kind, r.c.sha256,
                                       r.c.collected_at, r.c.pruned_at).where(r.c.id.in_(ids[i:i + 200])))\
                .mappings().all():
            row = dict(row)
            try:
                bodies.load(conn, [row])
                doc = report_document(row)
                docs[row["id"]] = doc if isinstance(doc, dict) else None
            except Exception as exc:  # noqa: BLE001 - one damaged stored report is one host less
                skipped("report", row, exc)
                docs[row["id"]] = None
    return docs


def _results(doc):
    return {r.get("rule_id"): r for r in (doc or {}).get("results") or [] if isinstance(r, dict) and r.get("rule_id")}


def _components(doc):
    out = []
    for c in ((doc or {}).get("inventory") or {}).get("components") or []:
        if isinstance(c, dict):
            out.append(c)
    return out


def _name(c, lang):
    name = c.get("name")
    if isinstance(name, dict):
        return name.get(lang) or name.get("en") or name.get("zh")
    return name


def _comp_key(c):
    return (c.get("category"), c.get("product_id") or _name(c, "en"))


def _comp_out(c):
    return {"category": c.get("category"), "product_id": c.get("product_id"), "name_zh": _name(c, "zh"),
            "name_en": _name(c, "en"), "origin": c.get("origin"), "version": c.get("version"),
            "substitutes": [s for s in c.get("substitutes") or [] if isinstance(s, str)]}


def _newest(states):
    """{host_id: the newest (report_id, collected_at) over its profiles}."""
    out = {}
    for (hid, _p), v in states.items():
        if hid not in out or (v[1], v[0]) > (out[hid][1], out[hid][0]):
            out[hid] = v
    return out


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


def feed(engine, scope, org=None, start=None, end=None, max_hosts=None):
    """The changes between ``start`` and ``end`` (unix seconds; default the last 7 days)."""
    end = now() if end is None else int(end)
    start = end - 7 * DAY if start is None else int(start)
    if start >= end:
        from scanner.server.errors import bad_request
        raise bad_request("bad_range", "from must be before to")
    with engine.connect() as conn:
        hosts = _hosts(conn, scope, org, max_hosts)
        before = _latest_ids(conn, hosts, start)
        after = _latest_ids(conn, hosts, end)
        b_newest, a_newest = _newest(before), _newest(after)
        first = _first_ids(conn, [x for x in hosts if x not in b_newest], start, end)
        docs = _documents(conn, [v[0] for v in before.values()] + [v[0] for v in after.values()]
                          + [v[0] for v in first.values()])
    after_by_host = {}
    for (hid, profile) in after:
        after_by_host.setdefault(hid, []).append((hid, profile))
    out = {"from": start, "to": end, "org": org, "hosts": len(hosts), "new": [], "fixed": [], "added": [],
           "removed": [], "substitutions": [], "stopped": [], "joined": []}
    for hid in sorted(hosts, key=lambda x: (hosts[x]["org_path"], hosts[x]["hostname"] or "", x)):
        host = hosts[hid]
        b_new, a_new = b_newest.get(hid), a_newest.get(hid)
        if a_new is None:
            continue  # no report yet at the end: nothing to compare
        if b_new is None:
            out["joined"].append(dict(host, first_report=a_new[1]))
        elif b_new[1] > start - STALE and a_new[1] <= end - STALE:
            out["stopped"].append(dict(host, last_report=a_new[1]))
        if b_new is not None:  # findings, per profile (a host that joined has no earlier state)
            for profile in sorted((p for (_h, p) in after_by_host.get(hid, ())), key=str):
                rid_a = after[(hid, profile)][0]
                prior = before.get((hid, profile))
                ra = _results(docs.get(rid_a))
                rb = _results(docs.get(prior[0])) if prior else {}
                for rule_id in sorted(set(ra) | set(rb)):
                    x, y = rb.get(rule_id), ra.get(rule_id)
                    sb, sa = (x or {}).get("status"), (y or {}).get("status")
                    src = y or x
                    row = dict(host, profile=profile, rule_id=rule_id, severity=src.get("severity"),
                               title=src.get("title") if isinstance(src.get("title"), dict) else {},
                               before=sb, after=sa)
                    if sa in BAD and sb not in BAD:
                        out["new"].append(row)
                    elif sb in BAD and sa is not None and sa not in BAD:
                        out["fixed"].append(row)
        # inventory, from the newest report of any profile (a host that joined: its first in the window)
        base = b_new if b_new is not None else first.get(hid)
        if base is not None and base[0] != a_new[0] and docs.get(base[0]) is not None \
                and docs.get(a_new[0]) is not None:
            cb = {_comp_key(c): c for c in _components(docs.get(base[0]))}
            ca = {_comp_key(c): c for c in _components(docs.get(a_new[0]))}
            removed = [cb[k] for k in sorted(set(cb) - set(ca), key=lambda k: tuple(str(x) for x in k))]
            added = [ca[k] for k in sorted(set(ca) - set(cb), key=lambda k: tuple(str(x) for x in k))]
            for c in removed:
                out["removed"].append(dict(host, **_comp_out(c)))
            for c in added:
                out["added"].append(dict(host, **_comp_out(c)))
            for cat in sorted({c.get("category") for c in removed} & {c.get("category") for c in added}, key=str):
                for f, d in _pair_substitutions([c for c in removed if c.get("category") == cat],
                                                [c for c in added if c.get("category") == cat]):
                    out["substitutions"].append(dict(host, category=cat, from_product=f.get("product_id"),
                                                     from_zh=_name(f, "zh"), from_en=_name(f, "en"),
                                                     to_product=d.get("product_id"), to_zh=_name(d, "zh"),
                                                     to_en=_name(d, "en"), listed=d.get("product_id") in
                                                     (f.get("substitutes") or [])))
    sev_rank = {s: i for i, s in enumerate(SEVERITIES)}
    out["new"].sort(key=lambda r: (r["after"] != "fail", sev_rank.get(r["severity"], 9), r["org_path"],
                                   r["hostname"] or "", r["rule_id"]))
    counts = {}
    for r in out["new"]:
        counts.setdefault(r["after"], {}).setdefault(r["severity"] or "none", 0)
        counts[r["after"]][r["severity"] or "none"] += 1
    out["new_by_severity"] = counts
    out["counts"] = {k: len(out[k]) for k in ("new", "fixed", "added", "removed", "substitutions", "stopped", "joined")}
    return out


def substitutions(engine, scope, org, start, end):
    """{count, by_category, rows} of the substitutions completed between ``start`` and ``end``;
    {count: None, error} when the scope is too large to read."""
    try:
        got = feed(engine, scope, org, start, end, MAX_HOSTS)
    except ApiError as exc:
        if exc.code != "scope_too_large":
            raise
        return {"count": None, "by_category": {}, "rows": [], "error": exc.message}
    by_cat = {}
    for s in got["substitutions"]:
        by_cat[s["category"]] = by_cat.get(s["category"], 0) + 1
    return {"count": len(got["substitutions"]), "by_category": by_cat, "rows": got["substitutions"]}


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
