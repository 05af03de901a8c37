"""Read side: the fleet queries behind the API and the web pages.

Every function takes the caller's access ``Scope`` (store/scope.py) as its second argument and
filters through ``_in_scope``/``scope.require``: rows of other departments are never read, and a
single object outside the scope is a 404 as if it did not exist. ``org`` arguments only narrow."""
from __future__ import annotations

from sqlalchemy import and_, case, func, literal, or_, select

from scanner.server.store import db
from scanner.server.store.jsondoc import decode, decode_rows, skipped
from scanner.server.errors import not_found
from scanner.server.store.reports import readable_document, report_document
from scanner.server.store.scope import check
from scanner.server.util import normalise_org, now, org_ancestors

SEVERITIES = ("info", "low", "medium", "high", "critical")



def effective_status(t=None):
    """SQL expression: the result status with central waivers applied."""
    r = db.results
    return case((and_(r.c.status == "fail", r.c.waiver_until.is_not(None), r.c.waiver_until > (t or now())),
                 literal("waived")), else_=r.c.status)

def status_filter(statuses, t=None):
    """SQL condition: the effective status (see ``effective_status``) is one of ``statuses``, written
    on the stored columns so that PostgreSQL and SQLite can use an index (the CASE expression
    cannot be indexed: it depends on the time of the query). A failure is "waived" while a central
    waiver covers it (``waiver_until`` in the future) and "fail" otherwise; an agent can also report
    "waived" itself (a local waiver); every other status is as reported."""
    r = db.results
    t = t or now()
    conds = []
    plain = [s for s in statuses if s not in ("fail", "waived")]
    if plain:
        conds.append(r.c.status.in_(plain))
    if "fail" in statuses:
        conds.append(and_(r.c.status == "fail", or_(r.c.waiver_until.is_(None), r.c.waiver_until <= t)))
    if "waived" in statuses:
        conds.append(r.c.status == "waived")
        conds.append(and_(r.c.status == "fail", r.c.waiver_until > t))
    if not conds:
        return literal(False)
    return or_(*conds) if len(conds) > 1 else conds[0]


def org_filter(column, org):
    """Rows whose org path is ``org`` or below it."""
    org = normalise_org(org) if org else None
    if not org or org == "/":
        return None
    return or_(column == org, column.like(org.replace("%", r"\%").replace("_", r"\_") + "/%", escape="\\"))


def _in_scope(scope, column, org=None):
    """The conditions keeping rows inside ``scope`` (and the optional ``org`` narrowing). An ``org``
    that is neither inside the scope nor above part of it is a 404, like any object outside it."""
    if org and not check(scope).touches(org):
        raise not_found("no org unit %s" % org)
    return check(scope).where(column), org_filter(column, org)


def _host_org(conn, scope, host_id):
    """The org of a host inside ``scope``; 404 when there is none (or it is another department's)."""
    org = conn.execute(select(db.hosts.c.org_path).where(db.hosts.c.id == host_id)).scalar()
    if org is None or not check(scope).covers(org):
        raise not_found("no host %s" % host_id)
    return org
class Page(list):
    """One page of a list query; ``total``: how many rows match the filters in all."""
    total = 0

    @classmethod
    def of(cls, rows, total):
        page = cls(rows)
        page.total = int(total or 0)
        return page


def _like(text):
    return "%" + text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"


def _order(sorts, sort, desc, default):
    """ORDER BY columns for a whitelisted ``sort`` key; unknown keys are refused (400)."""
    from scanner.server.errors import bad_request
    key = sort or default
    if key not in sorts:
        raise bad_request("bad_sort", "sort must be one of %s" % ", ".join(sorted(sorts)))
    cols = sorts[key]
    first = cols[0].desc() if desc else cols[0].asc()
    return [first] + [c.asc() for c in cols[1:]]


def apply_central_waivers(conn, rows, *conds, t=None):
    """Host-profile rows (dicts: host_id, profile, score, failed, ...) as they stand now with the
    approved central waivers in force and the assessors' valid recorded verdicts (store/verdicts.py):
    for a host and profile with failures such a waiver covers, or manual results a verdict decides,
    ``score`` is recomputed from its results with those failures counted as waived and those manual
    parts as recorded — the agent's own formula (scanner/engine/evaluator.py ``score``:
    severity-weighted, waived counts as passed; a recorded 部分符合 half) — and ``failed`` drops by
    the waived and rises by the parts recorded 不符合; ``waived`` and ``recorded`` say how many.
    ``score_without_waivers`` stays what the agent reported (no waivers, no verdicts). Both are read
    against the clock, so an expired one stops counting without any job. ``conds``: the caller's
    scope conditions on hosts (fewer rows to look at)."""
    from scanner.server.store import verdicts as recorded
    t = now() if t is None else t
    for row in rows:
        row["waived"] = 0
        row["recorded"] = 0
    if not rows:
        return rows
    r, h = db.results, db.hosts
    wanted = {(row["host_id"], row["profile"]) for row in rows}
    waived_now = and_(r.c.status == "fail", r.c.waiver_until.is_not(None), r.c.waiver_until > t)
    pairs = set(conn.execute(_where(select(r.c.host_id, r.c.profile).distinct()
                                    .select_from(r.join(h, h.c.id == r.c.host_id)).where(waived_now), *conds)).all())
    pairs &= wanted
    levels, touched = recorded.touched_hosts(conn, t)
    verdicts = {}
    candidates = sorted({hid for hid, prof in wanted if prof in levels})
    if candidates and touched is not None:
        orgs = {}
        for i in range(0, len(candidates), 500):
            orgs.update(conn.execute(select(h.c.id, h.c.org_path).where(
                h.c.id.in_(candidates[i:i + 500]), touched)).all())
        if orgs:
            verdicts = recorded.rule_verdicts(conn, orgs, levels, t)
            pairs |= set(verdicts) & wanted
    if not pairs:
        return rows
    by_pair = {}
    hosts = sorted({p[0] for p in pairs})
    for i in range(0, len(hosts), 500):
        q = select(r.c.host_id, r.c.profile, r.c.rule_id, r.c.severity, r.c.status, r.c.waiver_until).where(
            r.c.host_id.in_(hosts[i:i + 500]))
        for host_id, profile, rule_id, severity, status, until in conn.execute(q):
            if (host_id, profile) not in pairs:
                continue
            waived = status == "fail" and until is not None and until > t
            decided = None
            if status == "manual":
                v = verdicts.get((host_id, profile), {}).get(rule_id)
                decided = recorded.PART[v["verdict"]] if v is not None else None
            by_pair.setdefault((host_id, profile), []).append(
                {"severity": severity, "status": "waived" if waived else (decided or status), "central": waived,
                 "recorded": decided})
    for row in rows:
        results = by_pair.get((row["host_id"], row["profile"]))
        if results:
            n = sum(1 for x in results if x["central"])
            row["score"] = recorded.weighted_score(results)
            row["failed"] = max(0, (row.get("failed") or 0) - n) + sum(1 for x in results if x["recorded"] == "fail")
            row["waived"] = n
            row["recorded"] = sum(1 for x in results if x["recorded"])
    return rows


def waiver_corrections(conn, conds, t=None):
    """For roll-ups summed in the database: per host and profile that an approved central waiver
    in force now or a valid recorded verdict touches, how its score and counts change
    (``apply_central_waivers``): {host_id, org_path, profile, score_delta, scored_delta, waived,
    failed_delta, recorded}."""
    from scanner.server.store import verdicts as recorded
    t = now() if t is None else t
    r, h, hp = db.results, db.hosts, db.host_profiles
    waived_now = and_(r.c.status == "fail", r.c.waiver_until.is_not(None), r.c.waiver_until > t)
    touched = _where(select(r.c.host_id).distinct().select_from(r.join(h, h.c.id == r.c.host_id))
                     .where(waived_now, h.c.retired_at.is_(None)), *conds)
    levels, by_verdict = recorded.touched_hosts(conn, t)
    which = hp.c.host_id.in_(touched)
    if by_verdict is not None:
        which = or_(which, and_(hp.c.profile.in_(levels), by_verdict, h.c.retired_at.is_(None),
                                *[c for c in conds if c is not None]))
    rows = [dict(x) for x in conn.execute(select(hp.c.host_id, hp.c.profile, hp.c.score, hp.c.failed, h.c.org_path)
                                          .select_from(hp.join(h, h.c.id == hp.c.host_id))
                                          .where(which)).mappings()]
    stored = {(x["host_id"], x["profile"]): (x["score"], x["failed"] or 0) for x in rows}
    out = []
    for x in apply_central_waivers(conn, rows, *conds, t=t):
        if not x["waived"] and not x["recorded"]:
            continue
        before, failed_before = stored[(x["host_id"], x["profile"])]
        out.append({"host_id": x["host_id"], "org_path": x["org_path"], "profile": x["profile"], "waived": x["waived"],
                    "recorded": x["recorded"], "failed_delta": (x["failed"] or 0) - failed_before,
                    "score_delta": (x["score"] or 0.0) - (before or 0.0),
                    "scored_delta": (x["score"] is not None) - (before is not None)})
    return out


def _where(q, *conds):
    for c in conds:
        if c is not None:
            q = q.where(c)
    return q


# --- hosts ------------------------------------------------------------------------------------------
HOST_COLS = [db.hosts.c.id, db.hosts.c.hostname, db.hosts.c.machine_id, db.hosts.c.org_path, db.hosts.c.enrolled_at,
             db.hosts.c.last_seen, db.hosts.c.latest_report_id, db.hosts.c.latest_collected, db.hosts.c.os_name,
             db.hosts.c.os_family, db.hosts.c.loc_domestic, db.hosts.c.loc_foreign, db.hosts.c.loc_unknown,
             db.hosts.c.loc_rate, db.hosts.c.retired_at, db.hosts.c.retired_by, db.hosts.c.retire_reason]


HOST_SORTS = {
    "org": (db.hosts.c.org_path, db.hosts.c.hostname, db.hosts.c.id),
    "hostname": (db.hosts.c.hostname, db.hosts.c.id),
    "last_seen": (db.hosts.c.last_seen, db.hosts.c.id),
    "loc_rate": (db.hosts.c.loc_rate, db.hosts.c.id),
    "os": (db.hosts.c.os_name, db.hosts.c.hostname, db.hosts.c.id),
}


def list_hosts(engine, scope, org=None, q=None, limit=500, offset=0, retired=False, profile=None, sort=None, desc=False):
    """Hosts of the fleet, one page (``Page.total``: all that match); ``retired=True``: the retired
    ones instead. ``q``: part of the hostname, or the host id; ``profile``: hosts scanned with it."""
    h = db.hosts
    live = h.c.retired_at.is_not(None) if retired else h.c.retired_at.is_(None)
    conds = list(_in_scope(scope, h.c.org_path, org)) + [live]
    if q:
        conds.append(or_(h.c.hostname.like(_like(q), escape="\\"), h.c.id == q))
    if profile:
        hp = db.host_profiles
        conds.append(h.c.id.in_(select(hp.c.host_id).where(hp.c.profile == profile)))
    query = _where(select(*HOST_COLS), *conds).order_by(*_order(HOST_SORTS, sort, desc, "org")).limit(limit).offset(offset)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
        total = conn.execute(_where(select(func.count()).select_from(h), *conds)).scalar() \
            if rows and (offset or len(rows) == limit) else offset + len(rows)
        if rows:
            hp = db.host_profiles
            prof = [dict(x) for x in conn.execute(
                select(hp.c.host_id, hp.c.profile, hp.c.score, hp.c.score_without_waivers, hp.c.failed)
                .where(hp.c.host_id.in_([r["id"] for r in rows]))).mappings()]
            apply_central_waivers(conn, prof, *_in_scope(scope, db.hosts.c.org_path, org))
            by_host = {}
            for p in prof:
                by_host.setdefault(p["host_id"], {})[p["profile"]] = {
                    "score": p["score"], "score_without_waivers": p["score_without_waivers"], "failed": p["failed"],
                    "waived": p["waived"], "recorded": p["recorded"]}
            for r in rows:
                r["profiles"] = by_host.get(r["id"], {})
        elif offset:
            total = conn.execute(_where(select(func.count()).select_from(h), *conds)).scalar()
    return Page.of(rows, total)


def get_host(engine, scope, host_id):
    with engine.connect() as conn:
        row = conn.execute(select(*HOST_COLS).where(db.hosts.c.id == host_id)).mappings().first()
        if row is None or not check(scope).covers(row["org_path"]):
            raise not_found("no host %s" % host_id)
        host = dict(row)
        c = db.components
        host["components"] = decode_rows(
            conn.execute(select(c).where(c.c.host_id == host_id).order_by(c.c.seq)).mappings().all(),
            lambda r: dict(r, evidence=decode(r["evidence"], []), substitutes=decode(r["substitutes"], [])), "host")
        hp = db.host_profiles
        host["profiles"] = apply_central_waivers(conn, [dict(r) for r in conn.execute(
            select(hp).where(hp.c.host_id == host_id).order_by(hp.c.profile)).mappings()], db.hosts.c.id == host_id)
        r = db.results
        eff = effective_status().label("effective_status")
        host["results"] = decode_rows(conn.execute(
            select(r, eff).where(r.c.host_id == host_id).order_by(r.c.profile, r.c.rule_id)).mappings().all(),
            _result_out, "host")
    for comp in host["components"]:
        comp.pop("host_id", None)
    return host


def host_remediations(engine, scope, host_id, profiles):
    """{(profile, rule_id): {zh, en}}: the remediation texts of the host's latest report of each of
    ``profiles`` (the agent filled in the profile's tailored values); for a rule the report does not
    explain, the rule's own text from the rules this server ships with that profile's values."""
    r = db.reports
    out = {}
    with engine.connect() as conn:
        _host_org(conn, scope, host_id)
        for profile in sorted(set(profiles)):
            rid = conn.execute(select(r.c.id).where(r.c.host_id == host_id, r.c.profile == profile)
                               .order_by(r.c.collected_at.desc()).limit(1)).scalar()
            if rid is None:
                continue
            row = conn.execute(select(r.c.id, r.c.body_gz, r.c.evaluated_gz).where(r.c.id == rid)).mappings().first()
            try:
                doc = report_document(row)
            except Exception as exc:  # noqa: BLE001 - a damaged stored report only loses its texts
                skipped("report", row, exc)
                continue
            for res in (doc.get("results") if isinstance(doc, dict) else None) or []:
                text = res.get("remediation") if isinstance(res, dict) else None
                if isinstance(text, dict) and any(isinstance(v, str) and v for v in text.values()):
                    out[(profile, res.get("rule_id"))] = text
    return out


def shipped_remediation(rule_id, profile):
    """The remediation {zh, en} of a rule this server ships, with ``profile``'s values; None."""
    try:
        from scanner.engine import load_profile, load_ruleset
        from scanner.remediate.params import remediation_text
        rule = load_ruleset().get(rule_id)
        if rule is None:
            return None
        try:
            params = load_profile(profile).params_for(rule) if profile else dict(rule.get("params") or {})
        except Exception:  # noqa: BLE001 - a profile this server does not ship: the rule's defaults
            params = dict(rule.get("params") or {})
        text = remediation_text(rule, params or {})
        return text if isinstance(text, dict) else None
    except Exception:  # noqa: BLE001 - damaged rules must not take the host page down
        return None


RESULT_GROUP_ORDER = ("fail", "error", "waived", "manual", "pass", "not_applicable")
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


def group_results(results):
    """Results by effective status, what needs action first; most severe first within a group."""
    groups = {}
    for r in results:
        groups.setdefault(r["status"], []).append(r)
    out = []
    for status in RESULT_GROUP_ORDER + tuple(sorted(set(groups) - set(RESULT_GROUP_ORDER))):
        if status in groups:
            rows = sorted(groups[status], key=lambda r: (SEVERITY_ORDER.get(r["severity"], 5), r["profile"], r["rule_id"]))
            out.append({"status": status, "rows": rows})
    return out


def _result_out(row):
    d = dict(row)
    for key in ("actual", "expected", "evidence"):
        d[key] = decode(d.get(key))
    d["reported_status"] = d["status"]
    d["status"] = d.pop("effective_status")
    return d


def host_history(engine, scope, host_id, limit=200):
    r = db.reports
    with engine.connect() as conn:
        _host_org(conn, scope, host_id)
        rows = conn.execute(select(r.c.id, r.c.received_at, r.c.collected_at, r.c.profile, r.c.score, r.c.loc_rate,
                                   r.c.fail_count, r.c.size, r.c.evaluated_at)
                            .where(r.c.host_id == host_id).order_by(r.c.collected_at.desc()).limit(limit)).mappings()
        return [dict(x) for x in rows]


def get_report(engine, scope, report_id, host_id=None):
    r, h = db.reports, db.hosts
    q = _where(select(r, h.c.org_path).select_from(r.join(h, h.c.id == r.c.host_id))
               .where(r.c.id == str(report_id).lower()),
               *_in_scope(scope, h.c.org_path))
    if host_id:
        q = q.where(r.c.host_id == host_id)
    with engine.connect() as conn:
        row = conn.execute(q).mappings().first()
    if row is None:
        raise not_found("no report %s" % report_id)
    return dict(row)


# --- drift -------------------------------------------------------------------------------------------
def _comp_key(c):
    name = c.get("name")
    if isinstance(name, dict):
        name = name.get("en") or name.get("zh")
    return (c.get("category"), c.get("product_id") or name)


def drift(engine, scope, host_id, report_a, report_b):
    """What changed from scan A to scan B: components and rule statuses."""
    a = readable_document(get_report(engine, scope, report_a, host_id))
    b = readable_document(get_report(engine, scope, report_b, host_id))
    ca = {_comp_key(c): c for c in (a.get("inventory") or {}).get("components") or []}
    cb = {_comp_key(c): c for c in (b.get("inventory") or {}).get("components") or []}
    comps = []
    for key in sorted(set(ca) | set(cb), key=lambda k: tuple(str(x) for x in k)):
        x, y = ca.get(key), cb.get(key)
        if x is None:
            comps.append({"change": "added", "category": key[0], "component": y, "before": None, "after": y.get("version")})
        elif y is None:
            comps.append({"change": "removed", "category": key[0], "component": x, "before": x.get("version"), "after": None})
        elif x.get("version") != y.get("version") or x.get("origin") != y.get("origin"):
            comps.append({"change": "changed", "category": key[0], "component": y, "before": x.get("version"),
                          "after": y.get("version")})
    ra = {r.get("rule_id"): r for r in a.get("results") or [] if isinstance(r, dict)}
    rb = {r.get("rule_id"): r for r in b.get("results") or [] if isinstance(r, dict)}
    rules = []
    for rid in sorted(set(ra) | set(rb), key=str):
        sa = (ra.get(rid) or {}).get("status")
        sb = (rb.get(rid) or {}).get("status")
        if sa != sb:
            src = rb.get(rid) or ra.get(rid)
            rules.append({"rule_id": rid, "title": src.get("title"), "severity": src.get("severity"),
                          "before": sa, "after": sb})
    meta = lambda d: {"report_id": d.get("report_id"), "collected_at": (d.get("host") or {}).get("collected_at"),
                      "profile": (d.get("summary") or {}).get("profile"), "score": (d.get("summary") or {}).get("score")}
    return {"a": meta(a), "b": meta(b), "components": comps, "results": rules}


# --- findings ----------------------------------------------------------------------------------------
_SEV_RANK = case({"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}, value=db.results.c.severity, else_=5)
FINDING_SORTS = {
    "host": (db.hosts.c.org_path, db.hosts.c.hostname, db.results.c.host_id, db.results.c.profile, db.results.c.rule_id),
    "rule": (db.results.c.rule_id, db.hosts.c.org_path, db.hosts.c.hostname, db.results.c.host_id, db.results.c.profile),
    "severity": (_SEV_RANK, db.hosts.c.org_path, db.hosts.c.hostname, db.results.c.host_id, db.results.c.profile,
                 db.results.c.rule_id),
    "status": (db.results.c.status, db.hosts.c.org_path, db.hosts.c.hostname, db.results.c.host_id,
               db.results.c.profile, db.results.c.rule_id),
}


def _finding_conds(scope, org=None, profile=None, rule=None, severity=None, status=None, category=None, host=None,
                   q=None):
    # no retired_at condition: retiring a host deletes its latest-state rows (workflow/hosts.py)
    r, h = db.results, db.hosts
    return _finding_host_conds(scope, org, q) + [
            r.c.profile == profile if profile else None,
            r.c.rule_id == rule if rule else None,
            r.c.severity.in_(severity) if severity else None,
            status_filter(status) if status else None,
            r.c.category == category if category else None,
            r.c.host_id == host if host else None]


def _finding_host_conds(scope, org=None, q=None):
    """The findings conditions on the hosts table (none for the whole fleet without a search)."""
    h = db.hosts
    return list(_in_scope(scope, h.c.org_path, org)) + [h.c.hostname.like(_like(q), escape="\\") if q else None]


def findings_query(scope, org=None, profile=None, rule=None, severity=None, status=None, category=None, host=None, q=None,
                   sort=None, desc=False):
    """The findings SELECT (every matching row, sorted); callers page it or stream it."""
    r, h = db.results, db.hosts
    eff = effective_status()
    query = select(h.c.id.label("host_id"), h.c.hostname, h.c.org_path, r.c.profile, r.c.rule_id, r.c.title_zh,
                   r.c.title_en, r.c.category, r.c.severity, r.c.status.label("reported_status"), eff.label("status"),
                   r.c.actual, r.c.expected, r.c.waiver_id).select_from(r.join(h, h.c.id == r.c.host_id))
    query = _where(query, *_finding_conds(scope, org, profile, rule, severity, status, category, host, q))
    return query.order_by(*_order(FINDING_SORTS, sort, desc, "host"))


def finding_out(row):
    """A findings row with its JSON columns decoded (jsondoc.Unreadable when one cannot be read)."""
    d = dict(row)
    d["actual"] = decode(d["actual"])
    d["expected"] = decode(d["expected"])
    return d


def findings(engine, scope, org=None, profile=None, rule=None, severity=None, status=None, category=None, host=None,
             limit=1000, offset=0, q=None, sort=None, desc=False):
    """One page of latest results (``Page.total``: all that match). Status is after waivers."""
    query = findings_query(scope, org, profile, rule, severity, status, category, host, q, sort, desc)
    query = query.limit(limit).offset(offset)
    with engine.connect() as conn:
        # fetched before decoding (no statement left open); a row that cannot be read is skipped
        out = decode_rows(conn.execute(query).mappings().all(), finding_out, "findings")
        if out and not offset and len(out) < limit:
            total = len(out)
        else:
            r, h = db.results, db.hosts
            conds = _finding_conds(scope, org, profile, rule, severity, status, category, host, q)
            joined = any(c is not None for c in _finding_host_conds(scope, org, q))
            source = r.join(h, h.c.id == r.c.host_id) if joined else r  # counted from an index when it can
            total = conn.execute(_where(select(func.count()).select_from(source), *conds)).scalar()
    return Page.of(out, total)


# --- summaries and overview -------------------------------------------------------------------------
def _host_summary(conn, scope, org=None):
    """Live hosts, their localization counts and how many have not reported for 3 days: one row."""
    h = db.hosts
    stale = func.sum(case((or_(h.c.last_seen.is_(None), h.c.last_seen < now() - 3 * 86400), 1), else_=0))
    q = _where(select(func.count(), func.sum(h.c.loc_domestic), func.sum(h.c.loc_foreign), func.sum(h.c.loc_unknown),
                      stale), *_in_scope(scope, h.c.org_path, org), h.c.retired_at.is_(None))
    n, dom, forn, unk, st = conn.execute(q).one()
    return int(n or 0), int(dom or 0), int(forn or 0), int(unk or 0), int(st or 0)


def org_tree(engine, scope, org=None):
    """Every org unit (from hosts and tokens) with roll-ups over its subtree. A scoped caller gets
    the nodes of their subtrees only (no ancestors: their names and totals are not theirs).
    The database sums per org unit (one row per unit and profile, not per host); the subtree
    roll-up over those few rows happens here."""
    h, hp = db.hosts, db.host_profiles
    with engine.connect() as conn:
        per_org = conn.execute(_where(
            select(h.c.org_path, func.count(), func.sum(h.c.loc_domestic), func.sum(h.c.loc_foreign),
                   func.sum(h.c.loc_unknown)),
            *_in_scope(scope, h.c.org_path, org), h.c.retired_at.is_(None)).group_by(h.c.org_path)).all()
        per_prof = conn.execute(_where(
            select(h.c.org_path, hp.c.profile, func.count(), func.sum(hp.c.score), func.count(hp.c.score),
                   func.sum(hp.c.failed), func.sum(hp.c.score_without_waivers), func.count(hp.c.score_without_waivers))
            .select_from(hp.join(h, h.c.id == hp.c.host_id)),
            *_in_scope(scope, h.c.org_path, org), h.c.retired_at.is_(None)).group_by(h.c.org_path, hp.c.profile)).all()
        corrections = waiver_corrections(conn, _in_scope(scope, h.c.org_path, org))
        token_orgs = [r[0] for r in conn.execute(_where(select(db.enroll_tokens.c.org_path).distinct(),
                                                        *_in_scope(scope, db.enroll_tokens.c.org_path, org)))]
    nodes = {}

    def node(path):
        if path not in nodes:
            nodes[path] = {"path": path, "name": path.rsplit("/", 1)[-1] or "/", "depth": path.count("/") if path != "/" else 0,
                           "hosts": 0, "direct_hosts": 0, "domestic": 0, "foreign": 0, "unknown": 0,
                           "profiles": {}, "failed": 0}
        return nodes[path]
    base = normalise_org(org) if org else "/"
    for path in token_orgs:
        if base == "/" or path == base or path.startswith(base + "/"):
            for anc in org_ancestors(path):
                node(anc)
    for path, count, dom, forn, unk in per_org:
        node(path)["direct_hosts"] += count
        for anc in org_ancestors(path):
            n = node(anc)
            n["hosts"] += count
            n["domestic"] += int(dom or 0)
            n["foreign"] += int(forn or 0)
            n["unknown"] += int(unk or 0)
    for path, profile, count, score_sum, scored, failed, raw_sum, raw_scored in per_prof:
        for anc in org_ancestors(path):
            p = node(anc)["profiles"].setdefault(profile, {"hosts": 0, "score_sum": 0.0, "scored": 0, "failed": 0,
                                                           "waived": 0, "recorded": 0, "raw_sum": 0.0,
                                                           "raw_scored": 0})
            p["hosts"] += count
            p["failed"] += int(failed or 0)
            node(anc)["failed"] += int(failed or 0)
            p["score_sum"] += float(score_sum or 0)
            p["scored"] += scored
            p["raw_sum"] += float(raw_sum or 0)
            p["raw_scored"] += raw_scored
    for c in corrections:  # approved central waivers in force now (few hosts)
        for anc in org_ancestors(c["org_path"]):
            p = node(anc)["profiles"].get(c["profile"])
            if p is not None:
                p["score_sum"] += c["score_delta"]
                p["scored"] += c["scored_delta"]
                p["failed"] += c["failed_delta"]
                p["waived"] += c["waived"]
                p["recorded"] += c["recorded"]
                node(anc)["failed"] += c["failed_delta"]
    for n in nodes.values():
        judged = n["domestic"] + n["foreign"]
        n["rate"] = round(n["domestic"] / judged, 4) if judged else None
        for p in n["profiles"].values():
            p["score"] = round(p.pop("score_sum") / p["scored"], 2) if p["scored"] else None
            p["score_without_waivers"] = round(p.pop("raw_sum") / p["raw_scored"], 2) if p["raw_scored"] else None
    if base != "/":
        nodes = {k: v for k, v in nodes.items() if k == base or k.startswith(base + "/")}
    nodes = {k: v for k, v in nodes.items() if scope.covers(k)}
    return [nodes[k] for k in sorted(nodes)]


def localization_by_category(conn, scope, org=None):
    c, h = db.components, db.hosts
    q = select(c.c.category, c.c.origin, func.count()).select_from(c.join(h, h.c.id == c.c.host_id))
    q = _where(q, *_in_scope(scope, h.c.org_path, org)).group_by(c.c.category, c.c.origin)
    out = {}
    for cat, origin, n in conn.execute(q):
        out.setdefault(cat, {"domestic": 0, "foreign": 0, "unknown": 0})[origin] = n
    for v in out.values():
        judged = v["domestic"] + v["foreign"]
        v["rate"] = round(v["domestic"] / judged, 4) if judged else None
    return dict(sorted(out.items()))


def localization_summary(engine, scope, org=None):
    with engine.connect() as conn:
        by_cat = localization_by_category(conn, scope, org)
    tree = org_tree(engine, scope, org)
    units = [{"org": n["path"], "hosts": n["hosts"], "domestic": n["domestic"], "foreign": n["foreign"],
              "unknown": n["unknown"], "rate": n["rate"]} for n in tree]
    return {"by_category": by_cat, "by_org": units}


def compliance_summary(engine, scope, org=None, profile=None):
    tree = org_tree(engine, scope, org)
    units = []
    for n in tree:
        for prof, p in sorted(n["profiles"].items()):
            if profile and prof != profile:
                continue
            units.append({"org": n["path"], "profile": prof, "hosts": p["hosts"], "score": p["score"],
                          "score_without_waivers": p["score_without_waivers"], "failed": p["failed"],
                          "waived": p["waived"], "recorded": p["recorded"]})
    return {"by_org": units}


def compliance_by_profile(conn, scope, org=None):
    """Per profile: hosts, mean score now (approved central waivers applied: ``waiver_corrections``)
    and without waivers; summed in the database."""
    hp, h = db.host_profiles, db.hosts
    conds = _in_scope(scope, h.c.org_path, org)
    q = _where(select(hp.c.profile, func.count(), func.sum(hp.c.score), func.count(hp.c.score), func.sum(hp.c.passed),
                      func.sum(hp.c.failed), func.avg(hp.c.score_without_waivers))
               .select_from(hp.join(h, h.c.id == hp.c.host_id)), *conds).group_by(hp.c.profile)
    out = {}
    for p, n, s, scored, ps, fl, raw in conn.execute(q):
        out[p] = {"profile": p, "hosts": n, "_sum": float(s or 0), "_scored": scored, "passed": int(ps or 0),
                  "failed": int(fl or 0), "waived": 0, "recorded": 0,
                  "score_without_waivers": round(float(raw), 2) if raw is not None else None}
    for c in waiver_corrections(conn, conds):
        p = out.get(c["profile"])
        if p is not None:
            p["_sum"] += c["score_delta"]
            p["_scored"] += c["scored_delta"]
            p["failed"] += c["failed_delta"]
            p["waived"] += c["waived"]
            p["recorded"] += c["recorded"]
    for p in out.values():
        total, scored = p.pop("_sum"), p.pop("_scored")
        p["score"] = round(total / scored, 2) if scored else None
    return [out[k] for k in sorted(out)]


def top_failing_query(scope, org=None, limit=10):
    """The rules failing on most hosts (after waivers): counted from ix_results_failing alone (an
    index-only scan; the titles are fetched for the few rules shown, see top_failing_rules)."""
    r, h = db.results, db.hosts
    hosts_n = func.count(func.distinct(r.c.host_id))
    q = select(r.c.rule_id, hosts_n.label("n"))
    conds = list(_in_scope(scope, h.c.org_path, org))
    if any(c is not None for c in conds):
        q = q.select_from(r.join(h, h.c.id == r.c.host_id))
    q = _where(q, *conds, status_filter(["fail"])).group_by(r.c.rule_id)
    return q.order_by(hosts_n.desc(), r.c.rule_id).limit(limit)


WEIGHTS = {"info": 0, "low": 1, "medium": 2, "high": 4, "critical": 8}  # scanner/engine/evaluator.py


def _weight_expr(column):
    return case({k: v for k, v in WEIGHTS.items()}, value=column, else_=2)


def top_failing_rules(conn, scope, org=None, limit=10):
    """The failing rules (after waivers) ranked by severity weight x failing hosts (the agent's
    weights: critical 8, high 4, medium 2, low 1, info 0), then by hosts: an info rule never heads
    the list while anything more severe fails. Every failing rule is counted from
    ix_results_failing alone (at most one row per rule); each rule's severity and title come from
    one failing row of it (an index probe each, not a scan)."""
    counted = conn.execute(top_failing_query(scope, org, None)).all()
    if not counted:
        return []
    r = db.results
    out = []
    for rid, n in counted:
        row = conn.execute(select(r.c.title_zh, r.c.title_en, r.c.severity)
                           .where(r.c.rule_id == rid, r.c.status == "fail").limit(1)).first()
        tz, te, sev = row if row is not None else (None, None, None)
        out.append({"rule_id": rid, "title": {"zh": tz, "en": te}, "severity": sev, "hosts": n,
                    "weight": WEIGHTS.get(sev, 2) * n})
    out.sort(key=lambda x: (-x["weight"], SEVERITY_ORDER.get(x["severity"], 5), -x["hosts"], x["rule_id"]))
    return out[:limit]


def _add_recorded_failures(conn, scope, org, profile, top, limit):
    """Manual results an assessor's valid verdict records as 不符合 count as failures of the host
    (部分符合: half the weight), as in the score (store/verdicts.py): the hosts such verdicts touch
    get their weight and failed count adjusted in ``top`` {host_id: [weight, failed]} (and join it)."""
    from scanner.server.store import verdicts as recorded
    levels, touched = recorded.touched_hosts(conn)
    if profile not in levels or touched is None:
        return
    r, h = db.results, db.hosts
    orgs = dict(conn.execute(_where(select(h.c.id, h.c.org_path), *_in_scope(scope, h.c.org_path, org),
                                    h.c.retired_at.is_(None), touched)).all())
    if not orgs:
        return
    decided = recorded.rule_verdicts(conn, orgs, [profile])
    extra = {}
    ids = sorted(hid for (hid, _level) in decided)
    for i in range(0, len(ids), 500):
        for hid, rid, sev in conn.execute(select(r.c.host_id, r.c.rule_id, r.c.severity).where(
                r.c.host_id.in_(ids[i:i + 500]), r.c.profile == profile, r.c.status == "manual")):
            v = decided.get((hid, profile), {}).get(rid)
            part = recorded.PART.get(v["verdict"]) if v is not None else None
            if part in ("fail", "partial"):
                w = WEIGHTS.get(sev, 2) / (1 if part == "fail" else 2.0)
                e = extra.setdefault(hid, [0.0, 0])
                e[0] += w
                e[1] += 1 if part == "fail" else 0
    if not extra:
        return
    missing = sorted(set(extra) - set(top))
    for i in range(0, len(missing), 500):  # their own failures, for the hosts not already ranked
        for hid, w, n in conn.execute(_where(select(r.c.host_id, func.sum(_weight_expr(r.c.severity)), func.count())
                                             .where(r.c.host_id.in_(missing[i:i + 500]), r.c.profile == profile),
                                             status_filter(["fail"])).group_by(r.c.host_id)):
            top[hid] = [int(w or 0), int(n)]
    for hid, (w, n) in extra.items():
        cur = top.setdefault(hid, [0, 0])
        cur[0] += w
        cur[1] += n
    for cur in top.values():
        cur[0] = int(cur[0]) if float(cur[0]).is_integer() else round(cur[0], 1)


def worst_hosts(conn, scope, org=None, profile=None, limit=10):
    """The hosts with the heaviest failures in ``profile`` (the scope's main profile): the sum of
    the severity weights of their failing results (after central waivers; manual results recorded
    不符合 by an assessor count too, 部分符合 half), heaviest first, with the failures per severity
    (as reported). Read from the failing rows only (ix_results_failing narrows them)."""
    if not profile:
        return []
    r, h = db.results, db.hosts
    weight = func.sum(_weight_expr(r.c.severity)).label("weight")
    q = _where(select(r.c.host_id, weight, func.count().label("failed"))
               .select_from(r.join(h, h.c.id == r.c.host_id)),
               *_in_scope(scope, h.c.org_path, org), h.c.retired_at.is_(None), r.c.profile == profile,
               status_filter(["fail"])).group_by(r.c.host_id)
    q = q.order_by(weight.desc(), func.count().desc(), r.c.host_id).limit(limit)
    top = {x[0]: [int(x[1] or 0), int(x[2])] for x in conn.execute(q).all()}
    _add_recorded_failures(conn, scope, org, profile, top, limit)
    if not top:
        return []
    ranked = sorted(top.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:limit]
    top = [(hid, w, n) for hid, (w, n) in ranked]
    ids = [x[0] for x in top]
    names = {x[0]: (x[1], x[2]) for x in conn.execute(select(h.c.id, h.c.hostname, h.c.org_path).where(h.c.id.in_(ids)))}
    sev = {}
    for hid, severity, n in conn.execute(_where(select(r.c.host_id, r.c.severity, func.count()).where(
            r.c.host_id.in_(ids), r.c.profile == profile), status_filter(["fail"])).group_by(r.c.host_id, r.c.severity)):
        sev.setdefault(hid, {})[severity] = n
    hp = db.host_profiles
    rows = [dict(x) for x in conn.execute(select(hp.c.host_id, hp.c.profile, hp.c.score, hp.c.failed).where(
        hp.c.host_id.in_(ids), hp.c.profile == profile)).mappings()]
    scores = {x["host_id"]: x["score"] for x in apply_central_waivers(conn, rows, h.c.id.in_(ids))}
    return [{"host_id": hid, "hostname": names.get(hid, (None, None))[0], "org_path": names.get(hid, (None, None))[1],
             "profile": profile, "weight": w, "failed": int(n), "by_severity": sev.get(hid, {}),
             "score": scores.get(hid)} for hid, w, n in top]


def trend(conn, scope, org=None, days=30, profile=None):
    """Per day, the fleet's state as of that day's end (store/rollups.py; today: the latest
    state): the mean localization rate of the hosts and, when ``profile`` is given, their mean
    score for that profile only (scores of different profiles do not average into anything
    meaningful). ``reports``: the latest reports (one per host and profile) making up that day's state."""
    from scanner.server.store import rollups
    dr, h, hp = db.daily_rollups, db.hosts, db.host_profiles
    first = rollups.today() - days + 1
    score_sum = func.sum(case((dr.c.profile == profile, dr.c.score_sum), else_=None)) if profile else func.sum(dr.c.score_sum)
    scored = func.sum(case((dr.c.profile == profile, dr.c.scored), else_=0)) if profile else func.sum(dr.c.scored)
    q = _where(select(dr.c.day, score_sum, scored, func.sum(dr.c.loc_sum), func.sum(dr.c.loc_n), func.sum(dr.c.hosts))
               .where(dr.c.day >= first), *_in_scope(scope, dr.c.org_path, org)).group_by(dr.c.day).order_by(dr.c.day)
    rows = [tuple(r) for r in conn.execute(q)]
    # today: the latest state of the live hosts
    mine = hp.c.score if not profile else case((hp.c.profile == profile, hp.c.score), else_=None)
    live = _where(select(func.sum(mine), func.count(mine), func.count())
                  .select_from(hp.join(h, h.c.id == hp.c.host_id)), h.c.retired_at.is_(None),
                  *_in_scope(scope, h.c.org_path, org))
    s_sum, s_n, n_hosts = conn.execute(live).one()
    loc = _where(select(func.sum(h.c.loc_rate), func.count(h.c.loc_rate)), h.c.retired_at.is_(None),
                 h.c.latest_collected.is_not(None), *_in_scope(scope, h.c.org_path, org))
    l_sum, l_n = conn.execute(loc).one()
    if n_hosts or l_n:
        rows.append((rollups.today(), s_sum, s_n, l_sum, l_n, n_hosts))
    out = []
    for d, s_sum, s_n, l_sum, l_n, n in rows:
        out.append({"day": int(d) * 86400, "score": round(float(s_sum) / s_n, 2) if s_n else None,
                    "loc_rate": round(float(l_sum) / l_n, 4) if l_n else None, "reports": int(n or 0)})
    return out


TREND_DAYS = 30


def overview(engine, scope, org=None):
    with engine.connect() as conn:
        count, dom, forn, unk, stale = _host_summary(conn, scope, org)
        data = {
            "hosts": count, "stale_hosts": stale,
            "localization": {"domestic": dom, "foreign": forn, "unknown": unk,
                             "rate": round(dom / (dom + forn), 4) if dom + forn else None},
            "by_category": localization_by_category(conn, scope, org),
            "by_profile": compliance_by_profile(conn, scope, org),
            "top_failing": top_failing_rules(conn, scope, org),
        }
        # the score line follows the profile most hosts are scanned with
        main = max(data["by_profile"], key=lambda p: (p["hosts"], p["profile"]))["profile"] if data["by_profile"] else None
        data["trend_profile"] = main
        data["main_profile"] = main
        data["worst_hosts"] = worst_hosts(conn, scope, org, main)
    from scanner.server.store import rollups
    rollups.ensure(engine, TREND_DAYS)
    with engine.connect() as conn:
        data["trend"] = trend(conn, scope, org, days=TREND_DAYS, profile=main)
    tree = org_tree(engine, scope, org)
    data["by_org"] = [n for n in tree if n["depth"] <= 2 and n["hosts"]]
    return data


def rule_status_counts(engine, scope, rule_id):
    """Hosts per effective status for one rule (the index on rule_id, status serves it)."""
    r, h = db.results, db.hosts
    t = now()
    q = (select(r.c.status, r.c.waiver_until, func.count())
         .select_from(r.join(h, h.c.id == r.c.host_id)).where(r.c.rule_id == rule_id, h.c.retired_at.is_(None))
         .group_by(r.c.status, r.c.waiver_until))
    q = _where(q, *_in_scope(scope, h.c.org_path))
    counts = {}
    with engine.connect() as conn:
        for status, until, n in conn.execute(q):
            key = "waived" if status == "fail" and until is not None and until > t else status
            counts[key] = counts.get(key, 0) + n
    return counts


def rule_hosts(engine, scope, rule_id, status=None, limit=None, offset=0):
    """Hosts with a latest result for ``rule_id``, what needs action first (``Page.total``: all)."""
    r, h = db.results, db.hosts
    eff = effective_status()
    conds = [r.c.rule_id == rule_id, h.c.retired_at.is_(None), status_filter(status) if status else None]
    conds += _in_scope(scope, h.c.org_path)
    q = _where(select(h.c.id, h.c.hostname, h.c.org_path, r.c.profile, r.c.status.label("reported_status"),
                      eff.label("status"), r.c.actual, r.c.expected, r.c.evidence, r.c.title_zh, r.c.title_en,
                      r.c.severity, r.c.category, r.c.waiver_id).select_from(r.join(h, h.c.id == r.c.host_id)), *conds)
    q = q.order_by(eff, h.c.org_path, h.c.hostname, h.c.id, r.c.profile).offset(offset)
    if limit is not None:
        q = q.limit(limit)
    with engine.connect() as conn:
        rows = decode_rows(conn.execute(q).mappings().all(),
                           lambda x: dict(x, actual=decode(x["actual"]), expected=decode(x["expected"]),
                                          evidence=decode(x["evidence"])), "rule")
        if limit is None or (not offset and len(rows) < limit):
            total = offset + len(rows)
        else:
            total = conn.execute(_where(select(func.count()).select_from(r.join(h, h.c.id == r.c.host_id)),
                                        *conds)).scalar()
    return Page.of(rows, total)


def audit_entries(engine, scope, limit=500, offset=0, actor=None):
    """The audit log, newest first. A scoped reader sees the entries concerning their subtrees and
    the actions of ``actor`` (themselves); entries without a department (logins of others, server
    operations) only a global reader sees."""
    a = db.audit_log
    q = select(a)
    cond = check(scope).where(a.c.org_path)
    if cond is not None:
        q = q.where(or_(and_(a.c.org_path.is_not(None), cond), a.c.actor == actor) if actor else
                    and_(a.c.org_path.is_not(None), cond))
    with engine.connect() as conn:
        rows = conn.execute(q.order_by(a.c.id.desc()).limit(limit).offset(offset)).mappings().all()
    return decode_rows(rows, lambda r: dict(r, detail=decode(r["detail"])), "audit")


def inventory_query(scope, org=None, category=None, origin=None):
    """Every latest inventory component of the fleet (live hosts), sorted; callers stream it."""
    c, h = db.components, db.hosts
    q = select(h.c.id.label("host_id"), h.c.hostname, h.c.org_path, c.c.category, c.c.product_id, c.c.name_en,
               c.c.name_zh, c.c.vendor_en, c.c.origin, c.c.version).select_from(c.join(h, h.c.id == c.c.host_id))
    return _where(q, *_in_scope(scope, h.c.org_path, org), h.c.retired_at.is_(None),
                  c.c.category == category if category else None,
                  c.c.origin == origin if origin else None).order_by(h.c.org_path, h.c.hostname, h.c.id, c.c.seq)


def inventory_rows(engine, scope, org=None, category=None, origin=None, limit=100000):
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(inventory_query(scope, org, category, origin).limit(limit)).mappings()]


STREAM_BATCH = 2000


def stream(engine, query, batch=STREAM_BATCH):
    """Yield the rows (tuples) of ``query`` from a server-side cursor, ``batch`` at a time: memory
    stays constant however many rows there are (PostgreSQL: a named cursor; SQLite steps its
    statement as rows are fetched)."""
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
        try:
            for part in result.partitions():
                for row in part:
                    yield row
        finally:
            result.close()


# --- working-paper roll-up ---------------------------------------------------------------------------
def latest_documents(engine, scope, org=None, limit=2000):
    """(count, rows) for the not retired hosts of ``org`` (inside ``scope``): each row is
    {host_id, hostname, org_path, doc} with the host's latest stored report document, or ``doc`` None
    when that document cannot be read (one bad row never stops a fleet view). When more than
    ``limit`` hosts match, no document is read and rows is empty: the caller asks for a narrower org."""
    r, h = db.reports, db.hosts
    conds = list(_in_scope(scope, h.c.org_path, org)) + [h.c.retired_at.is_(None), h.c.latest_report_id.is_not(None)]
    with engine.connect() as conn:
        count = conn.execute(_where(select(func.count()).select_from(h), *conds)).scalar() or 0
        if count > limit:
            return count, []
        q = _where(select(h.c.id.label("host_id"), h.c.hostname, h.c.org_path, r.c.body_gz, r.c.evaluated_gz)
                   .select_from(h.join(r, r.c.id == h.c.latest_report_id)), *conds).order_by(h.c.org_path, h.c.hostname)
        fetched = conn.execute(q).mappings().all()  # fetched before decoding: no statement left open
    rows = []
    for row in fetched:
        try:
            doc = report_document(row)
            doc = doc if isinstance(doc, dict) else None
        except Exception as exc:  # noqa: BLE001 - a damaged stored document is one bad row
            skipped("latest report", row, exc)
            doc = None
        rows.append({"host_id": row["host_id"], "hostname": row["hostname"], "org_path": row["org_path"],
                     "doc": doc})
    if rows:  # the assessors' valid recorded verdicts decide the manual parts (store/verdicts.py)
        from scanner.server.store import verdicts
        with engine.connect() as conn:
            verdicts.apply_to_documents(conn, rows)
    return count, rows
