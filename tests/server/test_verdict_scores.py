"""Recorded verdicts count (issue #15 item 3): on a real server over TLS (SQLite and PostgreSQL) an
assessor's 不符合 / 符合 for the manual items of a host and of a department changes the host's and
the department's score and failed count (the score without waivers and verdicts stays what the
agent reported), and the working paper the server renders for the host shows the recorded verdicts,
the assessor and the 测评记录 in its item verdicts; revoked, everything is as reported again."""
from __future__ import annotations

import re
import time
import uuid

import pytest

from fleet import Agent, make_report

PREFIX = "/vscore-%s" % uuid.uuid4().hex[:6]
DEPT = PREFIX + "/ops"
PASSWORD = "Verdict-score-pw-42"
LOCAL, OFFSITE = "mlps.br.local-backup-manual", "mlps.br.offsite-backup-manual"  # L3-CES1-29, L3-CES1-30
WEIGHTS = {"info": 0, "low": 1, "medium": 2, "high": 4, "critical": 8}


def _results():
    """Real rule ids: two automated results (high pass, medium fail) and the two backup items' manual parts."""
    rows = [("mlps.ac.ssh-root-login", "high", "pass"), ("mlps.ia.password-max-age", "medium", "fail"),
            (LOCAL, "high", "manual"), (OFFSITE, "medium", "manual")]
    return [{"rule_id": rid, "title": {"zh": "检查 " + rid, "en": "Check " + rid}, "category": "baseline",
             "severity": sev, "status": st, "refs": {}, "expected": None, "actual": None, "evidence": None,
             "items": [], "remediation": {"zh": "按要求整改", "en": "Fix it"}, "waiver": None,
             "reason": {"zh": "需人工核查", "en": "needs a person"} if st == "manual" else None}
            for rid, sev, st in rows]


def _score(parts):
    got = total = 0.0
    for sev, st in parts:
        w = WEIGHTS[sev]
        total += w
        got += w if st == "pass" else (w / 2.0 if st == "partial" else 0)
    return round(100.0 * got / total, 1)


def _doc(agent):
    from scanner.engine.coverage import coverage
    doc = agent.report(profile="mlps-l3")
    doc["results"] = _results()
    counts = {s: sum(1 for r in doc["results"] if r["status"] == s)
              for s in ("pass", "fail", "error", "not_applicable", "manual", "waived")}
    raw = _score([("high", "pass"), ("medium", "fail")])
    doc["summary"] = {"profile": "mlps-l3", "counts": counts, "score": raw, "score_without_waivers": raw,
                      "coverage": coverage("mlps-l3", doc["results"])}
    return doc


def _session(server, name):
    with server.client() as c:
        token = c.post("/api/v1/session", json={"username": name, "password": PASSWORD}).json()["token"]
    return server.client(headers={"Authorization": "Bearer " + token})


@pytest.fixture(scope="module")
def site(server):
    tag = uuid.uuid4().hex[:6]
    hosts = []
    with server.client() as c:
        for i, org in enumerate((DEPT, DEPT + "/branch")):
            a = Agent("vs-%d-%s" % (i, tag), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=org)).status_code == 201
            doc = _doc(a)
            assert a.submit(c, doc).status_code == 200
            a.report_id = doc["report_id"]
            hosts.append(a)
    admin = server.login()
    name = "vs-assessor-%s" % tag
    resp = admin.post("/api/v1/users", json={"username": name, "password": PASSWORD, "role": "assessor", "orgs": [DEPT]})
    assert resp.status_code == 201, resp.text
    admin.close()
    return hosts, name


def _profile(c, host_id):
    r = c.get("/api/v1/hosts/" + host_id)
    assert r.status_code == 200, r.text
    return [p for p in r.json()["profiles"] if p["profile"] == "mlps-l3"][0]


def _dept(c):
    tree = c.get("/api/v1/orgs", params={"org": DEPT}).json()
    tree = tree.get("orgs", tree) if isinstance(tree, dict) else tree
    return [n for n in tree if n["path"] == DEPT][0]["profiles"]["mlps-l3"]


def _paper(c, report_id):
    r = c.get("/reports/%s/paper" % report_id, params={"lang": "zh"})
    assert r.status_code == 200, r.text[:300]
    return r.text


def _controls_risks(c, hostname):
    """(high, medium, low) problems of one host on the org's control-point roll-up page."""
    page = c.get("/orgs/controls", params={"org": DEPT, "lang": "en"}).text
    m = re.search(r'>%s</a></td><td>[^<]*</td><td class="num">[^<]*</td>\s*<td class="num">(\d+)</td>'
                  r'<td class="num">(\d+)</td><td class="num">(\d+)</td>' % re.escape(hostname), page)
    assert m, page[:300]
    return tuple(int(x) for x in m.groups())


def _control_row(c, control="Data backup and recovery"):
    """The verdict counts of one 控制点 on the org's control-point roll-up page."""
    page = c.get("/orgs/controls", params={"org": DEPT, "lang": "en"}).text
    m = re.search(r'<tr class="control" data-control="%s">(.*?)</tr>' % re.escape(control), page, re.S)
    assert m, page[:300]
    return dict((k, int(v)) for k, v in re.findall(r'data-k="(\w+)">(\d+)<', m.group(1)))


def _row(html, rule_id):
    m = re.search(r'<tr class="result" data-rule="%s" data-status="manual">(.*?)</tr>' % re.escape(rule_id), html, re.S)
    assert m, "no row for %s in the paper" % rule_id
    return m.group(1)


def test_verdicts_change_host_and_department_scores_and_the_paper(server, site):
    (a, b), assessor = site
    c = _session(server, assessor)
    raw = _score([("high", "pass"), ("medium", "fail")])
    before_a, before_b = _profile(c, a.host_id), _profile(c, b.host_id)
    assert before_a["score"] == before_b["score"] == raw and before_a["failed"] == 1 and before_a["recorded"] == 0
    before_dept = _dept(c)
    assert before_dept["score"] == raw and before_dept["failed"] == 2
    paper = _paper(c, a.report_id)
    assert "需人工核查" in _row(paper, LOCAL)
    assert _controls_risks(c, a.hostname) == (0, 1, 0)  # the medium failure
    backup_before = _control_row(c)
    assert backup_before["pending"] >= 4        # L3-CES1-29 and -30 of both hosts await the assessor
    until = int(time.time()) + 3600
    ids = []
    for item, kind, target, verdict, record in (
            ("L3-CES1-29", "host", a.hostname, "nonconform", "本机无本地备份，未见备份策略"),
            ("L3-CES1-30", "org", DEPT, "conform", "部门统一异地备份，查看了最近一次恢复演练记录"),
            ("L3-CES1-04", "host", a.hostname, "partial", "仅口令加 SSH 密钥，未使用国密双因素")):
        r = c.post("/api/v1/assessments", json={"item_id": item, "target_kind": kind, "target": target,
                                                "verdict": verdict, "record": record, "valid_until": until})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    # host A: local backup recorded 不符合 (high fail), offsite 符合 by the department (medium pass)
    got_a = _profile(c, a.host_id)
    want_a = _score([("high", "pass"), ("medium", "fail"), ("high", "fail"), ("medium", "pass")])
    assert (got_a["score"], got_a["failed"], got_a["recorded"]) == (want_a, 2, 2)
    assert got_a["score_without_waivers"] == raw  # as the agent reported: no waivers, no verdicts
    # host B (below the department): only the department's 符合 applies
    got_b = _profile(c, b.host_id)
    want_b = _score([("high", "pass"), ("medium", "fail"), ("medium", "pass")])
    assert (got_b["score"], got_b["failed"], got_b["recorded"]) == (want_b, 1, 1)
    dept = _dept(c)
    assert dept["score"] == round((want_a + want_b) / 2, 2) and dept["failed"] == 3 and dept["recorded"] == 3
    assert dept["score_without_waivers"] == raw
    # the officer's first screen: the recorded 不符合 (high) adds to host A's weighted failures
    worst = {w["hostname"]: (w["weight"], w["failed"], w["score"]) for w in c.get("/api/v1/overview").json()["worst_hosts"]}
    assert worst == {a.hostname: (2 + 4, 2, want_a), b.hostname: (2, 1, want_b)}
    # the same in the host list and the compliance summary
    listed = [h for h in c.get("/api/v1/hosts", params={"org": DEPT}).json() if h["id"] == a.host_id][0]
    assert listed["profiles"]["mlps-l3"]["score"] == want_a
    summary = [u for u in c.get("/api/v1/summary/compliance", params={"org": DEPT}).json()["by_org"]
               if u["org"] == DEPT and u["profile"] == "mlps-l3"][0]
    assert summary["score"] == dept["score"]
    page = c.get("/hosts/" + a.host_id, params={"lang": "zh"}).text
    card = re.search(r'data-profile="mlps-l3">(.*?)</div></div>', page, re.S).group(1)
    assert "%.1f" % want_a in card and "已录入判定 2" in card and "%.1f" % raw in card
    # the working paper of host A: the manual parts carry the recorded verdicts, who and the 测评记录
    paper = _paper(c, a.report_id)
    local = _row(paper, LOCAL)
    assert "不符合" in local and assessor in local and "本机无本地备份" in local
    offsite = _row(paper, OFFSITE)
    assert "符合" in offsite and "不符合" not in offsite and "恢复演练记录" in offsite
    own = _row(paper, "assessment.L3-CES1-04")  # a partial item without a manual part: the verdict is a part
    assert "部分符合" in own and "国密双因素" in own
    # + the local backup recorded 不符合 (high) and L3-CES1-04 recorded 部分符合 (its own part, medium)
    assert _controls_risks(c, a.hostname) == (1, 2, 0)
    # the org's per-控制点 roll-up judges the units with the recorded verdicts too: 数据备份恢复 has
    # host A's L3-CES1-29 不符合 and both hosts' L3-CES1-30 符合 instead of three pending units
    backup = _control_row(c)
    assert (backup["nonconform"] - backup_before["nonconform"], backup["conform"] - backup_before["conform"],
            backup["pending"] - backup_before["pending"]) == (1, 2, -3)
    # host B's paper: only the department's verdict
    paper_b = _paper(c, b.report_id)
    assert "需人工核查" in _row(paper_b, LOCAL) and "恢复演练记录" in _row(paper_b, OFFSITE)
    assert 'data-rule="assessment.L3-CES1-04"' not in paper_b
    # revoked: everything is as the agent reported again
    for aid in ids:
        assert c.post("/api/v1/assessments/%d/revoke" % aid).status_code == 200
    again = _profile(c, a.host_id)
    assert (again["score"], again["failed"], again["recorded"]) == (raw, 1, 0)
    assert _dept(c)["score"] == raw and _dept(c)["failed"] == 2
    assert "需人工核查" in _row(_paper(c, a.report_id), LOCAL)
    assert _control_row(c) == backup_before
    c.close()


def test_item_verdicts_in_the_paper_follow_the_recorded_verdict():
    """The paper's item rule with a recorded 不适用 and 部分符合 (scanner/render/assessment.py)."""
    from scanner.render.assessment import item_verdict
    manual = {"rule_id": LOCAL, "status": "manual", "severity": "high"}
    passed = {"rule_id": "x", "status": "pass", "severity": "high"}
    assert item_verdict([dict(manual)])[0] == "pending"
    assert item_verdict([dict(manual, manual_verdict={"verdict": "not_applicable"})])[0] == "not_applicable"
    assert item_verdict([dict(manual, manual_verdict={"verdict": "not_applicable"}), passed])[0] == "conform"
    assert item_verdict([dict(manual, manual_verdict={"verdict": "partial"}), passed])[0] == "partial"
    assert item_verdict([dict(manual, manual_verdict={"verdict": "fail"}), passed])[0] == "partial"


def test_valid_verdicts_of_many_hosts_are_read_whole_and_agree(server, site):
    """store/coverage.py valid_verdicts: past 2,000 hosts the level's host verdicts are read in one statement
    and filtered, instead of 500 host ids bound per statement; the answer for the same hosts is the same."""
    from scanner.server.store.coverage import valid_verdicts
    (a, b), assessor = site
    c = _session(server, assessor)
    until = int(time.time()) + 3600
    ids = []
    for item, kind, target in (("L3-CES1-29", "host", a.hostname), ("L3-CES1-30", "org", DEPT)):
        r = c.post("/api/v1/assessments", json={"item_id": item, "target_kind": kind, "target": target,
                                                "verdict": "conform", "record": "核查记录", "valid_until": until})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    try:
        few = {a.host_id: DEPT, b.host_id: DEPT + "/branch"}
        many = dict(few, **dict(("pad-%05d" % i, DEPT + "/unit%d" % (i % 7)) for i in range(2100)))
        with server.engine.connect() as conn:
            small, big = valid_verdicts(conn, "mlps-l3", few), valid_verdicts(conn, "mlps-l3", many)
        assert small and dict((k, v) for k, v in big.items() if k[0] in few) == small
        assert small[(a.host_id, "L3-CES1-29")]["id"] == ids[0] and (b.host_id, "L3-CES1-29") not in small
        # the padding hosts (under the department) have its org verdict and no host verdict
        assert big[("pad-00003", "L3-CES1-30")]["id"] == ids[1] and ("pad-00003", "L3-CES1-29") not in big
        assert len(big) == len(small) + 2100
    finally:
        for aid in ids:
            assert c.post("/api/v1/assessments/%d/revoke" % aid).status_code == 200
        c.close()
