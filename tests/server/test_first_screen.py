"""The officer's first screen (issue #15 item 6) on a real server over TLS (SQLite and PostgreSQL):
worst hosts first by the severity-weighted count of their failures in the main profile (a waiver
takes a host down the list), top failing rules weighted by severity (an info rule failing
everywhere does not head it), findings defaulting to failures and errors with the most severe
first, and remediation texts on the host page (the agent's, else the rule's own)."""
from __future__ import annotations

import re
import time
import uuid

import pytest

from browser_support import browser_page  # noqa: F401
from fleet import Agent

PREFIX = "/first-%s" % uuid.uuid4().hex[:6]
DEPT = PREFIX + "/tax"
PASSWORD = "First-screen-pw-42"
AGENT_FIX = "在 /etc/login.defs 中设置 PASS_MAX_DAYS 90（本单位基线）"

# (rule id, severity): real rule ids where the server's own remediation text is checked
RULES = {"crit": ("mlps.ac.ssh-root-login", "critical"), "med1": ("mlps.ia.password-max-age", "medium"),
         "med2": ("mlps.au.auditd-enabled", "medium"), "med3": ("mlps.ia.faillock", "medium"),
         "info": ("xc.cpu.domestic", "info"), "low": ("xc.db.domestic", "low"), "err": ("mlps.ac.telnet-disabled", "high"),
         "ok": ("mlps.ia.password-min-length", "high")}
# host -> failing rules; "x": one critical (8), "y": three medium (6), "z": the info rule and a low one (1)
FAILS = {"x": ["crit", "info"], "y": ["med1", "med2", "med3", "info"], "z": ["info", "low"]}


def _doc(agent, fails, errors=()):
    doc = agent.report(profile="mlps-l3")
    res = []
    for key, (rid, sev) in sorted(RULES.items()):
        status = "fail" if key in fails else ("error" if key in errors else "pass")
        res.append({"rule_id": rid, "title": {"zh": "检查 " + rid, "en": "Check " + rid}, "category": "baseline",
                    "severity": sev, "status": status, "refs": {}, "expected": None, "actual": None, "evidence": None,
                    "items": [], "waiver": None,
                    # the agent explains one rule in its own words; the rest it leaves to the server's rules
                    "remediation": {"zh": AGENT_FIX, "en": "Set PASS_MAX_DAYS 90"} if key == "med1" else None})
    doc["results"] = res
    counts = {s: sum(1 for r in res if r["status"] == s) for s in ("pass", "fail", "error", "not_applicable", "manual", "waived")}
    doc["summary"] = {"profile": "mlps-l3", "counts": counts, "score": 50.0, "score_without_waivers": 50.0}
    return doc


@pytest.fixture(scope="module")
def site(server):
    tag = uuid.uuid4().hex[:6]
    hosts = {}
    with server.client() as c:
        for name, fails in sorted(FAILS.items()):
            a = Agent("fs-%s-%s" % (name, tag), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=DEPT)).status_code == 201
            assert a.submit(c, _doc(a, fails, errors=("err",) if name == "z" else ())).status_code == 200
            hosts[name] = a
    admin = server.login()
    users = {}
    for role in ("officer", "officer2"):
        name = "fs-%s-%s" % (role, tag)
        r = admin.post("/api/v1/users", json={"username": name, "password": PASSWORD, "role": "officer", "orgs": [DEPT]})
        assert r.status_code == 201, r.text
        users[role] = name
    admin.close()
    return hosts, users


def _session(server, name):
    with server.client() as c:
        token = c.post("/api/v1/session", json={"username": name, "password": PASSWORD}).json()["token"]
    return server.client(headers={"Authorization": "Bearer " + token})


def test_worst_hosts_and_weighted_top_rules(server, site):
    hosts, users = site
    c = _session(server, users["officer"])
    data = c.get("/api/v1/overview").json()
    assert data["main_profile"] == "mlps-l3"
    worst = [(w["hostname"], w["weight"], w["failed"]) for w in data["worst_hosts"]]
    assert worst == [(hosts["x"].hostname, 8, 2), (hosts["y"].hostname, 6, 4), (hosts["z"].hostname, 1, 2)]
    assert data["worst_hosts"][1]["by_severity"] == {"medium": 3, "info": 1}
    top = [(r["rule_id"], r["hosts"]) for r in data["top_failing"]]
    # critical on one host (8), each medium on one (2), low (1); info fails on all three hosts (0): last
    assert top[0] == (RULES["crit"][0], 1)
    assert top[-1] == (RULES["info"][0], 3)
    assert [r["severity"] for r in data["top_failing"]] == ["critical", "medium", "medium", "medium", "low", "info"]
    # a waiver on host x's critical failure, approved by a second officer: x goes to the bottom
    r = c.post("/api/v1/waivers", json={"rule_id": RULES["crit"][0], "scope": "host", "scope_value": hosts["x"].hostname,
                                        "justification": "堡垒机统一登录，已评估", "expires_at": int(time.time()) + 3600})
    assert r.status_code == 201, r.text
    c2 = _session(server, users["officer2"])
    assert c2.post("/api/v1/waivers/%d/approve" % r.json()["id"], json={}).status_code == 200
    data = c.get("/api/v1/overview").json()
    assert [w["hostname"] for w in data["worst_hosts"]] == [hosts["y"].hostname, hosts["z"].hostname, hosts["x"].hostname]
    assert data["worst_hosts"][2]["weight"] == 0
    assert all(r["rule_id"] != RULES["crit"][0] for r in data["top_failing"])
    # the overview page shows the same order
    page = c.get("/", params={"lang": "zh"}).text
    shown = re.findall(r'<tr class="worst-host" data-host="([^"]+)"', page)
    assert shown == [hosts["y"].host_id, hosts["z"].host_id, hosts["x"].host_id]
    c2.close()
    c.close()


def test_findings_default_to_failures_and_errors_most_severe_first(server, site):
    hosts, users = site
    c = _session(server, users["officer"])
    page = c.get("/findings", params={"lang": "en"}).text
    rows = re.findall(r'<td class="sev-(\w+)">.*?</td><td><span class="st st-(\w+)">', page)
    assert rows, page[:500]
    assert {st for _sev, st in rows} <= {"fail", "error", "waived"} - {"waived"} and "error" in {st for _s, st in rows}
    ranks = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
    assert [ranks[s] for s, _st in rows] == sorted(ranks[s] for s, _st in rows)
    assert 'value="fail" checked' in page and 'value="error" checked' in page and 'value="pass" checked' not in page
    assert "status=fail" in page and "status=error" in page  # the export follows the filter shown
    # the form submitted with no status ticked: every status
    everything = c.get("/findings", params={"filtered": "1"}).text
    assert 'class="st st-pass"' in everything
    c.close()


def test_host_page_shows_remediation(server, site):
    hosts, users = site
    c = _session(server, users["officer"])
    page = c.get("/hosts/" + hosts["y"].host_id, params={"lang": "zh"}).text

    def row(rule_id):
        m = re.search(r'<tr class="result" data-rule="%s" data-status="\w+">(.*?)</tr>' % re.escape(rule_id), page, re.S)
        assert m, rule_id
        return m.group(1)
    assert AGENT_FIX in row(RULES["med1"][0])  # the agent's own text, as reported
    assert "systemctl enable --now auditd" in row(RULES["med2"][0])  # the rule's text from the server's rules
    assert "整改建议" not in row(RULES["ok"][0])  # a pass needs no remediation
    c.close()


@pytest.mark.browser
def test_first_screen_in_chromium(server, site, browser_page):
    hosts, users = site
    page = browser_page
    page.goto(server.base_url + "/login?lang=zh")
    page.fill("input[name=username]", users["officer"])
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#worst-hosts")
    c = _session(server, users["officer"])
    expected = c.get("/api/v1/overview").json()["worst_hosts"][0]
    c.close()
    first = page.locator("#worst-hosts tr.worst-host").first
    assert first.get_attribute("data-host") == expected["host_id"]
    first.locator("a").click()
    page.wait_for_selector("#host-name")
    assert page.inner_text("#host-name") == expected["hostname"]
    assert page.locator("#results-fail").get_attribute("open") is not None
    assert "整改建议" in page.inner_text("#results-fail")
    page.goto(server.base_url + "/findings")
    first_sev = page.locator("#findings tr td[class^=sev-]").first.get_attribute("class")
    assert first_sev in ("sev-critical", "sev-high")  # the critical failure, or once waived the high error


def _doc_in(agent, profile, fails, keys):
    """A report of ``profile`` with the rules ``keys`` of RULES, those in ``fails`` failing."""
    doc = _doc(agent, fails)
    doc["results"] = [r for r in doc["results"] if any(r["rule_id"] == RULES[k][0] for k in keys)]
    doc["summary"]["profile"] = profile
    doc["summary"]["counts"] = {s: sum(1 for r in doc["results"] if r["status"] == s)
                                for s in ("pass", "fail", "error", "not_applicable", "manual", "waived")}
    return doc


def test_worst_hosts_rank_each_host_in_its_own_main_profile(server):
    """Issue #15 item 6: "by failing severity-weighted count in *their* main profile". A level-2 system
    (scanned with mlps-l2 only) beside level-3 ones is ranked by its own failures (it was left out when
    only the scope's most common profile was ranked); a host scanned with mlps-l3 (8 rules) and crypto
    (2 rules, both critical failures) is ranked by mlps-l3, its main profile (the one with most rules)."""
    dept = PREFIX + "/mixed"
    tag = uuid.uuid4().hex[:6]
    every = sorted(RULES)
    plan = {"l3a": [("mlps-l3", ["med1"], every)], "l3b": [("mlps-l3", ["med2", "med3"], every)],
            "l2": [("mlps-l2", ["crit"], ["crit", "med1", "ok"])],
            "two": [("mlps-l3", ["low"], every), ("crypto", ["crit", "err"], ["crit", "err"])]}
    hosts = {}
    with server.client() as c:
        for name, reports in sorted(plan.items()):
            a = Agent("fs-%s-%s" % (name, tag), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=dept)).status_code == 201
            for profile, fails, keys in reports:
                assert a.submit(c, _doc_in(a, profile, fails, keys)).status_code == 200
            hosts[name] = a
    admin = server.login()
    name = "fs-mixed-%s" % tag
    assert admin.post("/api/v1/users", json={"username": name, "password": PASSWORD, "role": "officer",
                                             "orgs": [dept]}).status_code == 201
    admin.close()
    c = _session(server, name)
    data = c.get("/api/v1/overview").json()
    assert data["main_profile"] == "mlps-l3"  # still the trend's profile: most hosts use it
    got = [(w["hostname"], w["profile"], w["weight"], w["failed"]) for w in data["worst_hosts"]]
    assert got == [(hosts["l2"].hostname, "mlps-l2", 8, 1), (hosts["l3b"].hostname, "mlps-l3", 4, 2),
                   (hosts["l3a"].hostname, "mlps-l3", 2, 1), (hosts["two"].hostname, "mlps-l3", 1, 1)]
    assert data["worst_hosts"][0]["by_severity"] == {"critical": 1}
    page = c.get("/", params={"lang": "zh"}).text
    shown = re.findall(r'<tr class="worst-host" data-host="([^"]+)" data-profile="([^"]+)"', page)
    assert shown == [(hosts[k].host_id, p) for k, p in (("l2", "mlps-l2"), ("l3b", "mlps-l3"), ("l3a", "mlps-l3"),
                                                         ("two", "mlps-l3"))]
    assert "主要检查方案" in page
    c.close()
