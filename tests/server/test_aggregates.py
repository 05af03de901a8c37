"""Maintained fleet aggregates (scanner/server/store/aggregates.py) on a real SQLite file and on the
PostgreSQL at 127.0.0.1:5432: after every kind of write of latest-state rows (batched intake,
re-evaluation, waiver decisions, retiring a host) they equal a recount from the rows, and the fleet
views that read them (top failing rules, findings totals, a rule's counts, localization bars,
scores with waivers) equal the same figures counted the slow way from the results, within each
access scope. Also: intake rewrites only the result rows that changed, and a retired host leaves
the stored daily roll-ups exactly as a recomputation without it."""
from __future__ import annotations

import random
import uuid

import pytest
from sqlalchemy import event, func, select, text

from fleet import RULES
from scanner.engine.evaluator import score as weighted_score
from scanner.server.intake import ingest
from scanner.server.store import aggregates, db, queries, rollups, worst
from scanner.server.store.scope import Scope
from scanner.server.workflow import waivers
from scanner.server.workflow.hosts import retire_host
from test_batch_store import enroll, item, put

EVERYTHING = Scope.everything()
LAST_RULE = RULES[-1][0]  # forcing it to fail changes no other result of a seeded report


@pytest.fixture
def engine(db_engine):
    return db_engine


def assert_consistent(engine):
    with engine.connect() as conn:
        with conn.begin():
            diff = aggregates.check(conn)
    assert diff == [], diff[:10]


def slow_top_failing(engine, scope, t):
    """{rule: hosts failing it after waivers} counted from the results."""
    r, h = db.results, db.hosts
    q = (select(r.c.rule_id, func.count(func.distinct(r.c.host_id))).select_from(r.join(h, h.c.id == r.c.host_id))
         .where(queries.status_filter(["fail"], t)).group_by(r.c.rule_id))
    cond = scope.where(h.c.org_path)
    if cond is not None:
        q = q.where(cond)
    with engine.connect() as conn:
        return dict(conn.execute(q).all())


def slow_failing_severity(engine, scope, t):
    """{rule: the most severe severity of its failures after waivers} from the results."""
    rank = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
    r, h = db.results, db.hosts
    q = select(r.c.rule_id, r.c.severity).select_from(r.join(h, h.c.id == r.c.host_id)).where(
        queries.status_filter(["fail"], t))
    if scope.where(h.c.org_path) is not None:
        q = q.where(scope.where(h.c.org_path))
    out = {}
    with engine.connect() as conn:
        for rid, sev in conn.execute(q):
            key = (rank.get(sev, 5), sev or "")
            if rid not in out or key < out[rid]:
                out[rid] = key
    return {rid: key[1] or None for rid, key in out.items()}


def slow_profile_scores(engine, t):
    """{(host, profile): (score with the central waivers in force at t, waived)} from the results."""
    r = db.results
    out = {}
    with engine.connect() as conn:
        rows = conn.execute(select(r.c.host_id, r.c.profile, r.c.severity, r.c.status, r.c.waiver_until)).all()
        stored = {(x.host_id, x.profile): x.score for x in conn.execute(select(db.host_profiles))}
    by = {}
    for host_id, profile, sev, status, until in rows:
        waived = status == "fail" and until is not None and until > t
        by.setdefault((host_id, profile), []).append({"severity": sev, "status": "waived" if waived else status,
                                                      "central": waived})
    for key, res in by.items():
        n = sum(1 for x in res if x["central"])
        out[key] = (weighted_score(res, True) if n else stored[key], n)
    return out


def slow_worst(engine, scope, profile, t):
    """[(host, weight, failures)] of the failing rows after waivers, heaviest first."""
    from scanner.engine.evaluator import WEIGHTS
    r, h = db.results, db.hosts
    q = (select(r.c.host_id, r.c.severity).select_from(r.join(h, h.c.id == r.c.host_id))
         .where(r.c.profile == profile, queries.status_filter(["fail"], t)))
    if scope.where(h.c.org_path) is not None:
        q = q.where(scope.where(h.c.org_path))
    out = {}
    with engine.connect() as conn:
        for hid, sev in conn.execute(q):
            w, n = out.get(hid, (0, 0))
            out[hid] = (w + WEIGHTS.get(sev, 2), n + 1)
    return sorted([(hid, w, n) for hid, (w, n) in out.items()], key=lambda x: (-x[1], -x[2], x[0]))


def plain_bundle(conn, named):
    """queries.bundle without the single statement: each SELECT run alone (what SQLite does)."""
    return {name: [tuple(r) for r in conn.execute(q)] for name, q in named}


def check_overview(engine, scope, org, monkeypatch):
    """The overview read in two round trips (queries.bundle: one statement per step on PostgreSQL)
    equals the same read one SELECT at a time, and each panel equals the function that reads it
    alone (worst hosts: also the general path that recounts partly expired waivers and verdicts)."""
    statements = []

    def count(*_a):
        statements.append(1)
    queries.overview(engine, scope, org)  # roll-ups of past days computed, if any were missing
    event.listen(engine, "before_cursor_execute", count)
    try:
        data = queries.overview(engine, scope, org)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    with engine.connect() as conn:  # host profiles whose waivers partly expired are recounted (more reads)
        partly = conn.execute(select(func.count()).select_from(db.host_profiles).where(
            queries._partly_expired(queries.now()))).scalar()
    if engine.dialect.name == "postgresql" and not partly:
        assert len(statements) == 2
    with monkeypatch.context() as m:
        m.setattr(queries, "bundle", plain_bundle)
        assert queries.overview(engine, scope, org) == data
    main = data["main_profile"]
    with engine.connect() as conn:
        assert data["top_failing"] == queries.top_failing_rules(conn, scope, org)
        assert data["worst_hosts"] == worst.worst_hosts(conn, scope, org)  # each host in its own main profile
        assert data["by_category"] == queries.localization_by_category(conn, scope, org)
        assert data["trend"] == queries.trend(conn, scope, org, days=queries.TREND_DAYS, profile=main)
        assert data["by_profile"] == queries.compliance_by_profile(conn, scope, org)
    tree = queries.org_tree(engine, scope, org)
    assert data["by_org"] == [n for n in tree if n["depth"] <= 2 and n["hosts"]]
    assert data["hosts"] == sum(n["direct_hosts"] for n in tree)


def check_views(engine, scope, t, monkeypatch):
    """The views reading the aggregates agree with counts from the rows, at time ``t``."""
    monkeypatch.setattr(queries, "now", lambda: t)
    monkeypatch.setattr(worst, "now", lambda: t)
    for org in (None, "/gov/finance", "/gov/health"):
        if org is None or scope.touches(org):
            check_overview(engine, scope, org, monkeypatch)
    for profile in ("mlps-l3", "xinchuang"):
        with engine.connect() as conn:
            got = [(x["host_id"], x["weight"], x["failed"])
                   for x in queries.worst_hosts(conn, scope, None, profile, limit=1000)]
        assert got == slow_worst(engine, scope, profile, t), profile
    # the first screen ranks each host in its own main profile (store/worst.py): the slow count per profile,
    # each host kept in the profile with the most rules (then the newest report, then the smaller name)
    hp = db.host_profiles
    with engine.connect() as conn:
        rows = conn.execute(select(hp.c.host_id, hp.c.profile, hp.c.passed + hp.c.failed + hp.c.errors + hp.c.other,
                                   hp.c.collected_at)).all()
        got = [(x["host_id"], x["weight"], x["failed"]) for x in worst.worst_hosts(conn, scope, None, limit=1000)]
    main = {}
    for hid, profile, n, at in sorted(rows, key=lambda x: (-x[2], -x[3], x[1])):
        main.setdefault(hid, profile)
    want = [x for profile in sorted(set(main.values())) for x in slow_worst(engine, scope, profile, t)
            if main[x[0]] == profile]
    assert got == sorted(want, key=lambda x: (-x[1], -x[2], x[0])) and got
    expected = slow_top_failing(engine, scope, t)
    with engine.connect() as conn:
        got = {x["rule_id"]: x["hosts"] for x in queries.top_failing_rules(conn, scope, limit=1000)}
        severity = {x["rule_id"]: x["severity"] for x in queries.top_failing_rules(conn, scope, limit=1000)}
    assert got == expected
    assert severity == slow_failing_severity(engine, scope, t)
    # findings totals for a few filters, against the length of the full list
    for filters in ({"status": ["fail"]}, {"status": ["waived"]}, {"status": ["fail", "pass"], "severity": ["high"]},
                    {"rule": RULES[0][0]}, {"category": "crypto", "status": ["manual"]}):
        page = queries.findings(engine, scope, limit=1, **filters)
        full = queries.findings(engine, scope, limit=100000, **filters)
        assert page.total == len(full), filters
    # past the end of a list, or a status no row has: its total, and no row read (the hosts' order walked every
    # row of the fleet looking for one)
    from sqlalchemy import event
    statements = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)
    failed = len(queries.findings(engine, scope, limit=100000, status=["fail"]))
    event.listen(engine, "before_cursor_execute", seen)
    try:
        past = queries.findings(engine, scope, limit=10, offset=failed, status=["fail"])
        none = queries.findings(engine, scope, limit=10, status=["error"], category="no-such-category")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert (list(past), past.total, list(none), none.total) == ([], failed, [], 0)
    assert statements and not [x for x in statements if "JOIN hosts" in x]
    # sorted by severity, rule or status (after waivers), page by page (read one value at a time), as the whole
    # list sorted here (rule ids and statuses by code point; the hosts' order within one value)
    rank = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
    first = {"severity": lambda x: rank.get(x["severity"], 5), "rule": lambda x: x["rule_id"],
             "status": lambda x: x["status"]}
    key = lambda x: (x["host_id"], x["profile"], x["rule_id"])  # noqa: E731
    seen = {}
    for filters in ({"status": ["fail", "error"]}, {"status": ["fail"], "severity": ["high", "low"]}, {},
                    {"status": ["waived", "pass"]}):
        by_host = queries.findings(engine, scope, limit=100000, sort="host", **filters)
        for sort, desc in [(k, d) for k in ("severity", "rule", "status") for d in (False, True)]:
            expected = sorted(by_host, key=first[sort], reverse=desc)
            paged, offset = [], 0
            while True:
                page = queries.findings(engine, scope, limit=37, offset=offset, sort=sort, desc=desc, **filters)
                assert page.total == len(expected)
                if not page:
                    break
                paged.extend(page)
                offset += 37
            assert [key(x) for x in paged] == [key(x) for x in expected], (filters, sort, desc)
            seen.setdefault(sort, set()).update(first[sort](x) for x in paged)
    assert min(len(v) for v in seen.values()) > 2, seen  # the buckets' edges crossed
    # one host's (read as one list, not by buckets): sorted by status after waivers too
    for x in queries.findings(engine, scope, limit=100000, status=["waived"])[:1]:
        mine = queries.findings(engine, scope, limit=100000, host=x["host_id"], sort="status")
        assert [f["status"] for f in mine] == sorted(f["status"] for f in mine) and "waived" in [f["status"] for f in mine]
    waived = [x for x in queries.findings(engine, scope, limit=100000, status=["waived"])]
    assert ("waived" in seen["status"]) == bool(waived)  # a failure under a central waiver sorts as waived
    for rid in (RULES[0][0], RULES[1][0], LAST_RULE):
        counts = queries.rule_status_counts(engine, scope, rid)
        rows = queries.rule_hosts(engine, scope, rid)
        slow = {}
        for x in rows:
            slow[x["status"]] = slow.get(x["status"], 0) + 1
        assert counts == slow, rid
        # a page's total from the counts (the rule page): the length of the whole list, per status filter
        for status in (None, ["fail"], ["waived", "pass"], ["error"]):
            full = queries.rule_hosts(engine, scope, rid, status)
            for offset in range(0, len(full) + 2, 3):  # pages read one status at a time, across statuses
                page = queries.rule_hosts(engine, scope, rid, status, limit=4, offset=offset, counts=counts)
                assert page.total == len(full) and list(page) == full[offset:offset + 4], (rid, status, offset)
    # localization bars
    c, h = db.components, db.hosts
    q = select(c.c.category, c.c.origin, func.count()).select_from(c.join(h, h.c.id == c.c.host_id)).group_by(
        c.c.category, c.c.origin)
    if scope.where(h.c.org_path) is not None:
        q = q.where(scope.where(h.c.org_path))
    with engine.connect() as conn:
        slow_loc = {}
        for cat, origin, n in conn.execute(q):
            slow_loc.setdefault(cat, {"domestic": 0, "foreign": 0, "unknown": 0})[origin] = n
        loc = {k: {o: v[o] for o in ("domestic", "foreign", "unknown")}
               for k, v in queries.localization_by_category(conn, scope).items()}
    assert loc == slow_loc
    # scores with waivers: per host, per org unit, per profile
    scores = slow_profile_scores(engine, t)
    hosts = queries.list_hosts(engine, scope, limit=1000)
    assert hosts
    for host in hosts:
        for profile, p in host["profiles"].items():
            assert (p["score"], p["waived"]) == scores[(host["id"], profile)], (host["hostname"], profile)
    tree = {n["path"]: n for n in queries.org_tree(engine, scope)}
    with engine.connect() as conn:
        by_profile = {p["profile"]: p for p in queries.compliance_by_profile(conn, scope)}
        org_of = dict(conn.execute(select(h.c.id, h.c.org_path)).all())
    for org, node in tree.items():
        for profile, p in node["profiles"].items():
            mine = [v for (hid, prof), v in scores.items()
                    if prof == profile and (org_of[hid] == org or org_of[hid].startswith(org.rstrip("/") + "/"))
                    and scope.covers(org_of[hid])]
            vals = [v[0] for v in mine if v[0] is not None]
            assert p["waived"] == sum(v[1] for v in mine), (org, profile)
            assert p["score"] == (pytest.approx(sum(vals) / len(vals), abs=0.006) if vals else None), (org, profile)
    for profile, p in by_profile.items():
        mine = [v for (hid, prof), v in scores.items() if prof == profile and scope.covers(org_of[hid])]
        vals = [v[0] for v in mine if v[0] is not None]
        assert p["waived"] == sum(v[1] for v in mine)
        assert p["score"] == (pytest.approx(sum(vals) / len(vals), abs=0.006) if vals else None)


def test_aggregates_follow_every_writer_and_views_match_the_rows(engine, monkeypatch):
    rng = random.Random(14)
    fin = enroll(engine, "/gov/finance", 4)
    tax = enroll(engine, "/gov/finance/tax", 3)
    hea = enroll(engine, "/gov/health", 4)
    fleet = fin + tax + hea
    t0 = 1_700_000_000
    # three rounds of batched intake, two profiles on some hosts, random statuses
    for rnd in range(3):
        batch = []
        for k, a in enumerate(fleet):
            fails = [r[0] for r in RULES[:3] if rng.random() < 0.5]
            batch.append(item(a, t0 + rnd * 86400, seed=rng.randint(1, 10 ** 6), fail_rules=fails)[0])
            if k % 3 == 0:
                batch.append(item(a, t0 + rnd * 86400 + 1, profile="xinchuang", seed=rng.randint(1, 10 ** 6))[0])
        rng.shuffle(batch)
        for i in range(0, len(batch), 5):
            outs = put(engine, batch[i:i + 5])
            assert not any(isinstance(o, Exception) for o in outs), outs
        assert_consistent(engine)
    with engine.connect() as conn:
        assert conn.execute(select(func.sum(db.result_counts.c.n))).scalar() == conn.execute(
            select(func.count()).select_from(db.results)).scalar() > 0
    t = t0 + 10 * 86400
    # waivers in force, with different expiries; one over a subtree, one fleet-wide, one for one host
    monkeypatch.setattr(waivers, "now", lambda: t)
    w_org = waivers.create_waiver(engine, {"rule_id": RULES[0][0], "scope": "org", "scope_value": "/gov/finance",
                                           "justification": "compensating control", "approver": "ciso",
                                           "expires_at": t + 100}, "admin", scope=EVERYTHING)
    waivers.create_waiver(engine, {"rule_id": RULES[1][0], "scope": "all", "scope_value": None,
                                   "justification": "compensating control", "approver": "ciso",
                                   "expires_at": t + 200}, "admin", scope=EVERYTHING)
    waivers.create_waiver(engine, {"rule_id": RULES[2][0], "scope": "host", "scope_value": hea[0].host_id,
                                   "justification": "compensating control", "approver": "ciso",
                                   "expires_at": t + 300}, "admin", scope=EVERYTHING)
    assert_consistent(engine)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(db.host_profiles)
                            .where(db.host_profiles.c.waived_n > 0)).scalar() > 0
    dept = Scope(["/gov/finance"])
    for when in (t + 50, t + 150, t + 250, t + 400):  # all in force, then expiring one by one
        check_views(engine, EVERYTHING, when, monkeypatch)
        check_views(engine, dept, when, monkeypatch)
    # a new round of intake while the waivers apply (intake attaches them and counts the difference)
    batch = [item(a, t0 + 5 * 86400, seed=rng.randint(1, 10 ** 6), fail_rules=[RULES[0][0], RULES[1][0]])[0]
             for a in fleet]
    for i in range(0, len(batch), 4):
        put(engine, batch[i:i + 4])
    assert_consistent(engine)
    check_views(engine, EVERYTHING, t + 50, monkeypatch)
    check_views(engine, dept, t + 150, monkeypatch)
    # revoking a waiver, re-evaluating a host's latest report, retiring a host
    waivers.revoke_waiver(engine, w_org["id"], "admin", scope=EVERYTHING)
    assert_consistent(engine)
    it, _doc = item(tax[0], t0 + 6 * 86400, seed=5, fail_rules=[r[0] for r in RULES[:9]])
    with db.write_tx(engine) as conn:
        ingest.apply_latest(conn, it.host_id, it.report_id, it.collected_at, it.derived)
    assert_consistent(engine)
    retire_host(engine, fin[1].host_id, "decommissioned", "admin", scope=EVERYTHING)
    assert_consistent(engine)
    check_views(engine, EVERYTHING, t + 50, monkeypatch)
    check_views(engine, dept, t + 50, monkeypatch)


def test_a_scoped_reader_counts_only_its_department(engine, monkeypatch):
    fin = enroll(engine, "/gov/finance", 2)
    hea = enroll(engine, "/gov/health", 3)
    put(engine, [item(a, 1_700_000_000, seed=1, fail_rules=[LAST_RULE])[0] for a in fin + hea])
    t = 1_700_100_000
    with engine.connect() as conn:
        top = {x["rule_id"]: x["hosts"] for x in queries.top_failing_rules(conn, Scope(["/gov/finance"]), limit=100)}
        everyone = {x["rule_id"]: x["hosts"] for x in queries.top_failing_rules(conn, EVERYTHING, limit=100)}
        assert queries.localization_by_category(conn, Scope(["/gov/nobody"])) == {}
    assert top[LAST_RULE] == 2 and everyone[LAST_RULE] == 5
    assert queries.rule_status_counts(engine, Scope(["/gov/health"]), LAST_RULE) == {"fail": 3}
    assert queries.findings(engine, Scope(["/gov/finance"]), status=["fail"], limit=1).total == len(
        queries.findings(engine, Scope(["/gov/finance"]), status=["fail"], limit=1000))
    check_views(engine, Scope(["/gov/health"]), t, monkeypatch)


def test_a_result_without_severity_or_category_is_counted(engine, monkeypatch):
    (a,) = enroll(engine, "/gov/water", 1)
    it, doc = item(a, 1_700_000_000, seed=3, fail_rules=[LAST_RULE])
    for r in doc["results"][:3]:
        r.pop("severity")
        r["category"] = None
        r["status"] = "fail"
    it = it._replace(derived=ingest.derive(doc))
    put(engine, [it])
    assert_consistent(engine)
    check_views(engine, EVERYTHING, 1_700_100_000, monkeypatch)


def test_unchanged_results_are_not_rewritten(engine):
    (a,) = enroll(engine, "/gov/finance", 1)
    first, _d = item(a, 1_700_000_000, seed=11)
    put(engine, [first])
    ident = "xmin::text" if engine.dialect.name == "postgresql" else "rowid"
    r = db.results

    def versions():
        with engine.connect() as conn:
            return {row[0]: (row[1], row[2]) for row in conn.execute(text(
                "SELECT rule_id, %s, status FROM results WHERE host_id = :h" % ident), {"h": a.host_id})}
    before = versions()
    # the same results again except the last rule, which now fails
    again, _d = item(a, 1_700_086_400, seed=11, fail_rules=[LAST_RULE])
    put(engine, [again])
    after = versions()
    assert set(after) == set(before)
    changed = {rid for rid in after if after[rid] != before[rid]}
    if before[LAST_RULE][1] == "fail":
        assert changed == set()
    else:
        assert changed == {LAST_RULE}
    if engine.dialect.name == "postgresql":  # xmin: which rows this transaction wrote
        rewritten = {rid for rid in after if after[rid][0] != before[rid][0]}
        assert rewritten == changed
    with engine.connect() as conn:
        assert conn.execute(select(r.c.status).where(r.c.host_id == a.host_id, r.c.rule_id == LAST_RULE)).scalar() == "fail"
        assert conn.execute(select(db.host_profiles.c.report_id).where(
            db.host_profiles.c.host_id == a.host_id)).scalar() == again.report_id
    # a report without some rules deletes their rows; a new rule is inserted
    _it, doc = item(a, 1_700_172_800, seed=11, fail_rules=[LAST_RULE])
    doc["results"] = doc["results"][5:] + [dict(doc["results"][0], rule_id="mlps.new.rule")]
    third = _it._replace(derived=ingest.derive(doc), report_id=doc["report_id"])
    put(engine, [third])
    rows = versions()
    assert set(rows) == (set(before) - {x[0] for x in RULES[:5]}) | {"mlps.new.rule"}
    assert_consistent(engine)


def _component_writes(engine):
    """A record of every row written to ``components`` from here on, as (operation, seq): a trigger on
    SQLite; on PostgreSQL the rows whose xmin (the transaction that wrote them) is the newest one's."""
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE comp_writes (op TEXT, seq INTEGER)")
            for op, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
                conn.exec_driver_sql("CREATE TRIGGER comp_%s AFTER %s ON components BEGIN "
                                     "INSERT INTO comp_writes VALUES ('%s', %s.seq); END" % (op, op, op, row))

    def since(host_id, before):
        """(inserted or updated seqs, deleted seqs) by the transactions after ``before`` (a state)."""
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                rows = conn.exec_driver_sql("SELECT op, seq FROM comp_writes").all()
                conn.exec_driver_sql("DELETE FROM comp_writes")
                return ({s for op, s in rows if op != "DELETE"}, {s for op, s in rows if op == "DELETE"})
            now = dict(conn.execute(text("SELECT seq, xmin::text FROM components WHERE host_id = :h"), {"h": host_id}).all())
        return ({s for s, x in now.items() if before.get(s) != x}, set(before) - set(now))

    def state(host_id):
        if engine.dialect.name == "sqlite":
            return {}
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT seq, xmin::text FROM components WHERE host_id = :h"),
                                     {"h": host_id}).all())
    return state, since


def test_unchanged_components_are_not_rewritten(engine):
    """Intake writes only the inventory components that changed (by position, per-row digest), and
    component_counts follows: an unchanged inventory writes no component row; one changed version
    rewrites that row; a changed origin moves its count; a shorter list deletes the rest; a longer
    one inserts. The stored rows always equal the report's."""
    (a,) = enroll(engine, "/gov/finance", 1)
    state, since = _component_writes(engine)
    first, doc = item(a, 1_700_000_000, seed=11)
    put(engine, [first])
    c = db.components

    def stored():
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(*[c.c[k] for k in ("seq", "category", "product_id", "origin",
                                                                          "version", "evidence", "row_hash")])
                                                  .where(c.c.host_id == a.host_id).order_by(c.c.seq)).mappings()]

    def expect(d):
        return [{k: x[k] for k in ("seq", "category", "product_id", "origin", "version", "evidence", "row_hash")}
                for x in d["components"]]

    def report(collected_at, comps):
        d = dict(doc, report_id=str(uuid.uuid4()))
        d["inventory"] = dict(doc["inventory"], components=comps)
        return first._replace(report_id=d["report_id"], collected_at=collected_at, derived=ingest.derive(d))

    since(a.host_id, state(a.host_id))
    n = len(doc["inventory"]["components"])
    assert n >= 4 and stored() == expect(first.derived)

    def flip(x):
        return dict(x, origin="foreign" if x["origin"] != "foreign" else "domestic")
    steps = [  # each changes the previous step's list
        ("same inventory", lambda cs: cs, (set(), set())),
        ("one version", lambda cs: cs[:1] + [dict(cs[1], version="99.1")] + cs[2:], ({1}, set())),
        ("one origin", lambda cs: cs[:2] + [flip(cs[2])] + cs[3:], ({2}, set())),
        ("shorter", lambda cs: cs[:n - 2], (set(), {n - 2, n - 1})),
        ("longer", lambda cs: cs + [dict(cs[0], product_id="extra-db", category="database", origin="unknown")],
         ({n - 2}, set())),
        ("one removed in the middle", lambda cs: cs[:1] + cs[2:], (set(range(1, n - 2)), {n - 2})),
    ]
    comps = [dict(x) for x in doc["inventory"]["components"]]
    for k, (what, change, (written, deleted)) in enumerate(steps):
        before = state(a.host_id)
        comps = change(comps)
        it = report(1_700_000_000 + (k + 1) * 86400, comps)
        put(engine, [it])
        assert since(a.host_id, before) == (written, deleted), what
        assert stored() == expect(it.derived), what
        assert_consistent(engine)
    with engine.connect() as conn:  # the host's localization counts follow the last report
        row = conn.execute(select(db.hosts.c.loc_domestic, db.hosts.c.loc_foreign, db.hosts.c.loc_unknown)
                           .where(db.hosts.c.id == a.host_id)).one()
    assert tuple(row) == (it.derived["counts"]["domestic"], it.derived["counts"]["foreign"], it.derived["counts"]["unknown"])


def _all_rollups(conn):
    return sorted((d, o, p, n, round(s or 0, 6), sc, round(ls or 0, 6), ln) for d, o, p, n, s, sc, ls, ln in conn.execute(
        select(db.daily_rollups.c.day, db.daily_rollups.c.org_path, db.daily_rollups.c.profile, db.daily_rollups.c.hosts,
               db.daily_rollups.c.score_sum, db.daily_rollups.c.scored, db.daily_rollups.c.loc_sum,
               db.daily_rollups.c.loc_n)) if n)


def test_retiring_a_host_takes_it_out_of_the_stored_rollups(engine):
    fleet = enroll(engine, "/gov/finance", 3) + enroll(engine, "/gov/health", 2)
    today = rollups.today()
    for d in range(1, 9):  # a report a day for 8 days before today, two profiles on one host
        batch = [item(a, (today - d) * 86400 + 3600 + k, seed=d * 10 + k)[0] for k, a in enumerate(fleet)]
        batch.append(item(fleet[0], (today - d) * 86400 + 7200, profile="xinchuang", seed=d)[0])
        put(engine, batch)
    assert rollups.ensure(engine, 10) == 10
    with engine.connect() as conn:
        counted = _all_rollups(conn)
    assert any(o == "/gov/finance" and n == 3 for _d, o, p, n, *_x in counted)
    retire_host(engine, fleet[0].host_id, "decommissioned", "admin", scope=EVERYTHING)
    with engine.connect() as conn:
        kept = _all_rollups(conn)
        marks = conn.execute(select(func.count()).select_from(db.rollup_days)).scalar()
    assert marks == 10  # nothing to recompute
    assert kept != counted
    with db.write_tx(engine) as conn:  # the same days computed afresh
        for day in range(today - 10, today):
            rollups.compute_day(conn, day)
        fresh = _all_rollups(conn)
    assert kept == fresh
    assert not any(p == "xinchuang" for _d, o, p, *_x in fresh)
