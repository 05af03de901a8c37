"""信创 progress (issue #15 item 7) and the change feed (item 5) on a real server over TLS (SQLite and
PostgreSQL). Two departments; each host scans twice a week apart (signed timestamps 9 and 2 days
ago); between the scans one finance host replaces its foreign OS and database by domestic ones,
fails one rule anew, errs on another and fixes a third; another gains a foreign web server; a third
stops reporting. The change feed of the finance officer lists exactly those changes (API, CSV and
page), the progress page, the remaining-foreign-components export and the substitution count show
exactly the replaced OS and database against the targets of both departments; the health
department's changes never appear."""
from __future__ import annotations

import csv
import io
import re
import time
import uuid

import pytest

from browser_support import browser_page  # noqa: F401
from fleet import Agent, component

PREFIX = "/prog-%s" % uuid.uuid4().hex[:6]
FIN, HEALTH = PREFIX + "/finance", PREFIX + "/health"
PASSWORD = "Progress-user-pw-42"
DAY = 86400
RULE_A, RULE_B, RULE_C = "mlps.ia.password-max-age", "mlps.ac.ssh-root-login", "mlps.au.auditd-enabled"

CENTOS = ("os", "centos", "CentOS", "CentOS", "foreign", "7.9")
KYLIN = ("os", "kylin", "银河麒麟", "Kylin", "domestic", "V10")
ORACLE = ("database", "oracle-db", "Oracle 数据库", "Oracle Database", "foreign", "19c")
DM = ("database", "dm", "达梦数据库", "DM", "domestic", "8.1")
NGINX = ("web-server", "nginx", "Nginx", "Nginx", "foreign", "1.24")


def _doc(agent, comps, statuses):
    doc = agent.report(profile="mlps-l3")
    doc["inventory"]["components"] = [component(*c) for c in comps]
    doc["results"] = [{"rule_id": rid, "title": {"zh": "检查 " + rid, "en": "Check " + rid}, "category": "baseline",
                       "severity": sev, "status": st, "refs": {}, "expected": None, "actual": None, "evidence": None,
                       "items": [], "remediation": None, "waiver": None} for rid, (sev, st) in sorted(statuses.items())]
    counts = {s: sum(1 for r in doc["results"] if r["status"] == s)
              for s in ("pass", "fail", "error", "not_applicable", "manual", "waived")}
    doc["summary"] = {"profile": "mlps-l3", "counts": counts, "score": 50.0, "score_without_waivers": 50.0}
    return doc


SCANS = {  # host: (org, first scan, second scan or None)
    "fin-1": (FIN, ([CENTOS, ORACLE], {RULE_A: ("medium", "pass"), RULE_B: ("high", "fail"), RULE_C: ("low", "pass")}),
              ([KYLIN, DM], {RULE_A: ("medium", "fail"), RULE_B: ("high", "pass"), RULE_C: ("low", "error")})),
    "fin-2": (FIN + "/tax", ([CENTOS], {RULE_A: ("medium", "fail")}), ([CENTOS, NGINX], {RULE_A: ("medium", "fail")})),
    "fin-3": (FIN, ([CENTOS], {RULE_A: ("medium", "pass")}), None),
    "hea-1": (HEALTH, ([CENTOS, ORACLE], {RULE_A: ("medium", "pass")}), ([KYLIN, ORACLE], {RULE_A: ("medium", "fail")})),
}


def _session(server, name):
    with server.client() as c:
        token = c.post("/api/v1/session", json={"username": name, "password": PASSWORD}).json()["token"]
    return server.client(headers={"Authorization": "Bearer " + token})


@pytest.fixture(scope="module")
def site(server):
    tag = uuid.uuid4().hex[:6]
    agents = {}
    with server.client() as c:
        for name, (org, first, _second) in sorted(SCANS.items()):
            a = Agent("%s-%s" % (name, tag), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=org)).status_code == 201
            assert a.submit(c, _doc(a, *first), timestamp=time.time() - 9 * DAY).status_code == 200
            agents[name] = a
    admin = server.login()
    users = {}
    for key, org in (("fin", FIN), ("hea", HEALTH)):
        users[key] = "pg-%s-%s" % (key, tag)
        r = admin.post("/api/v1/users", json={"username": users[key], "password": PASSWORD, "role": "officer",
                                             "orgs": [org]})
        assert r.status_code == 201, r.text
    admin.close()
    fin, hea = _session(server, users["fin"]), _session(server, users["hea"])
    # targets of both departments, set before the change
    for c, org, cat, rate in ((fin, FIN, "os", 1.0), (fin, FIN, "database", 1.0), (hea, HEALTH, "os", 0.5)):
        r = c.post("/api/v1/localization/targets", json={"org": org, "category": cat, "target": rate,
                                                        "deadline": "2027-06-30"})
        assert r.status_code == 201, r.text
        assert r.json()["baseline_rate"] == 0.0
    assert fin.post("/api/v1/localization/targets", json={"org": HEALTH, "category": "os", "target": 1.0,
                                                           "deadline": "2027-06-30"}).status_code == 403
    before = fin.get("/api/v1/localization").json()
    assert before["substitutions"]["count"] == 0
    # the fleet changes: second scans two days ago (fin-3 stays silent)
    with server.client() as c:
        for name, (org, _first, second) in sorted(SCANS.items()):
            if second:
                assert agents[name].submit(c, _doc(agents[name], *second), timestamp=time.time() - 2 * DAY).status_code == 200
    yield agents, users, fin, hea
    fin.close()
    hea.close()


def _key(rows, *fields):
    return sorted(tuple(r[f] for f in fields) for r in rows)


def test_change_feed_lists_exactly_the_seeded_changes(site):
    agents, _users, fin, hea = site
    got = fin.get("/api/v1/changes").json()  # default: the last 7 days
    assert got["to"] - got["from"] == 7 * DAY
    f1, f2, f3 = (agents[n].hostname for n in ("fin-1", "fin-2", "fin-3"))
    assert _key(got["new"], "hostname", "rule_id", "after", "severity") == sorted(
        [(f1, RULE_A, "fail", "medium"), (f1, RULE_C, "error", "low")])
    assert got["new_by_severity"] == {"fail": {"medium": 1}, "error": {"low": 1}}
    assert _key(got["fixed"], "hostname", "rule_id", "before", "after") == [(f1, RULE_B, "fail", "pass")]
    assert _key(got["substitutions"], "hostname", "category", "from_product", "to_product") == sorted(
        [(f1, "os", "centos", "kylin"), (f1, "database", "oracle-db", "dm")])
    assert _key(got["added"], "hostname", "product_id") == sorted([(f1, "kylin"), (f1, "dm"), (f2, "nginx")])
    assert _key(got["removed"], "hostname", "product_id") == sorted([(f1, "centos"), (f1, "oracle-db")])
    assert [h["hostname"] for h in got["stopped"]] == [f3]
    assert got["joined"] == []
    text = repr(got)
    assert agents["hea-1"].hostname not in text and HEALTH not in text
    # a window that ends before the change shows none of it
    early = fin.get("/api/v1/changes", params={"from": time.strftime("%Y-%m-%d", time.gmtime(time.time() - 20 * DAY)),
                                               "to": time.strftime("%Y-%m-%d", time.gmtime(time.time() - 5 * DAY))}).json()
    assert early["new"] == [] and early["substitutions"] == [] and early["joined"] and early["stopped"] == []
    # another department asked by name: 404
    assert fin.get("/api/v1/changes", params={"org": HEALTH}).status_code == 404
    assert [s["hostname"] for s in hea.get("/api/v1/changes").json()["substitutions"]] == [agents["hea-1"].hostname]
    # the CSV: the same rows, zh headers
    r = fin.get("/api/v1/export/changes", params={"format": "csv", "lang": "zh"})
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["变化 change", "主机名 hostname", "组织单位 org_path"]
    kinds = sorted(x[0] for x in rows[1:])
    assert kinds == sorted(["new_fail", "new_error", "fixed", "component_added", "component_added", "component_added",
                            "component_removed", "component_removed", "substitution", "substitution",
                            "stopped_reporting"])


def test_change_feed_page(site):
    agents, _users, fin, _hea = site
    page = fin.get("/changes", params={"lang": "zh"}).text
    assert re.search(r'id="count-substitutions"><div class="sub">[^<]+</div><div class="big">2<', page)
    assert len(re.findall(r'class="change-new"', page)) == 2
    assert 'data-from="centos" data-to="kylin"' in page and 'data-from="oracle-db" data-to="dm"' in page
    assert 'class="change-stopped" data-host="%s"' % agents["fin-3"].host_id in page
    assert agents["hea-1"].hostname not in page


def test_progress_targets_and_remaining_foreign_components(site):
    agents, _users, fin, hea = site
    data = fin.get("/api/v1/localization").json()
    units = {u["org"]: u["categories"] for u in data["by_org"]}
    assert set(units) == {FIN, FIN + "/tax"}  # any depth, nothing of the other department
    assert units[FIN]["os"] == {"domestic": 1, "foreign": 2, "unknown": 0, "rate": round(1 / 3.0, 4)}
    assert units[FIN]["database"] == {"domestic": 1, "foreign": 0, "unknown": 0, "rate": 1.0}
    assert units[FIN + "/tax"]["web-server"]["rate"] == 0.0
    goals = {(g["org_path"], g["category"]): g for g in data["targets"]}
    assert set(goals) == {(FIN, "os"), (FIN, "database")}
    os_goal = goals[(FIN, "os")]
    assert (os_goal["rate"], os_goal["to_replace"], os_goal["state"]) == (round(1 / 3.0, 4), 2, "behind")
    assert goals[(FIN, "database")]["state"] == "met"
    assert data["substitutions"]["count"] == 2 and data["substitutions"]["by_category"] == {"os": 1, "database": 1}
    h = hea.get("/api/v1/localization").json()
    assert [(g["org_path"], g["category"], g["state"], g["rate"]) for g in h["targets"]] == [(HEALTH, "os", "met", 1.0)]
    assert h["substitutions"]["count"] == 1
    # the remaining foreign components: exactly fin-2's CentOS and Nginx and silent fin-3's CentOS
    comps = fin.get("/api/v1/localization/components").json()
    f2, f3 = agents["fin-2"].hostname, agents["fin-3"].hostname
    assert _key(comps, "hostname", "product_id") == sorted([(f2, "centos"), (f2, "nginx"), (f3, "centos")])
    centos = [x for x in comps if x["product_id"] == "centos"][0]
    assert "kylin" in centos["substitutes"] and "银河麒麟" in centos["substitute_names_zh"]
    for lang, head in (("zh", "主机名 hostname"), ("en", "Host name hostname")):
        r = fin.get("/api/v1/export/components", params={"format": "csv", "lang": lang, "category": "os"})
        rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
        assert rows[0][0] == head
        assert sorted((x[0], x[3]) for x in rows[1:]) == sorted([(f2, "centos"), (f3, "centos")])
        subs_col = [i for i, name in enumerate(rows[0]) if name.endswith("substitute_names_" + lang)][0]
        assert ("银河麒麟" if lang == "zh" else "Kylin") in rows[1][subs_col]


@pytest.mark.browser
def test_progress_in_chromium(server, site, browser_page):
    """The finance officer: the overview's OS bar leads to the remaining foreign OS components; the
    progress page shows the targets and the two substitutions; a target set in the form appears."""
    agents, users, _fin, _hea = site
    page = browser_page
    page.goto(server.base_url + "/login?lang=zh")
    page.fill("input[name=username]", users["fin"])
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#by-category")
    page.click('#by-category a[href*="category=os"]')
    page.wait_for_selector("#components")
    products = sorted(page.locator("#components tr.component").evaluate_all("els => els.map(e => e.dataset.product)"))
    assert products == ["centos", "centos"]
    assert "银河麒麟" in page.inner_text("#components")
    page.click("#nav-localization")
    page.wait_for_selector("#targets")
    assert page.get_attribute("#substitutions", "data-count") == "2"
    state = page.get_attribute('tr.target[data-org="%s"][data-category="os"]' % FIN, "data-state")
    assert state == "behind"
    page.fill('#target-form input[name=org]', FIN + "/tax")
    page.select_option('#target-form select[name=category]', "web-server")
    page.fill('#target-form input[name=target]', "80")
    page.fill('#target-form input[name=deadline]', "2027-12-31")
    page.click('#target-form button[type=submit]')
    page.wait_for_selector('tr.target[data-org="%s/tax"][data-category="web-server"]' % FIN)
    row = page.inner_text('tr.target[data-org="%s/tax"][data-category="web-server"]' % FIN)
    assert "80.0%" in row and "2027-12-31" in row


def test_trend_per_category_from_the_daily_roll_ups(site):
    """The 信创 page's trend per category: the day of the first scans (all finance OSes foreign, the one
    database foreign) and now (fin-1's Kylin and DM: OS 1 of 3 domestic, database 1 of 1), for the
    finance officer only (the health host's Kylin is in the health department's trend)."""
    agents, users, fin, hea = site
    first_day = (int(time.time()) - 9 * DAY) // DAY * DAY
    got = fin.get("/api/v1/localization").json()
    assert got["trend_days"] == 30
    os_, dbs = got["trend"]["os"], got["trend"]["database"]
    assert (os_[0]["day"], os_[0]["domestic"], os_[0]["foreign"], os_[0]["rate"]) == (first_day, 0, 3, 0.0)
    assert (os_[-1]["domestic"], os_[-1]["foreign"], os_[-1]["rate"]) == (1, 2, 0.3333)
    assert os_[-1]["day"] == int(time.time()) // DAY * DAY
    assert (dbs[0]["day"], dbs[0]["foreign"], dbs[0]["rate"]) == (first_day, 1, 0.0)
    assert (dbs[-1]["domestic"], dbs[-1]["foreign"], dbs[-1]["rate"]) == (1, 0, 1.0)
    assert "web-server" in got["trend"] and got["trend"]["web-server"][-1]["foreign"] == 1  # fin-2's Nginx, added
    assert all(p["day"] >= first_day for pts in got["trend"].values() for p in pts)
    h = hea.get("/api/v1/localization").json()["trend"]["os"]
    assert (h[0]["domestic"], h[0]["foreign"], h[-1]["domestic"], h[-1]["foreign"]) == (0, 1, 1, 0)
    page = fin.get("/localization", params={"lang": "zh"}).text
    row = re.search(r'<tr class="loc-trend" data-category="os" data-points="(\d+)" data-first="([^"]*)" '
                    r'data-now="([^"]*)">', page)
    assert row and int(row.group(1)) >= 2 and (row.group(2), row.group(3)) == ("0.0", "0.3333")
    assert "各类别国产化率趋势" in page and "+33.3" in page
