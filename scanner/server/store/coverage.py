"""GB/T 28448 coverage of hosts and org subtrees: every test item of a level (rules/controls/) with
its result — decided by rules (automated), recorded by an assessor (workflow/assessments.py), or
open — read through the caller's Scope like every fleet query.

Per item and host:
- automated item: the worst result of its rules on the host (scanner/engine/coverage.py's order:
  fail > error > waived > manual > pass > not_applicable; central waivers applied); none ran: open;
- manual or partial item: the valid recorded verdict (the host's own, else the nearest org unit's
  above it; a lapsed or revoked verdict does not count): recorded; none: open.
An org subtree's item is complete when it is complete on every live host of the subtree."""
from __future__ import annotations

from collections import namedtuple
from itertools import repeat

from sqlalchemy import case, func, literal, null, select, true
from sqlalchemy.dialects.postgresql import aggregate_order_by

from scanner.server.errors import bad_request, not_found
from scanner.server.store import db
from scanner.server.store.scope import check
from scanner.server.util import dumps, normalise_org, now, org_ancestors

JOB = "rule_sets"  # the background job keeping the hosts' rule-set digests ahead (keep_ahead)
VERDICTS = ("conform", "partial", "nonconform", "not_applicable")  # 符合 / 部分符合 / 不符合 / 不适用
ASSESSABLE = ("manual", "partial")  # item statuses an assessor decides
_ORDER = ("fail", "error", "waived", "manual", "pass", "not_applicable")
_LEVELS = {}


def level_items(level):
    """[item] of a controls file (rules/controls/<level>.yaml) in file order, cached; 400 for an unknown one."""
    if not isinstance(level, str) or not level.replace("-", "").isalnum() or len(level) > 32:
        raise bad_request("bad_level", "level must be a controls name such as mlps-l3")
    if level not in _LEVELS:
        from scanner.engine.coverage import load_controls
        try:
            doc = load_controls(level)
        except Exception:  # noqa: BLE001 - a missing or broken file is an unknown level here
            raise bad_request("bad_level", "no GB/T 28448 item list %r (rules/controls/)" % level)
        _LEVELS[level] = {item["id"]: item for item in doc["items"]}
    return _LEVELS[level]


def valid_verdicts(conn, level, orgs, t=None):
    """{(host_id, item_id): verdict row} for hosts {host_id: org_path}: the host's own valid
    verdict, else the nearest org unit's above it (the newest of equals)."""
    t = now() if t is None else t
    a = db.assessments
    chains = dict((org, list(reversed(org_ancestors(org)))) for org in set(orgs.values()))  # nearest first
    paths = sorted({anc for chain in chains.values() for anc in chain})
    by_host, by_org = {}, {}
    hosts = sorted(orgs)
    # many hosts (a department or more): the level's valid host verdicts are read whole and those of these
    # hosts kept (assessors record them: thousands at most), instead of 500 host ids bound per statement
    whole = len(hosts) > 2000
    for i in range(0, 1 if whole else max(len(hosts), 1), 500):
        chunk = hosts[i:i + 500]
        mine = (a.c.target_kind == "host") if whole else ((a.c.target_kind == "host") & a.c.target.in_(chunk))
        q = select(a).where(a.c.level == level, a.c.revoked_at.is_(None), a.c.valid_until > t,
                            ((a.c.target_kind == "org") & a.c.target.in_(paths)) | mine).order_by(a.c.id)
        for r in conn.execute(q).mappings():  # newer rows overwrite older ones
            if r["target_kind"] == "host" and r["target"] not in orgs:
                continue
            (by_host if r["target_kind"] == "host" else by_org)[(r["target"], r["item_id"])] = dict(r)
    items = {k[1] for k in by_host} | {k[1] for k in by_org}
    out = {}
    for host_id, org in orgs.items():
        chain = chains[org]
        for item_id in items:
            r = by_host.get((host_id, item_id))
            if r is None:
                r = next((by_org[(anc, item_id)] for anc in chain if (anc, item_id) in by_org), None)
            if r is not None:
                out[(host_id, item_id)] = r
    return out


def _worst(statuses):
    return next((s for s in _ORDER if s in statuses), None)


def _entry(item_id, item, host, verdicts, statuses=None, present=None):
    """A host's state for an item: its recorded verdict (an item assessed by a person), else the worst
    status of the item's rules among the host's results (``statuses`` {(host_id, rule_id): statuses}),
    or with ``present`` ({host_id: rule ids it has results of}) whether it has any (no result given)."""
    if item.get("status") in ASSESSABLE:
        v = verdicts.get((host.id, item_id))
        entry = {"state": "recorded", "result": v["verdict"], "assessment_id": v["id"],
                 "by": v["target_kind"], "valid_until": v["valid_until"]} if v else {"state": "open", "result": None}
    elif present is not None:
        have = present.get(host.id, ())
        entry = {"state": "automated" if any(rid in have for rid in item.get("rules") or ()) else "open",
                 "result": None}
    else:
        ran = set()
        for rid in item.get("rules") or ():
            ran |= statuses.get((host.id, rid), set())
        res = _worst(ran)
        entry = {"state": "automated" if res is not None else "open", "result": res}
    entry.update(host_id=host.id, hostname=host.hostname)
    return entry


def coverage(engine, scope, level="mlps-l3", host_id=None, org=None):
    """Coverage of one host (``host_id``) or of an org subtree (``org``; default: the whole scope)."""
    check(scope)
    items = level_items(level)
    h = db.hosts
    with engine.connect() as conn:
        if host_id:
            row = conn.execute(select(h.c.id, h.c.hostname, h.c.org_path).where(h.c.id == host_id)).first()
            if row is None or not scope.covers(row.org_path):
                raise not_found("no host %s" % host_id)
            hosts = [row]
        else:
            base = normalise_org(org) if org else None
            if org and (base is None or not scope.touches(base)):
                raise not_found("no org unit %s" % org)
            hosts = subtree_hosts(conn, scope, base)
        orgs = dict((x.id, x.org_path) for x in hosts)
        rules = sorted({rid for it in items.values() for rid in it.get("rules") or ()})
        t = now()
        verdicts = valid_verdicts(conn, level, orgs, t)
        # each item keeps its count and the first open hosts only: the whole fleet's results (10,000 hosts,
        # 1.39 million results of the level's rules) held as one map took 767 MB of the worker and 6.8 s
        got = dict((item_id, {"done": 0, "shown": []}) for item_id in items)
        if host_id:
            _judge_host(conn, hosts[0], items, rules, verdicts, got, t)
        else:
            _count_org(conn, hosts, items, rules, verdicts, got)
    out_items = []
    for item_id, item in items.items():
        done, per_host = got[item_id]["done"], got[item_id]["shown"]
        out_items.append({"id": item_id, "clause": item.get("clause"), "area": item.get("area"),
                          "title": item.get("title"), "status": item.get("status"),
                          "hosts": len(hosts), "complete_hosts": done,
                          "complete": bool(hosts) and done == len(hosts),
                          "per_host": per_host,
                          "result": per_host[0]["result"] if host_id and per_host else None,
                          "state": per_host[0]["state"] if host_id and per_host else
                          ("complete" if hosts and done == len(hosts) else "open")})
        if host_id and per_host:
            for key in ("by", "assessment_id", "valid_until"):
                if key in per_host[0]:
                    out_items[-1][key] = per_host[0][key]
    complete = sum(1 for i in out_items if i["complete"])
    return {"level": level, "host_id": host_id, "org": None if host_id else (normalise_org(org) if org else None),
            "hosts": len(hosts), "items": out_items, "complete_items": complete, "total_items": len(out_items)}


def _judge_host(conn, host, items, rules, verdicts, got, t):
    """One host's state for every item, with the worst result of each item's rules (central waivers applied)."""
    r = db.results
    statuses = {}
    q = select(r.c.host_id, r.c.rule_id, r.c.status, r.c.waiver_until).where(
        r.c.host_id == host.id, r.c.rule_id.in_(rules))
    for hid, rid, status, until in conn.execute(q).all():
        if status == "fail" and until is not None and until > t:
            status = "waived"
        statuses.setdefault((hid, rid), set()).add(status)
    for item_id, item in items.items():
        entry = _entry(item_id, item, host, verdicts, statuses)
        got[item_id]["done"] += entry["state"] != "open"
        got[item_id]["shown"].append(entry)


def _count_org(conn, hosts, items, rules, verdicts, got, batch=500, shown=50):
    """An org subtree's count of hosts complete per item and its first ``shown`` open hosts (in the hosts'
    order): an org's page shows no host's result, only whether it has one. The hosts' rule ids are read
    ``batch`` hosts at a time (on PostgreSQL each host's set as a digest, ``_rule_sets``: the rows one by
    one through the driver were the cost, 10,000 hosts 6.0-6.5 s; as arrays 1.4-1.5 s); a host's open
    automated items are worked out once per set of rule ids (hosts of one profile mostly share it) and
    counted per set of open items, not host by host and item by item (340,000 judgements at 10,000 hosts)."""
    r = db.results
    auto = [(item_id, frozenset(item.get("rules") or ())) for item_id, item in items.items()
            if item.get("status") not in ASSESSABLE]
    manual = [item_id for item_id, item in items.items() if item.get("status") in ASSESSABLE]
    manual_set, manual_left = frozenset(manual), list(manual)
    opened_of, open_count, sets = {}, {}, {}
    need = set(items)  # the items showing fewer than ``shown`` open hosts
    arrays = conn.dialect.name == "postgresql"
    if arrays:  # each host's kept digest came with it (subtree_hosts): a batch reads only new sets' rule ids
        batch *= 4
    for i in range(0, len(hosts), batch):
        part = hosts[i:i + batch]
        present = {}
        if arrays:
            present = _rule_sets(conn, part, sets)
        else:
            ids = [x.id for x in part]
            for hid, rid in conn.execute(select(r.c.host_id, r.c.rule_id).distinct().where(
                    r.c.host_id.in_(ids), r.c.rule_id.in_(rules))):
                present.setdefault(hid, set()).add(rid)
            present = dict((hid, frozenset(v)) for hid, v in present.items())
        for x in part:
            have = present.get(x.id, frozenset())
            opened = opened_of.get(have)
            if opened is None:
                opened = frozenset(item_id for item_id, wanted in auto if not (wanted & have))
                if len(opened_of) >= 1000:  # bounded, whatever the hosts report
                    opened_of.clear()
                opened_of[have] = opened
            open_count[opened] = open_count.get(opened, 0) + 1
            if manual_left:  # until each manual item shows its first open hosts
                hid = x.id
                for item_id in manual_left:
                    if (hid, item_id) not in verdicts:
                        _show(got, need, item_id, items[item_id], x, verdicts, present, shown)
                manual_left = [item_id for item_id in manual_left if item_id in need]
            if need:
                for item_id in opened & need:
                    _show(got, need, item_id, items[item_id], x, verdicts, present, shown)
    for item_id, _wanted in auto:
        got[item_id]["done"] = len(hosts) - sum(n for opened, n in open_count.items() if item_id in opened)
    # a manual item is done on the hosts with a valid verdict of it (``verdicts`` holds only these hosts'):
    # counted from the verdicts, not looked up host by host and item by item (250,000 lookups at 10,000
    # hosts: half of the whole fleet's coverage)
    for _hid, item_id in verdicts:
        if item_id in manual_set:
            got[item_id]["done"] += 1


# the hosts' ids as one JSON text unpacked by the database: psycopg's array dumper escaped each id in Python
# (2,000 ids a batch: 15% of the whole fleet's coverage)
_IDS = "ARRAY(SELECT json_array_elements_text(CAST(:ids AS json)))"
_KEYS = ("SELECT host_id, string_agg(profile || ' ' || report_id, E'\\n' ORDER BY profile) AS profiles "
         "FROM host_profiles WHERE host_id = ANY(%s) GROUP BY host_id" % _IDS)
# the rows come in the unique index's order (host, profile, rule) and are joined in that order without a
# sort (an ORDER BY inside string_agg sorted 79,000 rows a batch by collation: 133-164 -> 28 ms)
_DIGESTS = ("SELECT host_id, encode(sha256(convert_to(string_agg(rule_id, E'\\n'), 'UTF8')), 'hex') AS digest "
            "FROM (SELECT host_id, rule_id FROM results WHERE host_id = ANY(" + _IDS + ") "
            "ORDER BY host_id, profile, rule_id) s GROUP BY host_id")


# a host of an org subtree's coverage; on PostgreSQL with whether it has a profile and its kept rule-set
# digest when that was made under its profiles' latest reports (_with_digests; None elsewhere)
_Host = namedtuple("_Host", "id hostname org_path profiled digest")


def subtree_hosts(conn, scope, base=None):
    """[_Host] of the live hosts of the org subtree ``base`` (None or '/': the whole scope) inside the
    scope, in the hosts' order (org, name). Plain tuples: a Row's attributes cost ~1 us each, and each
    host's are read several times."""
    h = db.hosts
    q = select(h.c.id, h.c.hostname, h.c.org_path)
    if conn.dialect.name == "postgresql":  # with each host's kept rule-set digest (_rule_sets)
        q = _with_digests(q, h)
    else:
        q = q.add_columns(null(), null())
    q = q.where(h.c.retired_at.is_(None))
    cond = check(scope).where(h.c.org_path)
    if cond is not None:
        q = q.where(cond)
    if base and base != "/":
        q = q.where((h.c.org_path == base) | h.c.org_path.like(base + "/%"))
    # fetched at once; each row made a _Host by tuple's own constructor (_Host's __new__ is Python: 1.3 us a row)
    return list(map(tuple.__new__, repeat(_Host), conn.execute(q.order_by(h.c.org_path, h.c.hostname)).all()))


def _with_digests(q, h):
    """``q`` of the hosts ``h`` with whether each has a profile and its kept digest (host_rule_sets) when
    the key it was made under is its profiles' latest report ids now (as _KEYS makes it), else NULL:
    read with the hosts in one statement, compared by the database (instead of one more statement a batch
    binding the batch's host ids, and both keys sent back)."""
    p, s = db.host_profiles, db.host_rule_sets
    k = select(func.string_agg(p.c.profile + literal(" ") + p.c.report_id,
                               aggregate_order_by(literal("\n"), p.c.profile)).label("profiles")).where(
        p.c.host_id == h.c.id).lateral("k")  # an aggregate: one row a host, NULL without a profile
    return q.add_columns(k.c.profiles.isnot(None), case((s.c.profiles == k.c.profiles, s.c.digest))).select_from(
        h.outerjoin(s, s.c.host_id == h.c.id).join(k, true()))


def _rule_sets(conn, hosts, sets):
    """{host_id: frozenset of the rule ids it has results of} on PostgreSQL, for ``hosts`` (_Host, read by
    _with_digests) with results.

    Each host's set is kept as a digest (table host_rule_sets) under the key of its profiles' latest
    report ids, which intake changes with every new latest report (re-evaluation deletes the row): a host
    whose key still matches costs one small row, not its ~160 results. The others' digests are read from
    their results and their keys in one statement (one snapshot: a report stored meanwhile cannot pair an
    old key with a new set) and kept. The set behind each digest is read once, for one of its hosts
    (``sets``: {digest: frozenset}, kept across batches, bounded). Two hosts with one set and different
    digests (a second profile) only cost a second read of the set. The sets hold every rule id of the
    host: an item asks only whether its rules are among them."""
    digests, stale = {}, []
    for x in hosts:
        if x.digest is not None:
            digests[x.id] = x.digest
        elif x.profiled:  # (a host without a profile has no results)
            stale.append(x.id)
    if stale:
        digests.update(_keep_sets(conn.engine, stale))
    known, unseen = {"": frozenset()}, {}
    for hid, digest in digests.items():
        if digest in sets:
            known[digest] = sets[digest]
        elif digest not in known and digest not in unseen:
            unseen[digest] = hid
    if unseen:
        r = db.results
        by_host = dict((hid, frozenset(got)) for hid, got in conn.execute(
            select(r.c.host_id, func.array_agg(r.c.rule_id)).where(
                r.c.host_id.in_(list(unseen.values()))).group_by(r.c.host_id)))
        if len(sets) + len(unseen) > 2000:  # bounded, whatever the hosts report
            sets.clear()
        for digest, hid in unseen.items():
            known[digest] = sets[digest] = by_host.get(hid, frozenset())
    return dict((hid, known[digest]) for hid, digest in digests.items() if digest)


def keep_ahead(engine, budget=2.0, after=None, batch=2000):
    """Make the kept rule-set digests (PostgreSQL) of the live hosts whose profiles' latest reports changed
    since theirs was made: the background job ``rule_sets`` (maintenance.py, one node a run), so that the
    first coverage view of a subtree after a day's reports reads kept digests too (10,000 hosts none kept:
    about 1 s more). Walks the hosts in id order, ``batch`` at a time (each page's stale digests made in one
    statement), starting after host id ``after``, until ``budget`` seconds have gone. Returns {checked, made,
    done, next}: ``next`` the host id the walk stopped after when the budget ran out (the next run starts
    there), None when it reached the last host. Checking 10,000 hosts takes about 0.1 s."""
    import time
    out = {"checked": 0, "made": 0, "done": True, "next": None}
    if engine.dialect.name != "postgresql":
        return out
    start = time.monotonic()
    h = db.hosts
    last = after
    while True:
        with engine.connect() as conn:
            q = _with_digests(select(h.c.id), h).where(h.c.retired_at.is_(None))
            if last is not None:
                q = q.where(h.c.id > last)
            part = conn.execute(q.order_by(h.c.id).limit(batch)).all()
        if not part:
            return out
        stale = [hid for hid, profiled, digest in part if profiled and digest is None]
        if stale and time.monotonic() - start > budget:  # before this page: the next run starts at it
            out.update(done=False, next=last)
            return out
        if stale:
            out["made"] += len(_keep_sets(engine, stale))
        out["checked"] += len(part)
        last = part[-1][0]
        if len(part) < batch:
            return out
        if time.monotonic() - start > budget:
            out.update(done=False, next=last)
            return out


def _keep_sets(engine, ids):
    """{host_id: digest} of hosts whose kept digest is missing or stale, made and kept by the database in
    one statement (rows written in host order, so two writers cannot deadlock); read only when the write
    fails (logged: a digest not kept is made again next time)."""
    from sqlalchemy import text
    made = ("SELECT k.host_id, k.profiles, coalesce(d.digest, '') AS digest FROM (%s) k LEFT JOIN (%s) d "
            "ON d.host_id = k.host_id ORDER BY k.host_id" % (_KEYS, _DIGESTS))
    try:
        with db.write_tx(engine) as conn:
            return dict(conn.execute(text(
                "INSERT INTO host_rule_sets (host_id, profiles, digest) %s ON CONFLICT (host_id) DO UPDATE SET "
                "profiles = excluded.profiles, digest = excluded.digest RETURNING host_id, digest" % made),
                {"ids": dumps(list(ids))}).all())
    except Exception:  # noqa: BLE001
        import logging
        logging.getLogger("xcscan.server").exception("keeping %d rule-set digests failed", len(ids))
        with engine.connect() as conn:
            return dict((hid, digest) for hid, _key, digest in conn.execute(text(made), {"ids": dumps(list(ids))}))


def _show(got, need, item_id, item, host, verdicts, present, shown):
    got[item_id]["shown"].append(_entry(item_id, item, host, verdicts, present=present))
    if len(got[item_id]["shown"]) >= shown:
        need.discard(item_id)
