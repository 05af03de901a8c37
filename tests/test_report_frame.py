"""The working paper's frame (--assessment FILE): strict checking with errors that name the field,
local time, and the CLI carrying it into the HTML report (full and summary) of scan and report."""
import json
import os

import pytest
from click.testing import CliRunner

from baseline_support import materialise
from report_fixtures import FIXTURES
from scanner import assessment_info
from scanner.cli import cli
from scanner.errors import DataError

FIXTURE = os.path.join(FIXTURES, "kylin-l3.json")
GOOD = """organization: 某市财政局
system: 非税收入管理系统
record_number: 11010013001-20001
report_number: CP-2026-0042
level: 3
assessors: [张伟, 李娜]
assessed_on: 2026-12-01 至 2026-12-05
timezone: Asia/Shanghai
"""


def run(args):
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        runner = CliRunner()
    return runner.invoke(cli, args, env={"LANG": "zh_CN.UTF-8", "LC_ALL": ""}, catch_exceptions=False)


def write(tmp_path, text, name="assessment.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_good_file_loads(tmp_path):
    frame = assessment_info.load(write(tmp_path, GOOD))
    assert frame["level"] == 3 and frame["assessors"] == ["张伟", "李娜"]
    assert frame["organization"] == "某市财政局" and frame["timezone"] == "Asia/Shanghai"


@pytest.mark.parametrize("text,message", [
    ("organisation: x\n", "unknown field(s): organisation"),
    ("level: 5\n", "level must be 1, 2, 3 or 4"),
    ("level: three\n", "level must be 1, 2, 3 or 4"),
    ("assessors: []\n", "assessors must be a name or a list"),
    ("system: ''\n", "system must be a non-empty text"),
    ("timezone: Europe/Berlin\n", "timezone must be a UTC offset"),
    ("assessed_on: next week\n", "assessed_on must be a date"),
    ("- a\n- b\n", "holds a mapping"),
    ("system: [unclosed\n", "malformed YAML"),
])
def test_bad_files_are_refused_naming_the_field(tmp_path, text, message):
    with pytest.raises(DataError) as err:
        assessment_info.load(write(tmp_path, text))
    assert message in str(err.value) and "assessment.yaml" in str(err.value)


def test_local_time():
    assert assessment_info.local_time("2026-11-20T02:00:13Z") == "2026-11-20 10:00:13 (UTC+08:00)"
    assert assessment_info.local_time("2026-11-20T20:00:13Z", "+08:00") == "2026-11-21 04:00:13 (UTC+08:00)"
    assert assessment_info.local_time("2026-11-20T02:00:13Z", "-05:30") == "2026-11-19 20:30:13 (UTC-05:30)"
    assert assessment_info.local_time("not a time") == "not a time"


def test_report_command_shows_the_frame_in_full_and_summary(tmp_path):
    frame = write(tmp_path, GOOD)
    out_full, out_summary = str(tmp_path / "full.html"), str(tmp_path / "summary.html")
    res = run(["report", FIXTURE, "--assessment", frame, "--format", "json", "-o", "html:" + out_full,
               "-o", "summary:" + out_summary, "--lang", "zh", "-q"])
    assert res.exit_code == 0, res.output
    for path in (out_full, out_summary):
        with open(path, encoding="utf-8") as fh:
            html = fh.read()
        for text in ("被测单位", "某市财政局", "非税收入管理系统", "11010013001-20001", "CP-2026-0042", "第三级",
                     "张伟、李娜", "2026-12-01 至 2026-12-05", "2026-11-20 10:00:13 (UTC+08:00)"):
            assert text in html, text
    assert json.loads(res.stdout)["assessment"]["organization"] == "某市财政局"   # JSON carries the frame too


def test_without_a_frame_the_report_says_what_is_missing():
    res = run(["report", FIXTURE, "--format", "html", "--lang", "zh"])
    assert res.exit_code == 0
    assert "未提供：被测单位、系统名称、备案号" in res.stdout
    assert "第三级（按检查方案）" in res.stdout          # the level from the mlps-l3 profile


def test_a_bad_frame_fails_before_the_scan_and_writes_nothing(tmp_path):
    root = materialise("rhel-default", tmp_path)
    target = tmp_path / "r.html"
    res = run(["scan", "--root", root, "--profile", "mlps-l3", "--assessment", write(tmp_path, "level: 9\n"),
               "-o", "html:" + str(target)])
    assert res.exit_code == 1
    assert "“level”（安全保护等级）应为 1、2、3 或 4，实为 9" in res.stderr    # run() is in a Chinese locale
    assert not target.exists()
    res = run(["scan", "--root", root, "--profile", "mlps-l3", "--assessment", write(tmp_path, "level: 9\n"),
               "-o", "html:" + str(target), "--lang", "en"])
    assert res.exit_code == 1
    assert "level must be 1, 2, 3 or 4" in res.stderr
    assert not target.exists()


def test_scan_with_a_frame_writes_it_into_the_report(tmp_path):
    root = materialise("rhel-default", tmp_path)
    target = tmp_path / "r.html"
    res = run(["scan", "--root", root, "--profile", "mlps-l3", "--assessment", write(tmp_path, GOOD),
               "--format", "summary", "-o", str(target), "-q"])
    assert res.exit_code == 0, res.output
    html = target.read_text(encoding="utf-8")
    assert "某市财政局" in html and 'id="risks"' in html and 'id="results"' not in html


MANUAL = GOOD + """manual:
  mlps.br.local-backup-manual: {verdict: pass, note: 查看了备份策略与最近一次恢复测试记录}
  mlps.ac.default-passwords-manual: fail
"""


def test_manual_verdicts_recorded_in_the_frame_decide_the_units(tmp_path):
    import re
    root = materialise("rhel-default", tmp_path)
    saved = tmp_path / "r.json"
    res = run(["scan", "--root", root, "--profile", "mlps-l3", "--format", "json", "-o", str(saved), "-q"])
    assert res.exit_code == 0, res.output
    before = json.loads(saved.read_text(encoding="utf-8"))
    verdicts = dict((i["id"], i["verdict"]) for i in before["summary"]["assessment"]["items"])
    assert verdicts["L3-CES1-29"] == "pending" and verdicts["L3-CES1-06"] == "partial"
    out = tmp_path / "after.json"
    html = tmp_path / "after.html"
    res = run(["report", str(saved), "--assessment", write(tmp_path, MANUAL), "--format", "json", "-o", str(out),
               "-o", "html:" + str(html), "--lang", "zh", "-q"])
    assert res.exit_code == 0, res.output
    after = json.loads(out.read_text(encoding="utf-8"))
    verdicts = dict((i["id"], i["verdict"]) for i in after["summary"]["assessment"]["items"])
    assert verdicts["L3-CES1-29"] == "conform"          # the only part, recorded 符合
    backup = next(r for r in after["results"] if r["rule_id"] == "mlps.br.local-backup-manual")
    assert backup["manual_verdict"] == {"verdict": "pass", "note": "查看了备份策略与最近一次恢复测试记录",
                                        "by": "张伟、李娜", "at": "2026-12-01 至 2026-12-05"}
    assert backup["record"]["zh"].startswith("人工核查结论：符合（张伟、李娜，2026-12-01 至 2026-12-05）")
    page = html.read_text(encoding="utf-8")
    assert re.search(r'<h3 id="item-L3-CES1-29" data-verdict="conform">', page)
    # a recorded failure of a manual part is a finding with its risk
    assert 'data-rule="mlps.ac.default-passwords-manual" data-risk=' in page
    assert json.loads(saved.read_text(encoding="utf-8")) == before     # the saved report is not changed


@pytest.mark.parametrize("manual,message", [
    ("  no.such-rule: pass\n", "manual.no.such-rule: the report has no manual result of that rule"),
    ("  mlps.ia.password-max-age: pass\n", "(its status is fail)"),
    ("  mlps.br.local-backup-manual: maybe\n", "verdict must be pass, fail or partial"),
    ("  mlps.br.local-backup-manual: {verdict: pass, by: me}\n", "must be a verdict or {verdict, note}"),
])
def test_bad_manual_verdicts_are_refused(tmp_path, manual, message):
    frame = write(tmp_path, GOOD + "manual:\n" + manual)
    root = materialise("rhel-default", tmp_path)
    saved = tmp_path / "r.json"
    assert run(["scan", "--root", root, "--profile", "mlps-l3", "--format", "json", "-o", str(saved), "-q"]).exit_code == 0
    res = run(["report", str(saved), "--assessment", frame, "--format", "json", "--lang", "en"])
    assert res.exit_code == 1
    assert message in res.stderr and "assessment.yaml" in res.stderr
    res = run(["report", str(saved), "--assessment", frame, "--format", "json"])     # the Chinese locale
    assert res.exit_code == 1
    assert res.stderr.startswith("xcscan：错误：") and "assessment.yaml：manual." in res.stderr
    assert "the report" not in res.stderr and "verdict must" not in res.stderr
