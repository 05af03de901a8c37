"""The assessor's reading of a report (scanner/render/assessment.py): the item verdict rule for
every combination of parts, the high-risk guide marks, the item score and the per-控制点 summary,
on hand-made parts and on a real scan of the default RHEL-like fixture root."""
import re

import pytest

from baseline_support import materialise
from scanner.render import assessment, render


def res(status, severity="medium", rule="r.x", **extra):
    out = {"rule_id": rule, "status": status, "severity": severity}
    out.update(extra)
    return out


@pytest.mark.parametrize("parts,verdict", [
    ([res("pass")], "conform"),
    ([res("pass"), res("waived")], "conform"),                       # a waiver is a compensating measure
    ([res("pass"), res("fail", "info")], "conform"),                 # info: an observation only
    ([res("fail", "info")], "conform"),
    ([res("pass"), res("fail", "low")], "partial"),
    ([res("pass"), res("fail", "high")], "partial"),
    ([res("pass"), res("fail", "critical")], "nonconform"),          # critical decides
    ([res("fail", "low")], "nonconform"),                            # nothing satisfied
    ([res("fail", "medium"), res("not_applicable")], "nonconform"),
    ([res("pass"), res("manual", "info")], "pending"),               # manual part not yet recorded
    ([res("manual", "info")], "pending"),
    ([res("pass"), res("error")], "pending"),                        # could not be judged: never a pass
    ([res("pass"), res("fail"), res("manual", "info")], "partial"),  # failures decide; open part listed
    ([res("fail"), res("error")], "nonconform"),
    ([res("not_applicable"), res("not_applicable")], "not_applicable"),
    ([], "not_applicable"),
    ([res("pass"), res("manual", "info", manual_verdict="pass")], "conform"),
    ([res("manual", "info", manual_verdict={"verdict": "pass", "by": "张伟"})], "conform"),
    ([res("pass"), res("manual", "info", manual_verdict="fail")], "partial"),
    ([res("manual", "info", manual_verdict="fail")], "nonconform"),
    ([res("manual", "info", manual_verdict="partial")], "partial"),
    ([res("pass"), res("manual", "info", manual_verdict="maybe")], "pending"),  # unknown verdict: open
    ([res("pass"), res("strange")], "pending"),                      # unknown status: never a pass
])
def test_item_verdict_rule(parts, verdict):
    assert assessment.item_verdict(parts)[0] == verdict


def test_a_guide_listed_failure_makes_the_item_nonconform():
    parts = [res("pass"), res("fail", "high", rule="mlps.ia.no-plaintext-remote-admin")]
    hits = assessment.guide_hits(parts)
    assert hits["mlps.ia.no-plaintext-remote-admin"]["id"] == "plaintext-remote-admin"
    assert assessment.item_verdict(parts, hits)[0] == "nonconform"
    assert assessment.item_verdict(parts, {})[0] == "partial"


def test_match_all_entries_need_every_listed_rule_failed():
    only_auditd = [res("fail", "high", rule="mlps.au.auditd-running"), res("pass", rule="mlps.au.syslog-enabled")]
    assert assessment.guide_hits(only_auditd) == {}       # syslog still records events: a mitigation
    both = [res("fail", "high", rule="mlps.au.auditd-running"), res("fail", "high", rule="mlps.au.syslog-enabled")]
    assert set(assessment.guide_hits(both)) == {"mlps.au.auditd-running", "mlps.au.syslog-enabled"}


def test_risk_rating_from_guide_then_severity():
    hits = {"a": {"id": "x"}}
    assert assessment.risk(res("fail", "low", rule="a"), hits) == ("high", {"id": "x"})
    assert assessment.risk(res("fail", "critical"), hits) == ("high", None)
    assert assessment.risk(res("fail", "high"), hits) == ("high", None)
    assert assessment.risk(res("fail", "medium"), hits) == ("medium", None)
    assert assessment.risk(res("fail", "low"), hits) == ("low", None)
    assert assessment.risk(res("fail", "info"), hits) == ("low", None)


def test_failures_come_first_inside_an_item():
    parts = [res("not_applicable", rule="a"), res("pass", rule="b"), res("fail", "low", rule="c"),
             res("manual", rule="d"), res("fail", "high", rule="e"), res("error", rule="f")]
    assert [r["rule_id"] for r in assessment.order_results(parts)] == ["e", "c", "f", "d", "b", "a"]


def test_item_score_counts_pending_as_zero_and_leaves_out_not_applicable():
    items = [{"verdict": v} for v in ("conform", "conform", "partial", "nonconform", "pending", "not_applicable")]
    score = assessment.item_score(items)
    assert score["value"] == round(100.0 * 2.5 / 5, 1) == 50.0
    assert (score["counted"], score["excluded"], score["pending"]) == (5, 1, 1)
    assert assessment.item_score([{"verdict": "not_applicable"}])["value"] is None


@pytest.fixture(scope="module")
def rhel_default(tmp_path_factory):
    from scanner.pipeline import scan_report
    root = materialise("rhel-default", tmp_path_factory.mktemp("roots"))
    return scan_report(root=root, profile="mlps-l3")


def test_default_rhel_host_items_and_control_points(rhel_default):
    got = assessment.assess(rhel_default)
    verdicts = dict((i["id"], i["verdict"]) for i in got["items"])
    # no login-failure handling on any login service: a guide-listed finding -> 不符合
    assert verdicts["L3-CES1-02"] == "nonconform"
    # some password rules pass (hashing), others fail (max age 99999): 部分符合
    assert verdicts["L3-CES1-01"] == "partial"
    # backup items are manual only: awaiting the assessor
    assert verdicts["L3-CES1-29"] == "pending"
    assert set(verdicts.values()) >= {"nonconform", "partial", "pending", "conform"}
    controls = [(area["zh"], row) for area, row in got["by_control"]]
    assert [c for c, _row in controls] == ["身份鉴别", "访问控制", "安全审计", "入侵防范", "恶意代码防范", "可信验证",
                                          "数据完整性", "数据保密性", "数据备份恢复", "剩余信息保护", "个人信息保护"]
    for _c, row in controls:
        assert row["items"] == sum(row[k] for k in assessment.VERDICTS) + row["not_checked"]
    assert sum(row["items"] for _c, row in controls) == len(rhel_default["summary"]["coverage"]["items"])
    lockout = [f for f in got["findings"] if f["result"]["rule_id"] == "mlps.ia.login-lockout"]
    assert lockout and lockout[0]["risk"] == "high" and lockout[0]["guide"]["clause"] == "8.1.4.1 b)"
    assert got["findings"][0]["risk"] == "high"
    assert got["score"]["counted"] == len(got["items"]) - got["score"]["excluded"]


def test_html_item_heading_carries_the_verdict_and_failures_come_first(rhel_default):
    out = render(rhel_default, "html", "zh")
    head = re.search(r'<h3 id="item-L3-CES1-02" data-verdict="([a-z_]+)">(.*?)</h3>', out)
    assert head.group(1) == "nonconform" and "不符合" in head.group(2)
    section = out[head.end():out.index('id="item-L3-CES1-03"')]
    statuses = re.findall(r'<tr class="result" data-rule="[^"]+" data-status="([a-z_]+)"', section)
    rank = ["fail", "error", "manual", "waived", "pass", "not_applicable"]
    assert statuses[0] == "fail" and statuses == sorted(statuses, key=rank.index)
    assert re.search(r'<h3 id="item-L3-CES1-01" data-verdict="partial">.*?部分符合', out)


def test_the_json_report_carries_verdicts_records_and_risks(rhel_default):
    import json
    doc = json.loads(json.dumps(rhel_default))          # what --format json writes
    added = doc["summary"]["assessment"]
    assert added["rule"] == "xcscan.assessment/1"
    assert dict((i["id"], i["verdict"]) for i in added["items"]) == \
        dict((i["id"], i["verdict"]) for i in assessment.assess(doc)["items"])
    assert sum(c["items"] for c in added["by_control"]) == len(doc["summary"]["coverage"]["items"])
    assert added["risks"]["guide"] >= 1 and added["score"]["counted"] > 0
    for res in doc["results"]:
        assert res["record"]["zh"] and res["record"]["en"]
        assert ("risk" in res) == (res["status"] == "fail"), res["rule_id"]
    lockout = next(r for r in doc["results"] if r["rule_id"] == "mlps.ia.login-lockout")
    assert lockout["risk"] == "high" and lockout["high_risk"] == {"id": "login-failure-handling", "clause": "8.1.4.1 b)"}
    # the fields are additions: everything the schema had is still there under its name
    for key in ("rule_id", "status", "severity", "reason", "expected", "actual", "evidence", "items", "refs"):
        assert key in lockout
    for key in ("counts", "score", "score_without_waivers", "coverage", "failed_by_severity"):
        assert key in doc["summary"]


def test_html_control_point_table_matches_the_assessment(rhel_default):
    got = assessment.assess(rhel_default)
    for lang in ("zh", "en"):
        out = render(rhel_default, "html", lang)
        section = out[out.index('<section id="controls">'):out.index('<section id="risks">')]
        rows = re.findall(r'<tr class="control" data-control="([^"]+)"><td>([^<]+)</td>(.*?)</tr>', section)
        assert [r[0] for r in rows] == [area["en"] for area, _c in got["by_control"]]
        assert [r[1] for r in rows] == [area[lang] for area, _c in got["by_control"]]
        for (_en, _name, cells), (_area, counts) in zip(rows, got["by_control"]):
            cell = dict(re.findall(r'data-k="(\w+)">(\d+)<', cells))
            assert dict((k, int(v)) for k, v in cell.items()) == counts
        total = re.search(r'<tr class="total">(.*?)</tr>', section).group(1)
        assert re.findall(r'<th class="num">(\d+)</th>', total)[0] == str(len(got["items"]))
        # the score and its definition side by side
        assert re.search(r'id="card-item-score"><div class="v">%s<' % got["score"]["value"], out)
        assert 'id="score-definition"' in out


# one real result per part kind (scanner/render/assessment.py module doc, docs/reports.md table)
PART_KINDS = {
    "satisfied": [res("pass"), res("waived"), res("manual", "info", manual_verdict="pass")],
    "failed": [res("fail", "low"), res("fail", "medium"), res("fail", "high"), res("manual", "info", manual_verdict="fail")],
    "decisive": [res("fail", "critical"), res("fail", "medium", rule="guide.listed")],
    "both": [res("manual", "info", manual_verdict="partial")],
    "open": [res("error"), res("manual", "info"), res("manual", "info", manual_verdict="maybe"), res("strange")],
    "observation": [res("fail", "info")],
    "excluded": [res("not_applicable"), res("manual", "info", manual_verdict="not_applicable")],
}


def documented_verdict(kinds):
    """The docs/reports.md table, row by row, written independently of item_verdict."""
    failed = kinds & {"failed", "decisive", "both"}
    satisfied = kinds & {"satisfied", "both"}
    if "decisive" in kinds:
        return "nonconform"          # a critical failure or a case the high-risk guide lists
    if failed and not satisfied:
        return "nonconform"
    if failed and satisfied:
        return "partial"             # open parts are listed, they do not hold the verdict back
    if "open" in kinds:
        return "pending"
    if kinds & {"satisfied", "observation"}:
        return "conform"
    return "not_applicable"          # only excluded parts, or none


def test_item_verdict_rule_every_combination_of_part_kinds():
    """All 2^7 combinations of part kinds present in one test unit, each kind played by every result
    that is of that kind (a critical failure and a guide-listed one are both decisive), also twice."""
    import itertools
    hits = {"guide.listed": {"id": "x"}}
    names = sorted(PART_KINDS)
    checked = 0
    for mask in range(2 ** len(names)):
        kinds = set(n for i, n in enumerate(names) if mask >> i & 1)
        want = documented_verdict(kinds)
        # every choice of representative for each present kind
        for choice in itertools.product(*[PART_KINDS[k] for k in sorted(kinds)]):
            for parts in (list(choice), list(choice) * 2, list(reversed(choice))):
                got, counts = assessment.item_verdict(parts, hits)
                assert got == want, (sorted(kinds), [(p["status"], p["severity"], p.get("manual_verdict")) for p in parts])
                assert set(k for k, n in counts.items() if n) == kinds
                checked += 1
    assert checked > 1000
    # the same parts without the guide: a guide-listed medium failure is an ordinary failure
    assert assessment.item_verdict([res("pass"), res("fail", "medium", rule="guide.listed")], {})[0] == "partial"


def test_csv_junit_json_and_html_agree_on_verdicts_and_risks(rhel_default):
    """One report, four formats: every result's unit verdict and risk in CSV and JUnit are the ones
    the HTML working paper shows and the JSON report carries -- including a manual part an assessor
    recorded as failed (a finding with a risk) and one recorded as passed."""
    import copy
    import csv
    import io
    import json
    import xml.etree.ElementTree as ET
    from scanner.i18n import t
    doc = copy.deepcopy(rhel_default)
    for res in doc["results"]:
        if res["rule_id"] == "mlps.ac.default-passwords-manual":
            res["manual_verdict"] = {"verdict": "fail", "by": "张伟", "at": "2026-12-01"}
        if res["rule_id"] == "mlps.br.local-backup-manual":
            res["manual_verdict"] = {"verdict": "pass", "by": "张伟", "at": "2026-12-01"}
    assessment.annotate(doc)
    doc = json.loads(json.dumps(doc))
    got = assessment.assess(doc)
    unit_of = {}
    for item in got["items"]:
        for res in item["results"]:
            unit_of.setdefault(res["rule_id"], item)
    html = render(doc, "html", "en")
    html_risk = dict(re.findall(r'<tr class="finding" data-rule="([^"]+)" data-risk="([a-z]+)"', html))
    json_risk = dict((r["rule_id"], r["risk"]) for r in doc["results"] if "risk" in r)
    assert html_risk == json_risk and json_risk["mlps.ac.default-passwords-manual"] in assessment.RISKS
    assert "mlps.br.local-backup-manual" not in json_risk
    rows = list(csv.reader(io.StringIO(render(doc, "csv", "en"))))
    head = rows[0]
    col = dict((name, head.index(t("csv.col." + name, "en"))) for name in ("rule_id", "item_verdict", "risk"))
    suite = ET.fromstring(render(doc, "junit", "en").encode("utf-8")).find("testsuite")
    cases = dict((c.get("name").split(":")[0], c) for c in suite.findall("testcase"))
    props = dict((p.get("name"), p.get("value")) for p in suite.find("properties"))
    assert float(props["item_score"]) == got["score"]["value"]
    assert len(rows) - 1 == len(doc["results"]) == len(cases)
    for row in rows[1:]:
        rule = row[col["rule_id"]]
        item = unit_of.get(rule)
        verdict = t("report.verdict." + item["verdict"], "en") if item else ""
        risk = t("paper.risk." + json_risk[rule], "en") if rule in json_risk else ""
        assert (row[col["item_verdict"]], row[col["risk"]]) == (verdict, risk), rule
        case = cases[rule]
        text = "".join(child.text or "" for child in case)
        if item:
            assert "Test unit: %s %s" % (item["id"], verdict) in text, rule
        assert ("Risk: " in text) == (rule in json_risk), rule
        if rule in json_risk:
            assert "Risk: " + risk in text
    lockout = "".join(c.text or "" for c in cases["mlps.ia.login-lockout"])
    assert "Risk: high (high-risk guide: No protection against password brute force, clause 8.1.4.1 b))" in lockout


def test_scope_lists_every_other_security_category_as_outside(rhel_default):
    """测评范围: the ten 安全类 of GB/T 22239-2019, only 安全计算环境 in scope (the host's part), every
    other one outside, not counted as covered; the unit counts are the coverage's."""
    cov = rhel_default["summary"]["coverage"]
    for fmt in ("html", "summary"):
        out = render(rhel_default, fmt, "zh")
        section = out[out.index('<section id="scope">'):out.index('<section id="controls">')]
        rows = re.findall(r'<tr class="scope-row" data-in-scope="(yes|no)"><td>([^<]+)</td><td>([^<]+)</td></tr>', section)
        assert [r[1] for r in rows] == ["安全物理环境", "安全通信网络", "安全区域边界", "安全计算环境", "安全管理中心",
                                        "安全管理制度", "安全管理机构", "安全管理人员", "安全建设管理", "安全运维管理"]
        assert [r[1] for r in rows if r[0] == "yes"] == ["安全计算环境"]
        assert all(r[2] == "不在范围内，须另行测评" for r in rows if r[0] == "no")
        intro = re.search(r"<p>(.*?)</p>", section).group(1)
        counts = cov["counts"]
        assert "%d 个测评单元（自动检查 %d，部分自动 %d，人工核查 %d，未覆盖 %d）" % (
            len(cov["items"]), counts["automated"], counts["partial"], counts["manual"], counts["not_covered"]) in intro
        assert "其他安全类不在本次扫描范围内，不计为已覆盖" in intro
    # the full edition's coverage figures say they are that part only ("0 未覆盖" is not the system)
    out = render(rhel_default, "html", "zh")
    coverage = out[out.index('<section id="coverage">'):]
    note = re.search(r'<p class="note" id="coverage-scope">(.*?)</p>', coverage).group(1)
    assert "安全计算环境”中主机部分的 %d 个测评单元" % len(cov["items"]) in note and "其他安全类不在本次扫描范围内" in note
    assert coverage.index('id="coverage-scope"') < coverage.index('class="card coverage-count"')


def test_score_is_shown_with_its_definition_and_figures(rhel_default):
    """The unit score card and, beside it in the same section, what counts: the counted, pending and
    not applicable units of this report."""
    got = assessment.assess(rhel_default)
    score = got["score"]
    for lang, words in (("zh", "本次 %d 个测评单元计分，其中 %d 个待人工核查（含检查出错）按 0 计" % (score["counted"], score["pending"])),
                        ("en", None)):
        out = render(rhel_default, "summary", lang)
        section = out[out.index('<section id="summary">'):out.index('<section id="scope">')]
        assert re.search(r'id="card-item-score"><div class="v">%s</div>' % score["value"], section)
        note = re.search(r'<p id="score-definition" class="note">(.*?)</p>', section).group(1)
        if words:
            assert words in note and "%d 个不适用的测评单元不计" % score["excluded"] in note
        assert "0.5" in note
    assert score["value"] == round(100.0 * (score["conform"] + 0.5 * score["partial"]) / score["counted"], 1)


def test_risks_cite_the_high_risk_guide_entry_and_clause(rhel_default):
    out = render(rhel_default, "summary", "zh")
    section = out[out.index('<section id="risks">'):out.index('<section id="localization">')]
    assert "《网络安全等级保护测评高风险判定实施指引》（T/ISEAA 001-2020）" in section
    row = re.search(r'<tr class="finding" data-rule="mlps.ia.login-lockout" data-risk="high" '
                    r'data-guide="login-failure-handling">(.*?)</tr>', section, re.S).group(1)
    assert "口令暴力破解防范措施缺失" in row and "对应条款 8.1.4.1 b)" in row and "高风险" in row
    risks = re.findall(r'<tr class="finding" data-rule="[^"]+" data-risk="(high|medium|low)"', section)
    assert risks == sorted(risks, key=["high", "medium", "low"].index)   # high risk first
