"""Fleet lists served a page at a time: totals, paging, sorting and filters on hosts, findings and
rule pages (API and web), status filters that follow waiver expiry, and an index the failing-rule
queries can use."""
from __future__ import annotations

import random
import re
import time
import uuid

import pytest

from fleet import Agent
from server_support import OFFICER

PREFIX = "/lists-%s" % uuid.uuid4().hex[:6]  # this module's own org units
N = 7


@pytest.fixture(scope="module")
def hosts(server):
    """Seven hosts: four in PREFIX/a, three in PREFIX/b; ssh-root-login fails on the even ones."""
    agents = []
    with server.client() as c:
        for i in range(N):
            org = PREFIX + ("/a" if i < 4 else "/b")
            a = Agent("lists-%02d-%s" % (i, uuid.uuid4().hex[:4]), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=org)).status_code == 201
            fails = ["mlps.ia.password-max-age"] + (["mlps.ia.ssh-root-login"] if i % 2 == 0 else [])
            doc = a.report(fail_rules=fails, rng=random.Random(i), profile="xinchuang" if i == 6 else "mlps-l3")
            if i % 2:
                for r in doc["results"]:
                    if r["rule_id"] == "mlps.ia.ssh-root-login":
                        r["status"] = "pass"
            assert a.submit(c, doc).status_code == 200
            a.org = org
            agents.append(a)
    return agents


def _all_pages(c, path, params, size):
    rows, offset = [], 0
    while True:
        r = c.get(path, params=dict(params, limit=size, offset=offset))
        assert r.status_code == 200, r.text
        rows.extend(r.json())
        if offset + size >= int(r.headers["x-total-count"]):
            return rows, int(r.headers["x-total-count"])
        offset += size


def test_hosts_api_pages_sorts_and_filters_with_totals(server, hosts):
    with server.login() as c:
        r = c.get("/api/v1/hosts", params={"org": PREFIX, "limit": 3})
        assert r.status_code == 200 and len(r.json()) == 3 and r.headers["x-total-count"] == str(N)
        rows, total = _all_pages(c, "/api/v1/hosts", {"org": PREFIX, "sort": "hostname"}, 3)
        assert total == N and [h["id"] for h in rows] == [a.host_id for a in hosts]  # every host once, in name order
        back = c.get("/api/v1/hosts", params={"org": PREFIX, "sort": "hostname", "desc": "true"}).json()
        assert [h["id"] for h in back] == [a.host_id for a in reversed(hosts)]
        sub = c.get("/api/v1/hosts", params={"org": PREFIX + "/b"})
        assert sub.headers["x-total-count"] == "3" and {h["org_path"] for h in sub.json()} == {PREFIX + "/b"}
        found = c.get("/api/v1/hosts", params={"org": PREFIX, "q": hosts[5].hostname[:8]})
        assert [h["id"] for h in found.json()] == [hosts[5].host_id] and found.headers["x-total-count"] == "1"
        prof = c.get("/api/v1/hosts", params={"org": PREFIX, "profile": "xinchuang"})
        assert [h["id"] for h in prof.json()] == [hosts[6].host_id]
        past = c.get("/api/v1/hosts", params={"org": PREFIX, "offset": 50})
        assert past.json() == [] and past.headers["x-total-count"] == str(N)
        bad = c.get("/api/v1/hosts", params={"sort": "password_hash"})
        assert bad.status_code == 400 and bad.json()["error"] == "bad_sort"


def test_findings_api_multi_select_paging_and_sorting(server, hosts):
    with server.login() as c:
        base = {"org": PREFIX, "rule": "mlps.ia.ssh-root-login"}
        fails = c.get("/api/v1/findings", params=dict(base, status="fail"))
        assert fails.headers["x-total-count"] == "4" and {f["host_id"] for f in fails.json()} == \
            {a.host_id for a in hosts[0::2]}
        both = c.get("/api/v1/findings", params=dict(base, status=["fail", "pass"]))
        assert both.headers["x-total-count"] == str(N) and {f["status"] for f in both.json()} == {"fail", "pass"}
        everything = c.get("/api/v1/findings", params={"org": PREFIX}).json()
        rows, total = _all_pages(c, "/api/v1/findings", {"org": PREFIX}, 17)
        assert total == len(everything) > 17 and rows == everything  # pages join up to the whole, in order
        sev = c.get("/api/v1/findings", params={"org": PREFIX, "severity": ["critical", "high"]}).json()
        assert sev and {f["severity"] for f in sev} == {"critical", "high"}
        ranked = c.get("/api/v1/findings", params={"org": PREFIX, "sort": "severity"}).json()
        rank = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
        assert [rank[f["severity"]] for f in ranked] == sorted(rank[f["severity"]] for f in ranked)
        named = c.get("/api/v1/findings", params={"org": PREFIX, "q": hosts[3].hostname}).json()
        assert named and {f["host_id"] for f in named} == {hosts[3].host_id}
        assert c.get("/api/v1/findings", params={"sort": "nope"}).status_code == 400


def test_status_filter_follows_waiver_expiry(server, hosts):
    """A central waiver turns a failure into "waived" only until it expires (queries.status_filter
    filters on the stored columns, so the answer must still change with the clock)."""
    org = hosts[0].org
    rule = "mlps.ia.password-max-age"
    with server.login(OFFICER) as c:
        until = int(time.time()) + 5
        r = c.post("/api/v1/waivers", json={"rule_id": rule, "scope": "org", "scope_value": org,
                                            "justification": "short", "approver": "CIO", "expires_at": until})
        assert r.status_code == 201, r.text
        with server.login() as boss:  # a requested waiver applies once another user approves it
            assert boss.post("/api/v1/waivers/%d/approve" % r.json()["id"]).status_code == 200

        def hosts_with(status):
            return {f["host_id"] for f in c.get("/api/v1/findings", params={"org": org, "rule": rule,
                                                                            "status": status}).json()}
        in_org = {a.host_id for a in hosts if a.org == org}
        assert hosts_with("waived") == in_org and hosts_with("fail") == set()
        while time.time() <= until + 0.5:
            time.sleep(0.5)
        assert hosts_with("fail") == in_org and hosts_with("waived") == set()


def test_web_lists_page_with_totals_and_keep_filters(server, hosts):
    from test_web import web_login
    c = web_login(server)
    page = c.get("/hosts", params={"org": PREFIX, "sort": "hostname"})
    assert page.status_code == 200 and 'data-total="%d"' % N in page.text
    order = re.findall(r'<a href="/hosts/([0-9a-f-]{36})">', page.text)
    assert order == [a.host_id for a in hosts]
    f = c.get("/findings", params=[("org", PREFIX), ("rule", "mlps.ia.ssh-root-login"), ("status", "fail"),
                                   ("status", "pass")])
    assert f.status_code == 200 and 'data-total="%d"' % N in f.text
    assert f.text.count('name="status" value="fail" checked') == 1 and 'name="status" value="pass" checked' in f.text
    assert "status=fail&amp;status=pass" in f.text  # the export link keeps both
    rule = c.get("/rules/mlps.ia.ssh-root-login", params={"status": "fail"})
    assert rule.status_code == 200
    listed = set(re.findall(r'<a href="/hosts/([0-9a-f-]{36})">', rule.text))
    assert {a.host_id for a in hosts[0::2]} <= listed and not listed & {a.host_id for a in hosts[1::2]}


def test_a_page_past_the_end_of_a_list_says_so_and_links_the_last_page(server, hosts):
    """An old link to page 99 of a list of 7 rows: no "4901-7 of 7", but what happened and the way back."""
    from test_web import web_login
    c = web_login(server)
    for path, params in (("/hosts", {"org": PREFIX, "sort": "hostname"}), ("/findings", {"org": PREFIX})):
        page = c.get(path, params=dict(params, page=99))
        assert page.status_code == 200
        pager = page.text[page.text.index('<nav class="pager"'):]
        pager = pager[:pager.index("</nav>")]
        assert "page 99 is past the end" in pager and "of 99" not in pager and "4901" not in pager, pager
        last = re.search(r'<a rel="last" href="([^"]+)"', pager).group(1).replace("&amp;", "&")
        pages = int(re.search(r"in (\d+) pages", pager).group(1))
        assert last.endswith("page=%d" % pages) and "org=" in last, last  # the filters kept
        back = c.get(last)
        assert back.status_code == 200 and 'rel="last"' not in back.text and "past the end" not in back.text
        assert "page %d of %d" % (pages, pages) in back.text
        if path == "/hosts":
            assert pages == 1 and "sort=hostname" in last
            assert len(set(re.findall(r'<a href="/hosts/([0-9a-f-]{36})">', back.text))) == N


def test_failing_rule_queries_read_the_maintained_counts_not_the_results(db_engine):
    """"Top failing rules" is summed from the maintained rule_failing (store/aggregates.py): the
    plan reads that table only, never the million result rows (nor an index of them)."""
    from scanner.server.store import queries
    from scanner.server.store.scope import Scope
    sql = str(queries.top_failing_query(Scope.everything()).compile(db_engine, compile_kwargs={"literal_binds": True}))
    with db_engine.connect() as conn:
        if db_engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql))
        else:
            plan = " ".join(str(r) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    assert "rule_failing" in plan, plan
    assert not re.search(r"\bresults\b|ix_results", plan), plan


def _latest_audit(c, action):
    entries = c.get("/api/v1/audit", params={"limit": 50}).json()
    return next(e for e in entries if e["action"] == action)


def test_findings_export_streams_every_row_resumes_and_audits_the_count(server, hosts):
    import csv
    import io
    import json as jsonlib
    with server.login() as c:
        total = int(c.get("/api/v1/findings", params={"org": PREFIX, "limit": 1}).headers["x-total-count"])
        r = c.get("/api/v1/export/findings", params={"org": PREFIX, "format": "csv"})
        assert r.status_code == 200
        rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
        assert rows[0][:3] == ["host_id", "hostname", "org_path"] and len(rows) - 1 == total
        entry = _latest_audit(c, "export.findings")
        assert entry["detail"]["rows"] == total and entry["detail"]["complete"] is True
        # resume: two ranges make the whole, in the same order
        first = c.get("/api/v1/export/findings", params={"org": PREFIX, "format": "csv", "limit": 100}).text
        rest = c.get("/api/v1/export/findings", params={"org": PREFIX, "format": "csv", "offset": 100}).text
        joined = first.lstrip("\ufeff").splitlines()[1:] + rest.lstrip("\ufeff").splitlines()[1:]
        assert joined == r.text.lstrip("\ufeff").splitlines()[1:]
        assert _latest_audit(c, "export.findings")["detail"]["offset"] == 100
        zh = c.get("/api/v1/export/findings", params={"org": PREFIX, "format": "csv", "lang": "zh", "limit": 1})
        assert zh.text.lstrip("\ufeff").splitlines()[0].startswith("主机标识 host_id,主机名 hostname,")
        assert c.get("/api/v1/export/findings", params={"lang": "fr"}).status_code == 400
        j = c.get("/api/v1/export/findings", params={"org": PREFIX, "format": "json", "status": ["fail", "waived"]})
        doc = jsonlib.loads(j.text)
        assert len(doc) == int(c.get("/api/v1/findings", params={"org": PREFIX, "status": ["fail", "waived"]})
                               .headers["x-total-count"]) and {d["status"] for d in doc} <= {"fail", "waived"}
        inv = c.get("/api/v1/export/inventory", params={"org": PREFIX, "format": "csv"})
        assert len(inv.text.lstrip("\ufeff").splitlines()) - 1 == _latest_audit(c, "export.inventory")["detail"]["rows"] > 0


def test_stream_reads_in_batches_and_chunks_join_up(db_engine):
    """queries.stream through a server-side cursor in small batches gives every row once, in order;
    the CSV and JSON writers flush many chunks that join into one valid document."""
    import csv
    import io
    import json as jsonlib
    from sqlalchemy import insert, select
    from scanner.server.store import db, queries
    from scanner.server.web import export
    with db.write_tx(db_engine) as conn:
        conn.execute(insert(db.audit_log), [{"at": i, "actor": "a", "action": "x", "target": "=t%d" % i,
                                             "detail": '{"n":%d}' % i} for i in range(1234)])
    q = select(db.audit_log.c.at, db.audit_log.c.target, db.audit_log.c.detail).order_by(db.audit_log.c.at)
    rows = list(queries.stream(db_engine, q, batch=7))
    assert [r[0] for r in rows] == list(range(1234))
    counter = {}
    text = "".join(export.csv_chunks(iter(rows), ["at", "target", "actual"], ["at", "target", "actual"],
                                     counter=counter))
    parsed = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert counter["rows"] == 1233 + 1 and len(parsed) == 1235 and parsed[5] == ["4", "'=t4", '{"n":4}']
    doc = jsonlib.loads("".join(export.json_chunks(iter(rows), ["at", "target", "actual"], counter)))
    assert len(doc) == 1234 and doc[1233] == {"at": 1233, "target": "=t1233", "actual": {"n": 1233}}


def test_trend_is_the_fleet_state_as_of_each_day_and_late_reports_redo_it(server):
    """A day's point is each host's newest report by the end of that day (not only the reports
    received that day); past days are rolled up once; a late report recomputes its day."""
    org = "/rollup-%s" % uuid.uuid4().hex[:6]
    today = int(time.time()) // 86400
    a = Agent("rollup-%s" % uuid.uuid4().hex[:4], machine_id=uuid.uuid4().hex)
    with server.client() as c:
        assert a.enroll(c, server.token(org=org)).status_code == 201

        def send(days_ago, score):
            doc = a.report(profile="mlps-l3")
            doc["summary"]["score"] = score
            ts = (today - days_ago) * 86400 + 3600
            assert a.submit(c, doc, timestamp=ts).status_code == 200
        send(4, 50.0)
        send(2, 70.0)

    def points():
        with server.login() as c:
            data = c.get("/api/v1/overview", params={"org": org}).json()
        return {p["day"] // 86400: p for p in data["trend"]}
    p = points()
    assert p[today - 4]["score"] == 50.0 and p[today - 3]["score"] == 50.0  # day -3: no report, state carried
    assert p[today - 2]["score"] == 70.0 and p[today - 1]["score"] == 70.0 and p[today]["score"] == 70.0
    assert p[today - 3]["reports"] == 1 and (today - 5) not in p
    from sqlalchemy import select
    from scanner.server.store import db
    eng = server.engine
    with eng.connect() as conn:
        marks = dict(conn.execute(select(db.rollup_days.c.day, db.rollup_days.c.computed_at)).all())
    assert today - 1 in marks and today not in marks
    time.sleep(1.1)
    assert points() == p  # nothing recomputed or changed
    with eng.connect() as conn:
        assert dict(conn.execute(select(db.rollup_days.c.day, db.rollup_days.c.computed_at)).all()) == marks
    with server.client() as c:  # a report from day -3 arrives late
        doc = a.report(profile="mlps-l3")
        doc["summary"]["score"] = 10.0
        assert a.submit(c, doc, timestamp=(today - 3) * 86400 + 7200).status_code == 200
    p2 = points()
    assert p2[today - 4]["score"] == 50.0 and p2[today - 3]["score"] == 10.0 and p2[today - 2]["score"] == 70.0


def test_a_departments_hosts_are_found_by_the_org_prefix_index(db_engine):
    """A department is ``org_path = X OR org_path LIKE 'X/%'`` (store/scope.py). On PostgreSQL a btree
    serves the LIKE prefix only when it compares by code point, which the database's collation need not
    do; ix_hosts_org_prefix (text_pattern_ops, migration 0033) does whatever the collation. With seq
    scans off, a plan that still cannot use an index for the prefix would read the table."""
    from sqlalchemy import select
    from scanner.server.store import db
    from scanner.server.store.scope import Scope
    h = db.hosts
    q = select(h.c.id).where(Scope(["/gov/health"]).where(h.c.org_path))
    sql = str(q.compile(db_engine, compile_kwargs={"literal_binds": True}))
    with db_engine.connect() as conn:
        if db_engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql))
            # both arms of the OR from the index: the prefix as a range of it (~>=~ / ~<~: pattern order)
            assert plan.count("ix_hosts_org_prefix") >= 1 and "~>=~" in plan and "Seq Scan" not in plan, plan
        else:
            plan = " ".join(str(r) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
            assert "ix_hosts_org" in plan, plan  # equality and the fleet's order index (SQLite's LIKE scans it)
