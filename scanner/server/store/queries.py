"""Read side: the fleet queries behind the API and the web pages.

Every function takes the caller's access ``Scope`` (store/scope.py) as its second argument and
filters through ``_in_scope``/``scope.require``: rows of other departments are never read, and a
single object outside the scope is a 404 as if it did not exist. ``org`` arguments only narrow."""
from __future__ import annotations

from sqlalchemy import and_, case, func, literal, literal_column, or_, select, union_all

from scanner.server.store import db
from scanner.server.store.jsondoc import decode, decode_rows, skipped
from scanner.server.errors import not_found
from scanner.server.store import bodies
from scanner.server.store.reports import readable_document, report_document
from scanner.server.store.scope import check
from scanner.server.util import normalise_org, now, org_ancestors

SEVERITIES = ("info", "low", "medium", "high", "critical")



def bundle(conn, named):
    """The rows of several independent SELECTs, {name: [row tuple]}, in one round trip on PostgreSQL:
    one statement whose columns are each SELECT's rows as a JSON array (json_agg), so that a page
    made of many small panels waits for the database once instead of once per panel (on a busy
    machine each wait costs milliseconds whatever the query reads). A CTE used by several of them is
    computed once. SQLite runs in the process: each SELECT is simply run. The order of a SELECT's
    rows is not kept (sort them when it matters); its LIMIT is."""
    if conn.dialect.name != "postgresql" or len(named) < 2:
        return {name: [tuple(r) for r in conn.execute(q)] for name, q in named}
    cols = []
    for name, q in named:
        sub = q.subquery()
        rows = func.coalesce(func.json_agg(func.json_build_array(*sub.c)), literal_column("'[]'::json"))
        cols.append(select(rows).select_from(sub).scalar_subquery().label(name))
    got = conn.execute(select(*cols)).one()
    return {name: [tuple(x) for x in got[i]] for i, (name, _q) in enumerate(named)}


def read_only(conn):
    """On PostgreSQL, ``conn`` without a transaction of its own (each statement sees what is committed
    when it starts, as READ COMMITTED gives anyway): no BEGIN before the first statement and no
    ROLLBACK when the connection goes back to the pool, two round trips fewer for a page that reads
    in one or two statements (``bundle``)."""
    if conn.dialect.name == "postgresql":
        conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn


def _dicts(q, rows):
    keys = list(q.selected_columns.keys())
    return [dict(zip(keys, row)) for row in rows]


def effective_status(t=None):
    """SQL expression: the result status with central waivers applied."""
    r = db.results
    return case((and_(r.c.status == "fail", r.c.waiver_until.is_not(None), r.c.waiver_until > (t or now())),
                 literal("waived")), else_=r.c.status)

def status_filter(statuses, t=None, table=None):
    """SQL condition: the effective status (see ``effective_status``) is one of ``statuses``, written
    on the stored columns so that PostgreSQL and SQLite can use an index (the CASE expression
    cannot be indexed: it depends on the time of the query). A failure is "waived" while a central
    waiver covers it (``waiver_until`` in the future) and "fail" otherwise; an agent can also report
    "waived" itself (a local waiver); every other status is as reported. ``table``: another table
    with ``status`` and ``waiver_until`` columns (the maintained result_counts, where 0 is none)."""
    r = db.results if table is None else table
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


def waived_case(t):
    """SQL: whether all the central waivers covering a host profile's failures are in force at
    ``t`` (host_profiles.waived_*, kept with the results' waiver pointers: store/aggregates.py);
    then its score with waivers is ``waived_score`` and ``waived_n`` of its failures are waived."""
    hp = db.host_profiles
    return and_(hp.c.waived_n > 0, hp.c.waived_min > t)


def _partly_expired(t):
    """SQL: host profiles whose covering waivers are partly in force, partly expired at ``t`` (rare):
    their score with waivers is recounted from their results (apply_central_waivers)."""
    hp = db.host_profiles
    return and_(hp.c.waived_n > 0, hp.c.waived_min <= t, hp.c.waived_max > t)


def apply_central_waivers(conn, rows, *conds, t=None, touched=None, state_in_rows=False):
    """Host-profile rows (dicts: host_id, profile, score, failed, ...) as they stand now with the
    approved central waivers in force and the assessors' valid recorded verdicts (store/verdicts.py):
    for a host and profile with failures such a waiver covers, or manual results a verdict decides,
    ``score`` is recomputed from its results with those failures counted as waived and those manual
    parts as recorded — the agent's own formula (scanner/engine/evaluator.py ``score``:
    severity-weighted, waived counts as passed; a recorded 部分符合 half) — and ``failed`` drops by
    the waived and rises by the parts recorded 不符合; ``waived`` and ``recorded`` say how many.
    ``score_without_waivers`` stays what the agent reported (no waivers, no verdicts). Both are read
    against the clock, so an expired one stops counting without any job.

    The score with all covering waivers in force is kept per host profile (host_profiles.waived_*,
    store/aggregates.py); only a profile whose waivers partly expired, or that a verdict touches, is
    recounted from its results. ``conds``: the caller's scope conditions on hosts. ``touched``:
    ``verdicts.touched_hosts`` when the caller has it; ``state_in_rows``: the rows carry their host
    profile's waived_n, waived_score, waived_min and waived_max (not read again)."""
    from scanner.server.store import verdicts as recorded
    t = now() if t is None else t
    for row in rows:
        row["waived"] = 0
        row["recorded"] = 0
    if not rows:
        return rows
    r, h, hp = db.results, db.hosts, db.host_profiles
    wanted = {(row["host_id"], row["profile"]) for row in rows}
    hosts = sorted({p[0] for p in wanted})
    state = {}  # the profiles with a covering waiver in force now
    if state_in_rows:
        for row in rows:
            if row["waived_n"] and row["waived_max"] is not None and row["waived_max"] > t:
                state[(row["host_id"], row["profile"])] = (row["waived_n"], row["waived_score"], row["waived_min"])
    for i in range(0, 0 if state_in_rows else len(hosts), 500):
        q = select(hp.c.host_id, hp.c.profile, hp.c.waived_n, hp.c.waived_score, hp.c.waived_min).where(
            hp.c.host_id.in_(hosts[i:i + 500]), hp.c.waived_n > 0, hp.c.waived_max > t)
        for host_id, profile, n, score, lo in conn.execute(q):
            if (host_id, profile) in wanted:
                state[(host_id, profile)] = (n, score, lo)
    pairs = {k for k, v in state.items() if v[2] <= t}  # partly expired: recounted
    levels, touched = touched if touched is not None else recorded.touched_hosts(conn, t)
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
    by_pair = {}
    recount = sorted({p[0] for p in pairs})
    for i in range(0, len(recount), 500):
        q = select(r.c.host_id, r.c.profile, r.c.rule_id, r.c.severity, r.c.status, r.c.waiver_until).where(
            r.c.host_id.in_(recount[i:i + 500]))
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
        key = (row["host_id"], row["profile"])
        if key in pairs:
            results = by_pair.get(key) or []
            n = sum(1 for x in results if x["central"])
            rec = sum(1 for x in results if x["recorded"])
            if not n and not rec:
                continue
            row["score"] = recorded.weighted_score(results)
            row["failed"] = max(0, (row.get("failed") or 0) - n) + sum(1 for x in results if x["recorded"] == "fail")
            row["waived"] = n
            row["recorded"] = rec
        elif key in state:  # every covering waiver in force: kept at write time
            n, score, _lo = state[key]
            row["score"] = score
            row["failed"] = max(0, (row.get("failed") or 0) - n)
            row["waived"] = n
    return rows


def _corrections_query(conds, t, touched):
    """The host profiles ``waiver_corrections`` adjusts (partly expired waivers, valid verdicts)."""
    h, hp = db.hosts, db.host_profiles
    levels, by_verdict = touched
    which = _partly_expired(t)
    if by_verdict is not None:
        which = or_(which, and_(hp.c.profile.in_(levels), by_verdict))
    return _where(
        select(hp.c.host_id, hp.c.profile, hp.c.score, hp.c.failed, hp.c.waived_n, hp.c.waived_score, hp.c.waived_min,
               hp.c.waived_max, h.c.org_path).select_from(hp.join(h, h.c.id == hp.c.host_id))
        .where(which, h.c.retired_at.is_(None)), *conds)


def waiver_corrections(conn, conds, t=None, touched=None, rows=None):
    """For roll-ups summed in the database with ``profile_sums``/OrgSums (which apply the host
    profiles whose covering waivers are all in force): per host and profile whose waivers partly
    expired or that a valid recorded verdict touches (both few), how its score and counts differ
    from what the sums counted (``apply_central_waivers``): {host_id, org_path, profile,
    score_delta, scored_delta, waived (to add), failed_delta, recorded}. ``touched``
    (``verdicts.touched_hosts``) and ``rows`` (``_corrections_query``'s, as dicts): already read."""
    from scanner.server.store import verdicts as recorded
    t = now() if t is None else t
    if touched is None:
        touched = recorded.touched_hosts(conn, t)
    if rows is None:
        rows = [dict(x) for x in conn.execute(_corrections_query(conds, t, touched)).mappings()]
    summed = {}
    for x in rows:  # what profile_sums counted for it
        full = bool(x["waived_n"]) and x["waived_min"] is not None and x["waived_min"] > t
        summed[(x["host_id"], x["profile"])] = (
            x["waived_score"] if full else x["score"], (x["failed"] or 0) - (x["waived_n"] if full else 0),
            x["waived_n"] if full else 0)
    out = []
    for x in apply_central_waivers(conn, rows, *conds, t=t, touched=touched, state_in_rows=True):
        score_before, failed_before, waived_before = summed[(x["host_id"], x["profile"])]
        if not x["waived"] and not x["recorded"] and not waived_before:
            continue
        out.append({"host_id": x["host_id"], "org_path": x["org_path"], "profile": x["profile"],
                    "waived": x["waived"] - waived_before, "recorded": x["recorded"],
                    "failed_delta": (x["failed"] or 0) - failed_before,
                    "score_delta": (x["score"] or 0.0) - (score_before or 0.0),
                    "scored_delta": (x["score"] is not None) - (score_before is not None)})
    return out


def profile_sums(t=None):
    """SQL aggregates over host_profiles with the central waivers in force at ``t`` applied where all
    of a profile's covering waivers are in force (the rest: ``waiver_corrections``):
    (sum of scores, count of scores, sum of failed, sum of waived)."""
    hp = db.host_profiles
    t = now() if t is None else t
    full = waived_case(t)
    score = case((full, hp.c.waived_score), else_=hp.c.score)
    waived = case((full, hp.c.waived_n), else_=0)
    return func.sum(score), func.count(score), func.sum(hp.c.failed - waived), func.sum(waived)


def _where(q, *conds):
    for c in conds:
        if c is not None:
            q = q.where(c)
    return q


# --- hosts ------------------------------------------------------------------------------------------
HOST_COLS = [db.hosts.c.id, db.hosts.c.hostname, db.hosts.c.machine_id, db.hosts.c.org_path, db.hosts.c.enrolled_at,
             db.hosts.c.last_seen, db.hosts.c.latest_report_id, db.hosts.c.latest_collected, db.hosts.c.os_name,
             db.hosts.c.os_family, db.hosts.c.loc_domestic, db.hosts.c.loc_foreign, db.hosts.c.loc_unknown,
             db.hosts.c.loc_rate, db.hosts.c.retired_at, db.hosts.c.retired_by, db.hosts.c.retire_reason,
             db.hosts.c.station_id]


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
            row = dict(conn.execute(select(r.c.id, r.c.body_gz, r.c.evaluated_gz, r.c.body_kind, r.c.sha256,
                                           r.c.collected_at, r.c.pruned_at).where(r.c.id == rid)).mappings().first())
            bodies.load(conn, [row])
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
        row = dict(row)
        bodies.load(conn, [row])  # a compacted body: reconstructed and checked
    return row


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
    r = db.results
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
    order = _order(FINDING_SORTS, sort, desc, "host")
    if sort == "status":  # after waivers, as shown (and as _buckets orders the fleet's pages)
        order[0] = eff.desc() if desc else eff.asc()
    return query.order_by(*order)


def finding_out(row):
    """A findings row with its JSON columns decoded (jsondoc.Unreadable when one cannot be read)."""
    d = dict(row)
    d["actual"] = decode(d["actual"])
    d["expected"] = decode(d["expected"])
    return d


def _counted(scope, org, profile, rule, severity, status, category, t=None):
    """The conditions on the maintained result_counts (store/aggregates.py) of the findings filters."""
    rc = db.result_counts
    return list(_in_scope(scope, rc.c.org_path, org)) + [
        rc.c.profile == profile if profile else None, rc.c.rule_id == rule if rule else None,
        rc.c.severity.in_(severity) if severity else None, rc.c.category == category if category else None,
        status_filter(status, t, table=rc) if status else None]


def _findings_counts(conn, scope, org, profile, rule, severity, status, category):
    """Findings matching the filters, summed from the maintained result_counts."""
    q = _where(select(func.coalesce(func.sum(db.result_counts.c.n), 0)),
               *_counted(scope, org, profile, rule, severity, status, category))
    return conn.execute(q).scalar()


def _bucket_counts(conn, sort, scope, org, profile, rule, severity, status, category, t):
    """[(condition on results, rows)] of the findings matching the filters, one bucket per value of the
    sort's first key in its order (ascending), counted from the maintained result_counts: severity (critical
    to info, then the rest), rule id, or status after waivers (the rule ids and statuses compared by code
    point, as SQLite compares them; PostgreSQL's collation ignored punctuation in rule ids)."""
    rc, r = db.result_counts, db.results
    by = {"severity": [rc.c.severity], "rule": [rc.c.rule_id],
          "status": [rc.c.status, and_(rc.c.status == "fail", rc.c.waiver_until > t)]}[sort]
    q = _where(select(*by, func.sum(rc.c.n)), *_counted(scope, org, profile, rule, severity, status, category, t))
    q = q.group_by(*by)
    counts = {}
    for row in conn.execute(q):
        key = ("waived" if row[1] else row[0]) if sort == "status" else row[0]
        counts[key] = counts.get(key, 0) + int(row[-1] or 0)
    if sort == "severity":
        known = ("critical", "high", "medium", "low", "info")
        other = sum(n for sev, n in counts.items() if sev not in known)
        return [(r.c.severity == sev, counts.get(sev, 0)) for sev in known] + [
            (or_(r.c.severity.is_(None), r.c.severity.not_in(known)), other)]
    keys = sorted(k for k, n in counts.items() if n)
    if sort == "rule":
        return [(r.c.rule_id == k, counts[k]) for k in keys]
    return [(status_filter([k], t), counts[k]) for k in keys]


def _buckets(conn, sort, scope, org, profile, rule, severity, status, category, limit, offset, desc):
    """The findings page sorted by severity, rule or status, read one value of it at a time in the
    fleet's (org unit, hostname) order, which the hosts index serves, instead of a top-N sort of every
    matching row (sorted by status or by rule, the whole fleet took 0.7 s and 0.2 s at 10,000 hosts): the
    counts per value (result_counts) say which values the page spans and where it starts in each.
    Returns (rows, total)."""
    t = now()
    buckets = _bucket_counts(conn, sort, scope, org, profile, rule, severity, status, category, t)
    if desc:
        buckets.reverse()
    total = sum(n for _c, n in buckets)
    rows, skip, need = [], offset, limit
    for cond, n in buckets:
        if need <= 0:
            break
        if skip >= n:
            skip -= n
            continue
        query = findings_query(scope, org, profile, rule, severity, status, category, None, None, "host").where(cond)
        rows.extend(conn.execute(query.limit(need).offset(skip)).mappings().all())
        need = limit - len(rows)
        skip = 0
    return rows, total


def findings(engine, scope, org=None, profile=None, rule=None, severity=None, status=None, category=None, host=None,
             limit=1000, offset=0, q=None, sort=None, desc=False):
    """One page of latest results (``Page.total``: all that match). Status is after waivers."""
    with engine.connect() as conn:
        if sort in ("severity", "rule", "status") and not host and not q:
            fetched, total = _buckets(conn, sort, scope, org, profile, rule, severity, status, category, limit,
                                      offset, desc)
            return Page.of(decode_rows(fetched, finding_out, "findings"), total)
        query = findings_query(scope, org, profile, rule, severity, status, category, host, q, sort, desc)
        total = None
        if not host and not q:  # the total first, from the maintained counts (store/aggregates.py)
            total = _findings_counts(conn, scope, org, profile, rule, severity, status, category)
            if offset >= total:  # nothing to read (the hosts' order walked every row for a status none has:
                return Page.of([], total)  # 0.3 s at 10,000 hosts)
        query = query.limit(limit).offset(offset)
        # fetched before decoding (no statement left open); a row that cannot be read is skipped
        out = decode_rows(conn.execute(query).mappings().all(), finding_out, "findings")
        if total is None and out and not offset and len(out) < limit:
            total = len(out)
        elif total is None:  # a host or a search: counted from its rows
            r, h = db.results, db.hosts
            conds = _finding_conds(scope, org, profile, rule, severity, status, category, host, q)
            total = conn.execute(_where(select(func.count()).select_from(r.join(h, h.c.id == r.c.host_id)),
                                        *conds)).scalar()
    return Page.of(out, total)


# --- summaries and overview -------------------------------------------------------------------------
class OrgSums(object):
    """The live hosts and their profiles summed per org unit: what the overview's totals, org
    tree, scores per profile and today's trend point are all added up from. Read from the
    maintained org_hosts and org_profiles (store/aggregates.py; a few hundred rows), plus the
    hosts that stopped reporting (a scan of the narrow hosts table: 1.5 ms at 10,000 hosts) and
    the host profiles whose waivers partly expired (``waiver_corrections``, an index range; rare).

    ``per_org``: (org_path, hosts, domestic, foreign, unknown, stale, loc_sum, loc_n);
    ``per_prof``: (org_path, profile, hosts, score_sum, scored, failed, raw_sum, raw_scored, waived,
    passed, plain_sum, plain_n) with the central waivers in force at ``t`` applied to the groups
    whose waivers are all in force (plain_*: the reported scores, as the daily roll-ups keep them);
    ``corrections``: ``waiver_corrections`` for the rest."""

    def __init__(self, conn, scope, org=None, t=None, rows=None):
        """``rows``: ``OrgSums.queries``' rows (``bundle``) when read already."""
        from scanner.server.store import verdicts as recorded
        t = now() if t is None else t
        if rows is None:
            rows = bundle(conn, OrgSums.queries(scope, org, t))
        self.per_org = [tuple(r) for r in rows["org_hosts"]]
        self.per_prof = [tuple(r) for r in rows["org_profiles"] if r[2]]
        self.touched = touched = recorded.touched_hosts(conn, t, rows["touched"])
        conds = _in_scope(scope, db.hosts.c.org_path, org)
        if touched[1] is not None:  # valid verdicts (rare): the hosts they touch are read too
            self.corrections = waiver_corrections(conn, conds, t, touched)
        else:
            self.corrections = waiver_corrections(conn, conds, t, touched, _dicts(
                _corrections_query(conds, t, touched), rows["corrections"]))

    @staticmethod
    def queries(scope, org, t):
        """[(name, SELECT)] of what OrgSums sums (for ``bundle``): per org unit (with its hosts that
        have not reported for 3 days: a scan of hosts), per org unit and profile, and the host profiles
        whose waivers partly expired (``waiver_corrections`` without verdicts); the valid verdicts
        (``verdicts.touched_query``)."""
        from scanner.server.store import verdicts as recorded
        h, oh, op = db.hosts, db.org_hosts, db.org_profiles
        stale = _where(select(h.c.org_path, func.count().label("n")).where(
            h.c.retired_at.is_(None), or_(h.c.last_seen.is_(None), h.c.last_seen < t - 3 * 86400)),
            *_in_scope(scope, h.c.org_path, org)).group_by(h.c.org_path).subquery()
        per_org = _where(select(oh.c.org_path, oh.c.hosts, oh.c.loc_domestic, oh.c.loc_foreign, oh.c.loc_unknown,
                                func.coalesce(stale.c.n, 0), oh.c.loc_sum, oh.c.loc_n)
                         .select_from(oh.outerjoin(stale, stale.c.org_path == oh.c.org_path)).where(oh.c.hosts > 0),
                         *_in_scope(scope, oh.c.org_path, org))
        full = and_(op.c.waived_min > t)  # waived_min 0: no waiver
        score = func.sum(case((full, op.c.wscore_sum), else_=op.c.score_sum))
        scored = func.sum(case((full, op.c.wscored), else_=op.c.scored))
        waived = func.sum(case((full, op.c.waived_n), else_=0))
        per_prof = _where(select(op.c.org_path, op.c.profile, func.sum(op.c.hosts), score, scored,
                                 func.sum(op.c.failed) - waived, func.sum(op.c.raw_sum), func.sum(op.c.raw_n), waived,
                                 func.sum(op.c.passed), func.sum(op.c.score_sum), func.sum(op.c.scored)),
                          *_in_scope(scope, op.c.org_path, org)).group_by(op.c.org_path, op.c.profile)
        partly = _corrections_query(_in_scope(scope, h.c.org_path, org), t, ([], None))
        return [("org_hosts", per_org), ("org_profiles", per_prof), ("corrections", partly),
                ("touched", recorded.touched_query(t))]


def _host_summary(conn, scope, org=None, sums=None):
    """Live hosts, their localization counts and how many have not reported for 3 days."""
    sums = sums or OrgSums(conn, scope, org)
    n = dom = forn = unk = st = 0
    for _path, count, d, f, u, stale, _ls, _ln in sums.per_org:
        n, dom, forn, unk, st = n + count, dom + int(d or 0), forn + int(f or 0), unk + int(u or 0), st + int(stale or 0)
    return n, dom, forn, unk, st


def _token_orgs_query(scope, org):
    return _where(select(db.enroll_tokens.c.org_path).distinct(), *_in_scope(scope, db.enroll_tokens.c.org_path, org))


def org_tree(engine, scope, org=None, sums=None, token_orgs=None):
    """Every org unit (from hosts and tokens) with roll-ups over its subtree. A scoped caller gets
    the nodes of their subtrees only (no ancestors: their names and totals are not theirs).
    The database sums per org unit (one row per unit and profile, not per host); the subtree
    roll-up over those few rows happens here."""
    if sums is None or token_orgs is None:
        with engine.connect() as conn:
            read_only(conn)
            t = now()
            rows = bundle(conn, OrgSums.queries(scope, org, t) + [("token_orgs", _token_orgs_query(scope, org))])
            sums = sums or OrgSums(conn, scope, org, t, rows)
            token_orgs = [r[0] for r in rows["token_orgs"]]
    per_org, per_prof, corrections = sums.per_org, sums.per_prof, sums.corrections
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
    for path, count, dom, forn, unk, *_rest in per_org:
        node(path)["direct_hosts"] += count
        for anc in org_ancestors(path):
            n = node(anc)
            n["hosts"] += count
            n["domestic"] += int(dom or 0)
            n["foreign"] += int(forn or 0)
            n["unknown"] += int(unk or 0)
    for path, profile, count, score_sum, scored, failed, raw_sum, raw_scored, waived, *_rest in per_prof:
        for anc in org_ancestors(path):
            p = node(anc)["profiles"].setdefault(profile, {"hosts": 0, "score_sum": 0.0, "scored": 0, "failed": 0,
                                                           "waived": 0, "recorded": 0, "raw_sum": 0.0,
                                                           "raw_scored": 0})
            p["hosts"] += count
            p["failed"] += int(failed or 0)
            p["waived"] += int(waived or 0)
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


def _by_category_query(scope, org):
    cc = db.component_counts
    q = select(cc.c.category, cc.c.origin, func.sum(cc.c.n))
    return _where(q, *_in_scope(scope, cc.c.org_path, org)).group_by(cc.c.category, cc.c.origin)


def localization_by_category(conn, scope, org=None, rows=None):
    """Components per category and origin, summed from the maintained component_counts
    (store/aggregates.py: per org unit; a retired host's components are gone). ``rows``: the
    query's rows, when read already."""
    out = {}
    for cat, origin, n in (rows if rows is not None else conn.execute(_by_category_query(scope, org))):
        if not n:
            continue
        out.setdefault(cat, {"domestic": 0, "foreign": 0, "unknown": 0})[origin] = int(n)
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


def compliance_by_profile(conn, scope, org=None, sums=None):
    """Per profile: hosts, mean score now (approved central waivers applied: ``profile_sums`` and
    ``waiver_corrections``) and without waivers; summed in the database per org unit (OrgSums)."""
    sums = sums or OrgSums(conn, scope, org)
    out = {}
    for _path, p, n, s, scored, fl, raw_sum, raw_n, wv, ps, _plain, _pn in sums.per_prof:
        x = out.setdefault(p, {"profile": p, "hosts": 0, "_sum": 0.0, "_scored": 0, "passed": 0, "failed": 0,
                               "waived": 0, "recorded": 0, "_raw": 0.0, "_raw_n": 0})
        x["hosts"] += n
        x["_sum"] += float(s or 0)
        x["_scored"] += scored
        x["passed"] += int(ps or 0)
        x["failed"] += int(fl or 0)
        x["waived"] += int(wv or 0)
        x["_raw"] += float(raw_sum or 0)
        x["_raw_n"] += raw_n
    for x in out.values():
        raw, raw_n = x.pop("_raw"), x.pop("_raw_n")
        x["score_without_waivers"] = round(raw / raw_n, 2) if raw_n else None
    for c in sums.corrections:
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


def top_failing_query(scope, org=None, limit=10, t=None):
    """The rules failing on most hosts (after waivers), per rule and the most severe severity of each
    host's failures of it, summed from the maintained ``rule_failing`` (store/aggregates.py: hosts
    per org unit, rule, waiver expiry and severity; a few thousand rows, not the failing results).
    The titles are fetched for the few rules shown, see top_failing_rules."""
    rf = db.rule_failing
    hosts_n = func.sum(rf.c.hosts)
    q = _where(select(rf.c.rule_id, rf.c.severity, hosts_n.label("n")).where(rf.c.covered_until <= (t or now())),
               *_in_scope(scope, rf.c.org_path, org))
    q = q.group_by(rf.c.rule_id, rf.c.severity).having(hosts_n > 0)
    return q.order_by(hosts_n.desc(), rf.c.rule_id, rf.c.severity).limit(limit)


WEIGHTS = {"info": 0, "low": 1, "medium": 2, "high": 4, "critical": 8}  # scanner/engine/evaluator.py


def _weight_expr(column):
    return case({k: v for k, v in WEIGHTS.items()}, value=column, else_=2)


def top_failing_rules(conn, scope, org=None, limit=10):
    """The failing rules (after waivers) ranked by severity weight x failing hosts (the agent's
    weights: critical 8, high 4, medium 2, low 1, info 0), then by hosts: an info rule never heads
    the list while anything more severe fails. Every failing rule is counted from the maintained
    rule_failing (``top_failing_query``) with its severity, the most severe of its failures there (the
    maintained result_counts); the titles are read for the rules shown (an index probe each)."""
    out = _rank_failing(conn.execute(top_failing_query(scope, org, None)), limit)
    return _with_titles(out, conn.execute(_titles_query(out)) if out else ())


def _rank_failing(counted, limit):
    """``top_failing_query``'s rows (rule, severity, hosts) ranked: hosts summed per rule, whose
    severity is the most severe of its rows."""
    from scanner.server.store.aggregates import severity_key
    rules = {}
    for rid, sev, n in counted:
        cur = rules.get(rid)
        sev = sev or ""
        rules[rid] = (min(cur[0], sev, key=severity_key) if cur else sev, (cur[1] if cur else 0) + int(n))
    out = [{"rule_id": rid, "severity": sev or None, "hosts": n, "weight": WEIGHTS.get(sev or None, 2) * n}
           for rid, (sev, n) in rules.items() if n > 0]
    out.sort(key=lambda x: (-x["weight"], SEVERITY_ORDER.get(x["severity"], 5), -x["hosts"], x["rule_id"]))
    return out[:limit]


def _titles_query(out):
    """One failing row names each rule shown: an index probe each, in one statement."""
    r = db.results
    probes = [select(r.c.rule_id, r.c.title_zh, r.c.title_en).where(r.c.rule_id == x["rule_id"], r.c.status == "fail")
              .limit(1).subquery().select() for x in out]
    return union_all(*probes) if len(probes) > 1 else probes[0]


def _with_titles(out, rows):
    titles = {rid: (zh, en) for rid, zh, en in rows}
    for x in out:
        zh, en = titles.get(x["rule_id"], (None, None))
        x["title"] = {"zh": zh, "en": en}
    return out


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
    (as reported). Ranked from the weights kept per host profile (host_profiles.fail_weight/
    waived_weight, store/aggregates.py); the few profiles whose waivers partly expired are recounted
    from their results, and so are the hosts a verdict touches (``_add_recorded_failures``)."""
    if not profile:
        return []
    from scanner.engine.evaluator import WEIGHTS as weights
    t = now()
    r, h, hp = db.results, db.hosts, db.host_profiles
    full = waived_case(t)
    weight = (hp.c.fail_weight - case((full, hp.c.waived_weight), else_=0)).label("weight")
    failed = (hp.c.failed - case((full, hp.c.waived_n), else_=0)).label("failed")
    base = list(_in_scope(scope, h.c.org_path, org)) + [h.c.retired_at.is_(None), hp.c.profile == profile]
    joined = hp.join(h, h.c.id == hp.c.host_id)
    ranked = [tuple(x) for x in conn.execute(_where(
        select(hp.c.host_id, weight, failed).select_from(joined).where(~_partly_expired(t), failed > 0), *base)
        .order_by(weight.desc(), failed.desc(), hp.c.host_id).limit(limit))]
    partial = [x[0] for x in conn.execute(_where(select(hp.c.host_id).select_from(joined).where(_partly_expired(t)),
                                                 *base))]
    for i in range(0, len(partial), 500):
        counted = {}
        for hid, sev in conn.execute(_where(select(r.c.host_id, r.c.severity).where(
                r.c.host_id.in_(partial[i:i + 500]), r.c.profile == profile), status_filter(["fail"], t))):
            w, n = counted.get(hid, (0, 0))
            counted[hid] = (w + weights.get(sev, 2), n + 1)
        ranked.extend((hid, w, n) for hid, (w, n) in counted.items())
    top = {hid: [int(w or 0), int(n)] for hid, w, n in ranked}
    _add_recorded_failures(conn, scope, org, profile, top, limit)
    if not top:
        return []
    ranked = sorted(top.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:limit]
    top = [(hid, w, n) for hid, (w, n) in ranked]
    ids = [x[0] for x in top]
    names = {x[0]: (x[1], x[2]) for x in conn.execute(select(h.c.id, h.c.hostname, h.c.org_path).where(h.c.id.in_(ids)))}
    sev = {}
    for hid, severity, n in conn.execute(_where(select(r.c.host_id, r.c.severity, func.count()).where(
            r.c.host_id.in_(ids), r.c.profile == profile), status_filter(["fail"], t)).group_by(r.c.host_id, r.c.severity)):
        sev.setdefault(hid, {})[severity] = n
    rows = [dict(x) for x in conn.execute(select(hp.c.host_id, hp.c.profile, hp.c.score, hp.c.failed).where(
        hp.c.host_id.in_(ids), hp.c.profile == profile)).mappings()]
    scores = {x["host_id"]: x["score"] for x in apply_central_waivers(conn, rows, h.c.id.in_(ids))}
    return [{"host_id": hid, "hostname": names.get(hid, (None, None))[0], "org_path": names.get(hid, (None, None))[1],
             "profile": profile, "weight": w, "failed": int(n), "by_severity": sev.get(hid, {}),
             "score": scores.get(hid)} for hid, w, n in top]


WORST_DETAILS = ("host_id", "profile", "score", "failed", "waived_n", "waived_score", "waived_min", "waived_max",
                 "hostname", "org_path")


def _worst_queries(scope, org, profile, t, limit=10):
    """``worst_hosts``' reads in the common case (for ``bundle``): the ranked host profiles (a CTE),
    the partly expired ones (they make the ranking recount), and the names, profile rows and
    failures per severity of the ranked hosts. ``profile`` None: each host in its own main profile
    (store/worst.py, the overview's first screen)."""
    from scanner.server.store.worst import main_profile_cond
    r, h, hp = db.results, db.hosts, db.host_profiles
    full = waived_case(t)
    weight = (hp.c.fail_weight - case((full, hp.c.waived_weight), else_=0)).label("weight")
    failed = (hp.c.failed - case((full, hp.c.waived_n), else_=0)).label("failed")
    joined = hp.join(h, h.c.id == hp.c.host_id)
    scoped = [c for c in _in_scope(scope, h.c.org_path, org) if c is not None]
    # the whole fleet: host_profiles alone (a retired host has none: workflow/hosts.py deletes them)
    which = hp.c.profile == profile if profile else main_profile_cond()
    base = scoped + [h.c.retired_at.is_(None), which] if scoped else [which]
    source = joined if scoped else hp
    ranked = _where(select(hp.c.host_id, hp.c.profile, weight, failed).select_from(source)
                    .where(~_partly_expired(t), failed > 0), *base).order_by(
        weight.desc(), failed.desc(), hp.c.host_id).limit(limit).cte("worst_ranked")
    partial = _where(select(hp.c.host_id).select_from(source).where(_partly_expired(t)), *base)
    details = select(*[hp.c[k] for k in WORST_DETAILS[:-2]], h.c.hostname, h.c.org_path).select_from(
        joined.join(ranked, and_(ranked.c.host_id == hp.c.host_id, ranked.c.profile == hp.c.profile)))
    sev = _where(select(r.c.host_id, r.c.severity, func.count()).select_from(
        r.join(ranked, and_(ranked.c.host_id == r.c.host_id, ranked.c.profile == r.c.profile))),
        status_filter(["fail"], t)).group_by(r.c.host_id, r.c.severity)
    return [("worst_ranked", select(ranked)), ("worst_partial", partial), ("worst_details", details),
            ("worst_sev", sev)]


def _worst_from(conn, rows, scope, org, profile, t, touched, limit=10):
    """``worst_hosts`` from ``_worst_queries``' rows; when some host profile's waivers partly
    expired or a valid verdict may touch the profile (both rare), ``worst_hosts`` reads what it needs."""
    levels, by_verdict = touched
    if rows["worst_partial"] or (by_verdict is not None and (profile in levels if profile else levels)):
        if profile:
            return worst_hosts(conn, scope, org, profile, limit)
        from scanner.server.store import worst
        return worst.worst_hosts(conn, scope, org, limit)
    top = sorted(((hid, p, int(w or 0), int(n)) for hid, p, w, n in rows["worst_ranked"]),
                 key=lambda x: (-x[2], -x[3], x[0]))[:limit]
    details = [dict(zip(WORST_DETAILS, x)) for x in rows["worst_details"]]
    names = {x["host_id"]: (x["hostname"], x["org_path"]) for x in details}
    sev = {}
    for hid, severity, n in rows["worst_sev"]:
        sev.setdefault(hid, {})[severity] = n
    scores = {x["host_id"]: x["score"] for x in apply_central_waivers(conn, details, t=t, touched=touched,
                                                                      state_in_rows=True)}
    return [{"host_id": hid, "hostname": names.get(hid, (None, None))[0], "org_path": names.get(hid, (None, None))[1],
             "profile": p, "weight": w, "failed": n, "by_severity": sev.get(hid, {}),
             "score": scores.get(hid)} for hid, p, w, n in top]


def _trend_query(scope, org, days, profile):
    dr = db.daily_rollups
    from scanner.server.store import rollups
    first = rollups.today() - days + 1
    score_sum = func.sum(case((dr.c.profile == profile, dr.c.score_sum), else_=None)) if profile else func.sum(dr.c.score_sum)
    scored = func.sum(case((dr.c.profile == profile, dr.c.scored), else_=0)) if profile else func.sum(dr.c.scored)
    return _where(select(dr.c.day, score_sum, scored, func.sum(dr.c.loc_sum), func.sum(dr.c.loc_n), func.sum(dr.c.hosts))
                  .where(dr.c.day >= first), *_in_scope(scope, dr.c.org_path, org)).group_by(dr.c.day).order_by(dr.c.day)


def trend(conn, scope, org=None, days=30, profile=None, sums=None, rows=None):
    """Per day, the fleet's state as of that day's end (store/rollups.py; today: the latest
    state): the mean localization rate of the hosts and, when ``profile`` is given, their mean
    score for that profile only (scores of different profiles do not average into anything
    meaningful). ``reports``: the latest reports (one per host and profile) making up that day's state.
    ``rows``: ``_trend_query``'s rows when read already."""
    from scanner.server.store import rollups
    if rows is None:
        rows = conn.execute(_trend_query(scope, org, days, profile))
    rows = sorted(tuple(r) for r in rows)
    # today: the latest state of the live hosts (their reported scores, as the roll-ups keep them)
    sums = sums or OrgSums(conn, scope, org)
    s_sum = s_n = n_hosts = 0
    for _path, prof, n, *_x, plain_sum, plain_n in sums.per_prof:
        n_hosts += n
        if not profile or prof == profile:
            s_sum += float(plain_sum or 0)
            s_n += plain_n
    l_sum = sum(float(x[6] or 0) for x in sums.per_org)
    l_n = sum(x[7] for x in sums.per_org)
    if n_hosts or l_n:
        rows.append((rollups.today(), s_sum, s_n, l_sum, l_n, n_hosts))
    out = []
    for d, s_sum, s_n, l_sum, l_n, n in rows:
        out.append({"day": int(d) * 86400, "score": round(float(s_sum) / s_n, 2) if s_n else None,
                    "loc_rate": round(float(l_sum) / l_n, 4) if l_n else None, "reports": int(n or 0)})
    return out


TREND_DAYS = 30


def overview(engine, scope, org=None):
    """The fleet overview: every panel read in two round trips (``bundle``): first the sums and
    counts that need nothing else, then what depends on them (the top failing rules' titles, the
    worst hosts of the main profile, its trend)."""
    from scanner.server.store import rollups
    t = now()
    with engine.connect() as conn:
        read_only(conn)
        first = bundle(conn, OrgSums.queries(scope, org, t) + [
            ("by_category", _by_category_query(scope, org)),
            ("failing", top_failing_query(scope, org, None, t)),
            ("token_orgs", _token_orgs_query(scope, org)),
            ("rollup_days", rollups.marks_query(TREND_DAYS))])
        sums = OrgSums(conn, scope, org, t, first)  # read once, added up below in several ways
        count, dom, forn, unk, stale = _host_summary(conn, scope, org, sums)
        data = {
            "hosts": count, "stale_hosts": stale,
            "localization": {"domestic": dom, "foreign": forn, "unknown": unk,
                             "rate": round(dom / (dom + forn), 4) if dom + forn else None},
            "by_category": localization_by_category(conn, scope, org, first["by_category"]),
            "by_profile": compliance_by_profile(conn, scope, org, sums),
        }
        top = _rank_failing(first["failing"], 10)
        # the score line follows the profile most hosts are scanned with
        main = max(data["by_profile"], key=lambda p: (p["hosts"], p["profile"]))["profile"] if data["by_profile"] else None
        data["trend_profile"] = main
        data["main_profile"] = main
        if rollups.ensure(engine, TREND_DAYS, first["rollup_days"]):
            conn.rollback()  # a new read transaction below sees the roll-ups just computed (SQLite's snapshot)
        second = [("trend", _trend_query(scope, org, TREND_DAYS, main))]
        if top:
            second.append(("titles", _titles_query(top)))
        if main:
            second.extend(_worst_queries(scope, org, None, t))  # each host in its own main profile
        rows = bundle(conn, second)
        data["top_failing"] = _with_titles(top, rows.get("titles", ()))
        data["worst_hosts"] = _worst_from(conn, rows, scope, org, None, t, sums.touched) if main else []
        data["trend"] = trend(conn, scope, org, days=TREND_DAYS, profile=main, sums=sums, rows=rows["trend"])
    tree = org_tree(engine, scope, org, sums, token_orgs=[r[0] for r in first["token_orgs"]])
    data["by_org"] = [n for n in tree if n["depth"] <= 2 and n["hosts"]]
    return data


def rule_status_counts(engine, scope, rule_id):
    """Hosts per effective status for one rule (the index on rule_id, status serves it)."""
    rc = db.result_counts  # maintained (store/aggregates.py); a retired host's results are gone
    t = now()
    q = (select(rc.c.status, rc.c.waiver_until, func.sum(rc.c.n)).where(rc.c.rule_id == rule_id)
         .group_by(rc.c.status, rc.c.waiver_until))
    q = _where(q, *_in_scope(scope, rc.c.org_path))
    counts = {}
    with engine.connect() as conn:
        for status, until, n in conn.execute(q):
            if not n:
                continue
            key = "waived" if status == "fail" and until is not None and until > t else status
            counts[key] = counts.get(key, 0) + int(n)
    return counts


def rule_hosts(engine, scope, rule_id, status=None, limit=None, offset=0, counts=None):
    """Hosts with a latest result for ``rule_id``, what needs action first (``Page.total``: all).
    ``counts``: ``rule_status_counts`` of the same rule and scope, which give the total (else counted)."""
    r, h = db.results, db.hosts
    t = now()
    eff = effective_status(t)
    conds = [r.c.rule_id == rule_id, h.c.retired_at.is_(None), status_filter(status, t) if status else None]
    conds += _in_scope(scope, h.c.org_path)
    base = select(h.c.id, h.c.hostname, h.c.org_path, r.c.profile, r.c.status.label("reported_status"),
                  eff.label("status"), r.c.actual, r.c.expected, r.c.evidence, r.c.title_zh, r.c.title_en,
                  r.c.severity, r.c.category, r.c.waiver_id).select_from(r.join(h, h.c.id == r.c.host_id))
    hosts_order = (h.c.org_path, h.c.hostname, h.c.id, r.c.profile)

    def decoded(fetched):
        return decode_rows(fetched, lambda x: dict(x, actual=decode(x["actual"]), expected=decode(x["expected"]),
                                                   evidence=decode(x["evidence"])), "rule")
    if counts is not None and limit is not None:
        # one status at a time (the counts say where the page lies): a page sorts the rows of one or two
        # statuses in the hosts' order instead of all the rule's rows by status first
        rows, skip, need = [], offset, limit
        with engine.connect() as conn:
            for st in sorted(counts):
                if need <= 0:
                    break
                if status and st not in status:
                    continue
                if skip >= counts[st]:
                    skip -= counts[st]
                    continue
                fetched = conn.execute(_where(base, *(conds[:2] + [status_filter([st], t)] + conds[3:]))
                                       .order_by(*hosts_order).limit(need).offset(skip)).mappings().all()
                need -= len(fetched)
                skip = 0
                rows.extend(decoded(fetched))
        return Page.of(rows, sum(n for st, n in counts.items() if not status or st in status))
    q = _where(base, *conds).order_by(eff, *hosts_order).offset(offset)
    if limit is not None:
        q = q.limit(limit)
    with engine.connect() as conn:
        rows = decoded(conn.execute(q).mappings().all())
        if limit is None or (not offset and len(rows) < limit):
            total = offset + len(rows)
        elif counts is not None:  # the maintained counts per effective status (live hosts in scope)
            total = sum(n for st, n in counts.items() if not status or st in status)
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
def latest_hosts(engine, scope, org=None, limit=2000):
    """(count, hosts) for the not retired hosts of ``org`` (inside ``scope``) with a report: hosts is
    [{host_id, hostname, org_path, latest_report_id}] in org and name order, or [] when more than
    ``limit`` hosts match (the caller asks for a narrower org)."""
    h = db.hosts
    conds = list(_in_scope(scope, h.c.org_path, org)) + [h.c.retired_at.is_(None), h.c.latest_report_id.is_not(None)]
    with engine.connect() as conn:
        count = conn.execute(_where(select(func.count()).select_from(h), *conds)).scalar() or 0
        if count > limit:
            return count, []
        hosts = [dict(x) for x in conn.execute(_where(select(
            h.c.id.label("host_id"), h.c.hostname, h.c.org_path, h.c.latest_report_id), *conds).order_by(
            h.c.org_path, h.c.hostname, h.c.id)).mappings()]
    return count, hosts


def documents(engine, hosts, batch=25):
    """An iterator of {host_id, hostname, org_path, doc, report, level, verdict_ids} for hosts [{host_id,
    hostname, org_path, latest_report_id}] (already read through a scope, ``latest_hosts``): ``doc`` the
    host's latest stored report document with the assessors' valid recorded verdicts on it
    (store/verdicts.py; ``level`` and ``verdict_ids`` say which), or None when it cannot be read (one bad
    row never stops a fleet view); ``report`` {id, evaluated_at, pruned_at} of the stored row, or None when
    it is gone. The documents are read ``batch`` hosts at a time as the rows are taken, so at most a batch
    of them is in memory, not the subtree's: a parsed report is ~2 MB of Python objects (a department of
    1,000 hosts held them all: 2 GB of the worker and 13.8 s)."""
    from scanner.server.store import verdicts
    r = db.reports
    for i in range(0, len(hosts), batch):
        part = hosts[i:i + batch]
        rows = []
        with engine.connect() as conn:
            stored = {x["id"]: dict(x) for x in conn.execute(select(
                r.c.id, r.c.host_id, r.c.body_gz, r.c.evaluated_gz, r.c.evaluated_at, r.c.body_kind, r.c.sha256,
                r.c.collected_at, r.c.pruned_at).where(
                r.c.id.in_([x["latest_report_id"] for x in part]))).mappings().all()}
            for host in part:
                row, doc = stored.pop(host["latest_report_id"], None), None
                report = None if row is None else {k: row[k] for k in ("id", "evaluated_at", "pruned_at")}
                if row is not None:  # (else pruned since: unreadable, like a damaged one)
                    try:
                        bodies.load(conn, [row])  # one at a time: a compacted body is only in memory while decoded
                        doc = report_document(row)
                        doc = doc if isinstance(doc, dict) else None
                    except Exception as exc:  # noqa: BLE001 - a damaged stored document is one bad row
                        skipped("latest report", row, exc)
                        doc = None
                rows.append({"host_id": host["host_id"], "hostname": host["hostname"], "org_path": host["org_path"],
                             "doc": doc, "report": report})
            verdicts.apply_to_documents(conn, rows)
        rows.reverse()
        while rows:  # handed over one by one: each document goes once its row is used
            yield rows.pop()
