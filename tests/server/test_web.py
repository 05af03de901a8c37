"""The web UI over real HTTPS: login with CSRF, pages for a fed fleet, roles, escaping, i18n."""
from __future__ import annotations

import re
import time
import uuid

import pytest

from server_support import ADMIN, AUDITOR, OFFICER
from fleet import Agent


PREFIX = "/web-%s" % uuid.uuid4().hex[:6]  # this module's own org units: other tests' hosts stay out


def web_login(server, who=ADMIN, lang="en"):
    c = server.client(follow_redirects=False)
    form = c.get("/login", params={"lang": lang})
    assert form.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    resp = c.post("/login", data={"username": who[0], "password": who[1], "csrf_token": csrf, "next": "/"})
    assert resp.status_code == 303, resp.text
    assert "httponly" in resp.headers["set-cookie"].lower() and "secure" in resp.headers["set-cookie"].lower()
    return c


def csrf_of(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


@pytest.fixture(scope="module")
def fleet(server):
    """Three hosts in two org units, two scans each."""
    agents = []
    with server.client() as c:
        for i, org in enumerate([PREFIX + "/finance", PREFIX + "/finance", PREFIX + "/health"]):
            a = Agent("web-%d-%s" % (i, uuid.uuid4().hex[:6]), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=org)).status_code == 201
            old = a.report(fail_rules=["mlps.ia.ssh-root-login"], domestic_bias=0.0)
            for r in old["results"]:
                if r["rule_id"] == "mlps.au.auditd-enabled":
                    r["status"] = "pass"
            assert a.submit(c, old, timestamp=time.time() - 2 * 86400).status_code == 200
            new = a.report(fail_rules=["mlps.ia.ssh-root-login", "mlps.au.auditd-enabled"], domestic_bias=1.0)
            assert a.submit(c, new).status_code == 200
            a.reports = [old, new]
            agents.append(a)
    return agents


def test_login_page_and_redirects(server):
    with server.client(follow_redirects=False) as c:
        r = c.get("/")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        form = c.get("/login")
        assert "Content-Security-Policy" in form.headers and "script-src" not in form.text
        # a login without the form's CSRF token is refused
        r = c.post("/login", data={"username": ADMIN[0], "password": ADMIN[1], "csrf_token": "forged"})
        assert r.status_code == 403
        csrf = csrf_of(c.get("/login"))
        r = c.post("/login", data={"username": ADMIN[0], "password": "wrong-password", "csrf_token": csrf})
        assert r.status_code == 401 and "login-error" in r.text
        assert "xcscan_session" not in r.headers.get("set-cookie", "")


def test_overview_host_drift_rule_pages(server, fleet):
    c = web_login(server)
    page = c.get("/", params={"org": PREFIX})
    assert page.status_code == 200
    assert "<svg" in page.text and "Localization by category" in page.text
    assert re.search(r'id="host-count">3<', page.text)
    top = page.text.split('id="top-failing"')[1]
    assert re.search(r'mlps\.ia\.ssh-root-login</a>.*?<td class="num">3</td>', top, re.S)  # failing on all 3 hosts
    host = fleet[0]
    hp = c.get("/hosts/%s" % host.host_id)
    assert hp.status_code == 200 and host.hostname in hp.text
    assert hp.text.count('name="a"') == 2
    # results grouped by status, failures first and open, each with the agent's explanation
    groups = re.findall(r'<details class="result-group" id="results-(\w+)"( open)?>', hp.text)
    assert groups[0] == ("fail", " open") and ("pass", "") in groups
    order = [g for g, _open in groups]
    assert order == sorted(order, key=["fail", "error", "waived", "manual", "pass", "not_applicable"].index)
    fail_section = hp.text.split('id="results-fail"')[1].split("</details>\n")[0]
    assert 'data-rule="mlps.ia.ssh-root-login"' in fail_section
    assert "mlps.ia.ssh-root-login: actual 99999, expected &lt;= 90" in fail_section
    d = c.get("/hosts/%s/drift" % host.host_id, params={"a": host.reports[0]["report_id"], "b": host.reports[1]["report_id"]})
    assert d.status_code == 200
    assert 'data-rule="mlps.au.auditd-enabled"' in d.text
    assert 'data-rule="mlps.ia.ssh-root-login"' not in d.text  # failed in both scans: no drift
    r = c.get("/rules/mlps.ia.ssh-root-login")
    assert r.status_code == 200 and all(a.hostname in r.text for a in fleet)
    assert "mlps.ia.ssh-root-login: actual 99999, expected &lt;= 90" in r.text
    assert "mlps.ia.ssh-root-login：实际 99999" in c.get("/rules/mlps.ia.ssh-root-login", params={"lang": "zh"}).text
    c.get("/", params={"lang": "en"})
    orgs = c.get("/orgs")
    assert 'data-org="%s/finance"' % PREFIX in orgs.text and 'data-org="%s/health"' % PREFIX in orgs.text
    for path in ("/hosts", "/findings?status=fail", "/waivers", "/audit"):
        assert c.get(path).status_code == 200, path
    zh = c.get("/", params={"lang": "zh"})
    assert "国产化率" in zh.text and "按类别的国产化率" in zh.text
    c.close()


def test_web_waiver_needs_csrf_and_role(server, fleet):
    c = web_login(server, OFFICER)
    page = c.get("/waivers")
    form = {"rule_id": "mlps.au.auditd-enabled", "scope": "org", "scope_value": PREFIX + "/health",
            "justification": "legacy audit system until 2027", "approver": "CISO", "expires": "2099-01-01"}
    bad = c.post("/waivers", data=dict(form, csrf_token="forged"))
    assert bad.status_code == 403
    assert 'data-state="active"' not in c.get("/waivers").text or True
    ok = c.post("/waivers", data=dict(form, expires=time.strftime("%Y-%m-%d", time.gmtime(time.time() + 30 * 86400)),
                                      csrf_token=csrf_of(page)))
    assert ok.status_code == 303, ok.text
    health = fleet[2]
    hp = c.get("/hosts/%s" % health.host_id)
    assert re.search(r'data-rule="mlps.au.auditd-enabled" data-status="fail"', hp.text)  # requested only
    wid = re.findall(r'<tr data-state="requested" data-id="(\d+)">', c.get("/waivers").text)[0]
    boss = web_login(server, ADMIN)
    assert boss.post("/waivers/%s/approve" % wid, data={"csrf_token": csrf_of(boss.get("/waivers"))}).status_code == 303
    boss.close()
    hp = c.get("/hosts/%s" % health.host_id)
    assert re.search(r'data-rule="mlps.au.auditd-enabled" data-status="waived"', hp.text)
    fin = c.get("/hosts/%s" % fleet[0].host_id)
    assert re.search(r'data-rule="mlps.au.auditd-enabled" data-status="fail"', fin.text)
    c.close()
    # an auditor sees no form and cannot post one even with a valid CSRF token
    a = web_login(server, AUDITOR)
    page = a.get("/waivers")
    assert 'id="waiver-form"' not in page.text
    r = a.post("/waivers", data=dict(form, csrf_token=re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)))
    assert r.status_code == 403
    a.close()


def test_logout_needs_csrf_and_ends_session(server):
    c = web_login(server)
    assert c.post("/logout", data={"csrf_token": "nope"}).status_code == 403
    assert c.get("/").status_code == 200
    assert c.post("/logout", data={"csrf_token": csrf_of(c.get("/"))}).status_code == 303
    c.cookies.clear()
    assert c.get("/").status_code == 303
    c.close()


def test_markup_in_fleet_data_is_escaped(server):
    evil = "<img src=x onerror=alert(1)>"
    a = Agent(evil, machine_id=None)
    with server.client() as c:
        assert a.enroll(c, server.token(org="/gov/<b>x")).status_code == 201
        doc = a.report(fail_rules=["mlps.ia.faillock"])
        doc["inventory"]["components"][0]["name"] = {"zh": evil, "en": evil}
        doc["inventory"]["components"][0]["evidence"] = [{"kind": evil, "value": evil, "source": evil}]
        doc["results"][0]["actual"] = evil
        doc["results"][0]["reason"] = {"zh": evil, "en": evil}
        assert a.submit(c, doc).status_code == 200
    w = web_login(server)
    for path in ("/hosts/%s" % a.host_id, "/hosts", "/", "/orgs", "/rules/%s" % doc["results"][0]["rule_id"], "/audit"):
        page = w.get(path)
        assert page.status_code == 200, path
        assert "<img src=x" not in page.text and "<b>x" not in page.text, path
    assert "&lt;img src=x onerror=alert(1)&gt;" in w.get("/hosts/%s" % a.host_id).text
    w.close()


def test_every_template_key_exists_in_both_languages():
    import os
    from scanner.i18n import catalogue
    root = os.path.join(os.path.dirname(__import__("scanner.server.web", fromlist=["x"]).__file__), "templates")
    keys = set()
    for name in os.listdir(root):
        keys |= set(re.findall(r"_\('([a-z_.]+[a-z_])'", open(os.path.join(root, name), encoding="utf-8").read()))
    dyn = {"status.": ["pass", "fail", "error", "not_applicable", "manual", "waived", "none"],
           "sev.": ["info", "low", "medium", "high", "critical", "none"], "role.": ["admin", "officer", "auditor"],
           "origin.": ["domestic", "foreign", "unknown"], "scope.": ["host", "org", "all"],
           "wstate.": ["active", "expired", "revoked"], "change.": ["added", "removed", "changed"]}
    for prefix, values in dyn.items():
        keys |= {prefix + v for v in values}
    for lang in ("zh", "en"):
        missing = sorted(k for k in keys if "server." + k not in catalogue(lang))
        assert not missing, (lang, missing)


def test_trend_chart_always_labels_the_newest_day_inside_the_chart():
    from scanner.server.web.svg import line_chart
    for n in (2, 7, 13, 30):
        labels = ["11-%02d" % (i + 1) for i in range(n)]
        svg = str(line_chart([("score", "score", [50.0] * n)], labels, width=560))
        ticks = re.findall(r'<text class="axis" x="([\d.]+)" y="\d+" text-anchor="(\w+)">([^<]+)</text>', svg)
        assert ticks[-1][2] == labels[-1] and ticks[-1][1] == "end" and float(ticks[-1][0]) <= 560, n
        xs = [float(x) for x, _a, _l in ticks]
        assert all(b - a > 40 for a, b in zip(xs, xs[1:])), (n, xs)  # no two labels on top of each other


def test_host_inventory_names_substitutes_from_the_catalog(server):
    a = Agent("subs-%s" % uuid.uuid4().hex[:6], machine_id=uuid.uuid4().hex)
    with server.client() as c:
        assert a.enroll(c, server.token(org="/subs-test")).status_code == 201
        assert a.submit(c, a.report(domestic_bias=0.0)).status_code == 200  # every component foreign
    w = web_login(server)
    for lang, expected in (("en", "Kunpeng, Hygon"), ("zh", "鲲鹏、海光")):
        page = w.get("/hosts/%s" % a.host_id, params={"lang": lang}).text
        inv = page.split('id="inventory"')[1].split("</table>")[0]
        subs = re.findall(r'<td class="subs">([^<]*)</td>', inv)
        assert expected in subs, subs
        assert not any("kunpeng" in x for x in subs)
    w.get("/", params={"lang": "en"})
    w.close()


def test_trend_scores_only_the_main_profile(server):
    """Scores of different profiles are not averaged: the trend follows the profile most hosts use."""
    org = "/trend-%s" % uuid.uuid4().hex[:6]
    day = (int(time.time()) // 86400) * 86400 + 3600  # early today (UTC)
    with server.client() as c:
        for i, (profile, fail) in enumerate([("mlps-l3", 0), ("mlps-l3", 0), ("xinchuang", 1)]):
            a = Agent("trend-%d-%s" % (i, uuid.uuid4().hex[:4]), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=org)).status_code == 201
            doc = a.report(profile=profile)
            doc["summary"]["score"] = 0.0 if fail else 90.0
            assert a.submit(c, doc, timestamp=min(day, time.time())).status_code == 200
    with server.login() as c:
        data = c.get("/api/v1/overview", params={"org": org}).json()
    assert data["trend_profile"] == "mlps-l3"
    today = [p for p in data["trend"] if p["day"] == (day // 86400) * 86400]
    assert today and today[0]["score"] == 90.0 and today[0]["reports"] == 3  # not (90 + 90 + 0) / 3


def test_admin_page_tokens_and_users(server):
    import httpx
    w = web_login(server)
    page = w.get("/admin")
    assert page.status_code == 200 and 'id="token-form"' in page.text and 'id="nav-admin"' in page.text
    csrf = csrf_of(page)
    # a token without the CSRF token is refused; with it, the token is shown once and enrolls a host
    assert w.post("/admin/tokens", data={"org": "/adm/x", "uses": "2", "expires": "1d"}).status_code == 403
    r = w.post("/admin/tokens", data={"csrf_token": csrf, "org": "/adm/web", "uses": "2", "expires": "1d",
                                      "note": "<b>ticket</b>"})
    assert r.status_code == 201
    token = re.search(r'<pre id="new-token-value">(xct_[^<]+)</pre>', r.text).group(1)
    assert "&lt;b&gt;ticket&lt;/b&gt;" in r.text and "--token %s" % token in r.text
    assert token not in w.get("/admin").text  # never shown again
    a = Agent("adm-%s" % uuid.uuid4().hex[:6], machine_id=uuid.uuid4().hex)
    with server.client() as c:
        assert a.enroll(c, token).status_code == 201 and a.org == "/adm/web"
    bad = w.post("/admin/tokens", data={"csrf_token": csrf, "org": "/gov/../x", "uses": "1", "expires": "1d"})
    assert bad.status_code == 400 and 'id="admin-error"' in bad.text
    bad = w.post("/admin/tokens", data={"csrf_token": csrf, "org": "/adm/web", "uses": "1", "expires": "soon"})
    assert bad.status_code == 400

    # users: add, log in, lock by failures, unlock from the page
    name = "webuser-%s" % uuid.uuid4().hex[:5]
    r = w.post("/admin/users", data={"csrf_token": csrf, "username": name, "role": "auditor", "password": "short"})
    assert r.status_code == 400 and 'id="admin-error"' in r.text
    r = w.post("/admin/users", data={"csrf_token": csrf, "username": name, "role": "auditor",
                                     "password": "Web-user-pass-42"})
    assert r.status_code == 303
    assert w.post("/admin/users", data={"csrf_token": csrf, "username": name, "role": "auditor",
                                        "password": "Web-user-pass-42"}).status_code == 409
    with server.client() as c:
        for _ in range(5):
            c.post("/api/v1/session", json={"username": name, "password": "nope-nope"})
        assert c.post("/api/v1/session", json={"username": name, "password": "Web-user-pass-42"}).status_code == 429
    row = re.search(r'<tr data-user="%s">.*?</tr>' % name, w.get("/admin").text, re.S).group(0)
    assert "/unlock" in row
    assert w.post("/admin/users/%s/unlock" % name, data={"csrf_token": csrf}).status_code == 303
    with server.client() as c:
        assert c.post("/api/v1/session", json={"username": name, "password": "Web-user-pass-42"}).status_code == 200
    w.close()

    # an officer has no administration page
    off = web_login(server, OFFICER)
    assert off.get("/admin").status_code == 403 and 'id="nav-admin"' not in off.get("/").text
    off.close()
    assert httpx  # the web client used above


def test_working_paper_of_a_stored_report_is_the_same_report(server, fleet):
    from scanner.render import render
    c = web_login(server, lang="zh")
    host = fleet[0]
    report_id = host.reports[1]["report_id"]
    hp = c.get("/hosts/%s" % host.host_id)
    assert 'href="/reports/%s/paper?edition=summary"' % report_id in hp.text
    doc = c.get("/api/v1/reports/%s" % report_id)
    assert doc.status_code == 200
    for edition, fmt in (("full", "html"), ("summary", "summary")):
        page = c.get("/reports/%s/paper" % report_id, params={"edition": edition})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.text == render(doc.json(), fmt, "zh")          # the agent's renderer, byte for byte
        assert 'id="basic"' in page.text and 'id="risks"' in page.text and "问题分析与风险评价" in page.text
    assert c.get("/reports/%s/paper" % report_id, params={"edition": "poster"}).status_code == 400
    assert c.get("/reports/%s/paper" % uuid.uuid4()).status_code == 404
    audit = c.get("/audit")
    assert "export.report" in audit.text
    c.close()


def test_control_point_summary_rolled_up_over_an_org_subtree(server, tmp_path):
    """Two real scans (default RHEL-like and Debian-like fixture roots) in one org unit: the roll-up
    adds up each host's per-控制点 verdicts exactly as their own reports judge them; a third host
    whose stored report is damaged is named and left out, not a failed page."""
    import json as _json
    from baseline_support import materialise
    from scanner.pipeline import scan_report
    from scanner.render import assessment
    from scanner.server.store import db
    org = PREFIX + "/papers"
    expected = {}
    units = dict((v, 0) for v in assessment.VERDICTS)
    with server.client() as c:
        for name in ("rhel-default", "debian-default", "damaged"):
            a = Agent("paper-%s-%s" % (name, uuid.uuid4().hex[:6]), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=org)).status_code == 201
            doc = scan_report(root=materialise("rhel-default" if name == "damaged" else name, tmp_path / name),
                              profile="mlps-l3")
            doc["host"]["hostname"], doc["host"]["machine_id"] = a.hostname, a.machine_id
            assert a.submit(c, doc).status_code == 200, name
            if name == "damaged":
                damaged = a
            else:
                judged = assessment.assess(_json.loads(_json.dumps(doc)))
                for item in judged["items"]:
                    units[item["verdict"]] += 1
                for area, counts in judged["by_control"]:
                    row = expected.setdefault(area["en"], dict((k, 0) for k in counts))
                    for k, v in counts.items():
                        row[k] += v
    import gzip
    with db.write_tx(server.engine) as conn:     # a stored document that no longer parses
        conn.execute(db.reports.update().where(db.reports.c.host_id == damaged.host_id)
                     .values(body_gz=gzip.compress(b"{not json"), evaluated_gz=None))
    c = web_login(server, lang="en")
    page = c.get("/orgs/controls", params={"org": org})
    assert page.status_code == 200, page.text[:300]
    assert re.search(r'id="controls-hosts">The latest reports of 2 hosts', page.text)
    assert damaged.hostname in page.text.split('id="controls-bad"')[1].split("</p>")[0]
    rows = re.findall(r'<tr class="control" data-control="([^"]+)">(.*?)</tr>', page.text, re.S)
    assert [r[0] for r in rows] == list(expected)
    for control, cells in rows:
        got = dict(re.findall(r'data-k="(\w+)">(\d+)<', cells))
        for verdict in ("nonconform", "partial", "pending", "conform", "not_applicable", "not_checked"):
            assert int(got[verdict]) == expected[control][verdict], (control, verdict)
    assert "built-in method" not in page.text     # labels.items would be the dict method in Jinja
    # the working paper's frame for the subtree: the verdict rule, the score with its definition and
    # the subtree's own figures, and the scope (every other 安全类 outside)
    counted = units["conform"] + units["partial"] + units["nonconform"] + units["pending"]
    score = round(100.0 * (units["conform"] + 0.5 * units["partial"]) / counted, 1)
    assert re.search(r'id="controls-score">%s</b>' % score, page.text)
    assert '<p class="note" id="controls-rule">How a test unit is judged: ' in page.text
    definition = re.search(r'<p class="note" id="controls-score-definition">(.*?)</p>', page.text, re.S).group(1)
    assert "%d test units count here; %d awaiting a manual check" % (counted, units["pending"]) in definition, definition
    assert "%d not applicable test units are left out" % units["not_applicable"] in definition
    scope = re.search(r'<p class="note" id="controls-scope">(.*?)</p>', page.text, re.S).group(1)
    assert "secure physical environment" in scope and "outside it, not counted as covered" in scope
    assert "/orgs/controls?org=" in c.get("/orgs").text
    zh = c.get("/orgs/controls", params={"org": org, "lang": "zh"})
    assert "身份鉴别" in zh.text and "部分符合" in zh.text
    assert "安全物理环境、安全通信网络、安全区域边界、安全管理中心" in zh.text and "单项判定：" in zh.text
    c.close()
