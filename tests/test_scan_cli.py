"""`xcscan scan` end to end on fixture roots: output formats, languages, waivers, exit codes."""
import json
import os
import textwrap

import pytest
from click.testing import CliRunner

from corpus import require_corpus
from scanner.cli import cli

KYLIN_OS_RELEASE = textwrap.dedent("""\
    NAME="Kylin Linux Advanced Server"
    VERSION="V10 (Lance)"
    ID="kylin"
    VERSION_ID="V10"
    PRETTY_NAME="Kylin Linux Advanced Server V10 (Lance)"
    ANSI_COLOR="0;31"
    """)


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def centos7():
    return os.path.join(require_corpus(), "os", "centos-7")


def test_json_report_shape_and_eol_finding(centos7):
    res = invoke("scan", "--root", centos7, "--profile", "xinchuang", "--format", "json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["schema"] == "xcscan.report/1"
    by_id = dict((r["rule_id"], r) for r in report["results"])
    eol = by_id["xinchuang.os.end-of-life"]
    assert eol["status"] == "fail" and eol["severity"] == "high"
    assert eol["items"][0]["key"] == "centos"
    foreign = by_id["xinchuang.foreign.os"]
    assert foreign["status"] == "fail"
    subs = [s["id"] for s in foreign["items"][0]["substitutes"]]
    assert "kylin" in subs and "openeuler" in subs
    assert report["results"][0]["severity"] == "high"  # most severe first
    s = report["summary"]
    assert s["profile"] == "xinchuang"
    assert sum(s["counts"].values()) == s["rules"] == len(report["results"])
    for r in report["results"]:
        assert r["status"] in ("pass", "fail", "error", "not_applicable", "manual", "waived")
        assert r["reason"] is None or (r["reason"]["zh"] and r["reason"]["en"])


def test_exit_codes_follow_fail_on(centos7, make_root):
    assert invoke("scan", "--root", centos7, "--profile", "xinchuang").exit_code == 0  # cron-safe default
    assert invoke("scan", "--root", centos7, "--profile", "xinchuang", "--fail-on", "high").exit_code == 3
    assert invoke("scan", "--root", centos7, "--profile", "xinchuang", "--fail-on", "critical").exit_code == 0
    kylin = make_root({"/etc/os-release": KYLIN_OS_RELEASE})
    res = invoke("scan", "--root", kylin, "--profile", "xinchuang", "--fail-on", "low", "--format", "json")
    report = json.loads(res.output)
    fails = [r["rule_id"] for r in report["results"] if r["status"] == "fail"]
    assert res.exit_code == (3 if fails else 0)
    assert "xinchuang.foreign.os" not in fails


def test_usage_and_data_errors(centos7, tmp_path):
    res = CliRunner().invoke(cli, ["scan", "--root", centos7, "--profile", "nope"])
    assert res.exit_code == 1 and "unknown profile 'nope'" in res.output and "xinchuang" in res.output
    res = CliRunner().invoke(cli, ["scan", "--root", centos7, "--fail-on", "severe"])
    assert res.exit_code == 2
    bad = tmp_path / "w.yaml"
    bad.write_text("waivers:\n  - rule: x\n    hosts: ['*']\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["scan", "--root", centos7, "--waivers", str(bad)])
    assert res.exit_code == 1 and "w.yaml" in res.output and "missing 'justification'" in res.output


def test_waivers_file_and_scores(centos7, tmp_path):
    wv = tmp_path / "w.yaml"
    wv.write_text(textwrap.dedent("""\
        waivers:
          - rule: xinchuang.os.end-of-life
            hosts: ["*"]
            justification: migration to Kylin V10 scheduled
            approver: security officer
            expires: 2999-12-31
          - rule: xinchuang.os.end-of-lfie
            hosts: ["*"]
            justification: typo in the rule id
            approver: security officer
            expires: 2999-12-31
        """), encoding="utf-8")
    res = invoke("scan", "--root", centos7, "--profile", "xinchuang", "--waivers", str(wv), "--format", "json",
                 "--fail-on", "high")
    report = json.loads(res.stdout)   # the typo'd waiver is warned about on stderr
    eol = [r for r in report["results"] if r["rule_id"] == "xinchuang.os.end-of-life"][0]
    assert eol["status"] == "waived" and eol["waiver"]["approver"] == "security officer"
    assert res.exit_code == 0  # the only high finding is waived
    s = report["summary"]
    assert s["score"] > s["score_without_waivers"]
    assert s["waivers"]["unknown_rules"] == ["xinchuang.os.end-of-lfie"]
    res = invoke("scan", "--root", centos7, "--profile", "xinchuang", "--waivers", str(wv), "--lang", "zh")
    assert "已豁免" in res.output and "security officer" in res.output and "不计豁免" in res.output
    assert "xinchuang.os.end-of-lfie" in res.output


def test_table_languages_and_output_file(centos7, tmp_path):
    en = invoke("scan", "--root", centos7, "--profile", "xinchuang", "--lang", "en").output
    assert "Compliance scan: profile xinchuang" in en and "xinchuang.os.end-of-life" in en and "FAIL" in en
    zh = invoke("scan", "--root", centos7, "--profile", "xinchuang", "--lang", "zh").output
    assert "合规扫描" in zh and "不符合" in zh and "国产替代" in zh
    out = tmp_path / "r.json"
    res = invoke("scan", "--root", centos7, "--profile", "xinchuang", "--format", "json", "-o", str(out))
    assert res.exit_code == 0 and res.output == "wrote %s\n" % out   # the report went to the file only
    assert json.loads(out.read_text(encoding="utf-8"))["summary"]["profile"] == "xinchuang"


def test_evaluate_report_recomputes_from_facts(centos7):
    from scanner.pipeline import evaluate_report, scan_report
    report = scan_report(root=centos7, profile="xinchuang")
    again = evaluate_report(report, profile="crypto")
    assert again["report_id"] == report["report_id"]
    assert again["summary"]["profile"] == "crypto"
    assert all(r["category"] == "crypto" for r in again["results"])
    same = evaluate_report(report)
    assert same["summary"]["profile"] == "xinchuang"
    assert [(r["rule_id"], r["status"]) for r in same["results"]] == [
        (r["rule_id"], r["status"]) for r in report["results"]]
    assert report["summary"]["profile"] == "xinchuang"  # input untouched


def test_rules_list_show_lint_cli(tmp_path):
    res = invoke("rules", "list", "--profile", "xinchuang", "--lang", "en")
    assert res.exit_code == 0 and "xinchuang.os.end-of-life" in res.output
    res = invoke("rules", "show", "xinchuang.os.end-of-life")
    assert res.exit_code == 0 and "for_each: inventory.components" in res.output
    res = CliRunner().invoke(cli, ["rules", "show", "no.such.rule"])
    assert res.exit_code == 1 and "no.such.rule" in res.output
    bad = tmp_path / "checks" / "x" / "r.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text("id: a.b\ntitle: {zh: a, en: a}\ncheck: {fact: nowhere.x, op: eq, value: 1}\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["rules", "lint", str(tmp_path / "checks")])
    assert res.exit_code == 1
    assert "r.yaml:3: unknown fact path 'nowhere.x'" in res.output
    assert "missing required field 'severity'" in res.output
    res = CliRunner().invoke(cli, ["rules", "lint"])
    assert res.exit_code == 0, res.output


def test_rules_test_and_lint_fail_on_bad_rules(tmp_path):
    d = tmp_path / "checks" / "x"
    d.mkdir(parents=True)
    (d / "wrong.yaml").write_text(textwrap.dedent("""\
        id: x.wrong-case
        title: {zh: 测试, en: test}
        category: baseline
        severity: low
        check: {fact: sshd.effective.permitrootlogin, op: eq, value: "no"}
        remediation: {zh: 修, en: fix}
        tests:
          pass: [{facts: {sshd: {effective: {permitrootlogin: "yes"}}}}]
          fail: [{facts: {sshd: {effective: {permitrootlogin: "yes"}}}}]
        """), encoding="utf-8")
    res = CliRunner().invoke(cli, ["rules", "test", str(tmp_path / "checks"), "--lang", "en"])
    assert res.exit_code == 1
    assert "x.wrong-case tests.pass[0]: expected pass, got fail" in res.output
    assert "1 of 2 case(s) failed" in res.output
    res = CliRunner().invoke(cli, ["rules", "test", str(d / "wrong.yaml"), "-v", "--lang", "en"])
    assert "tests.fail[0]" in res.output  # -v prints passing cases too


def test_mlps_profile_reports_coverage(centos7):
    res = invoke("scan", "--root", centos7, "--profile", "mlps-l3", "--format", "json")
    report = json.loads(res.output)
    cov = report["summary"]["coverage"]
    assert cov["level"] == "mlps-l3" and cov["items"]
    assert set(cov["counts"]) == {"automated", "partial", "manual", "not_covered"}
    assert sum(cov["counts"].values()) == len(cov["items"])
    ran = set(r["rule_id"] for r in report["results"])
    for item in cov["items"]:
        assert item["result"] in ("pass", "fail", "error", "manual", "not_applicable", "waived", None)
        if item["status"] != "manual" and item["result"] is not None:
            assert set(item["rules"]) & ran
    assert all(3 in (r.get("levels") or [3]) for r in report["results"])
    text = invoke("scan", "--root", centos7, "--profile", "mlps-l3", "--lang", "en").output
    assert "Coverage of mlps-l3" in text
