"""CSV: one row per result; commas, quotes, newlines and Chinese round-trip through csv."""
import csv
import io

import pytest

from report_fixtures import load
from scanner.render import render
from scanner.render.csv_out import COLUMNS, render as render_csv


@pytest.fixture
def report():
    return load()


def _rows(text):
    return list(csv.reader(io.StringIO(text, newline="")))


def test_round_trip_of_a_hard_title(report):
    hard = '口令, "最长" 使用期限\n第二行，含逗号, and "quotes"'
    report["results"][0]["title"] = {"zh": hard, "en": hard}
    report["results"][0]["actual"] = "a,b\r\nc"
    rows = _rows(render(report, "csv", "zh"))
    assert len(rows) == 1 + len(report["results"])
    row = dict(zip(COLUMNS, [r for r in rows if r[1] == "mlps.ia.password-max-age"][0]))
    assert row["title"] == hard
    assert row["actual"] == "a,b\r\nc"
    assert row["hostname"] == "gov-app-01"


def test_headers_follow_the_language(report):
    assert _rows(render(report, "csv", "zh"))[0][:3] == ["主机", "规则编号", "检查项"]
    assert _rows(render(report, "csv", "en"))[0][:3] == ["Host", "Rule ID", "Title"]


def test_one_row_per_result_in_clause_order_with_waiver_columns(report):
    rows = _rows(render(report, "csv", "en"))
    header, body = rows[0], rows[1:]
    ids = [r[1] for r in body]
    assert sorted(ids) == sorted(r["rule_id"] for r in report["results"])
    assert ids.index("mlps.ia.password-max-age") < ids.index("mlps.ac.root-login") < ids.index("xc.db.foreign")
    row = dict(zip(header, body[ids.index("mlps.ia.faillock")]))
    assert row["Status"] == "waived"
    assert row["Waiver approver"] == "张伟（信息安全处）" and row["Waiver expires"] == "2027-03-31"
    assert row["GB/T 28448 item"] == "L3-CES1-02"


def test_bom_for_excel(report):
    text = render_csv(report, "zh", bom=True)
    assert text.startswith("\ufeff")
    data = text.encode("utf-8")
    assert data[:3] == b"\xef\xbb\xbf"
    assert _rows(data.decode("utf-8-sig"))[0][0] == "主机"
    assert not render_csv(report, "zh").startswith("\ufeff")


def test_formulas_are_neutralised_but_numbers_kept(report):
    report["results"][0]["title"] = {"zh": '=HYPERLINK("http://x","y")', "en": '=HYPERLINK("http://x","y")'}
    report["results"][0]["actual"] = -1
    report["results"][1]["title"] = {"zh": "@SUM(A1)", "en": "@SUM(A1)"}
    rows = dict((r[1], r) for r in _rows(render(report, "csv", "en"))[1:])
    assert rows["mlps.ia.password-max-age"][2] == "'=HYPERLINK(\"http://x\",\"y\")"
    assert rows["mlps.ia.password-max-age"][9] == "-1"
    assert rows["mlps.ia.password-minlen"][2] == "'@SUM(A1)"


def test_markup_and_separators_in_every_string_round_trip(report):
    from report_fixtures import PAYLOAD, inject
    doc = inject(report, PAYLOAD + ',"\r\n;\t')
    rows = _rows(render(doc, "csv", "en"))
    assert len(rows) == 1 + len(report["results"]) and all(len(r) == len(COLUMNS) for r in rows)
    titles = set(r[2] for r in rows[1:])
    assert report["results"][0]["title"]["en"] + PAYLOAD + ',"\r\n;\t' in titles


def test_rows_carry_the_record_the_unit_verdict_and_the_risk_as_the_html_does(report):
    from scanner.render import assessment, records
    rows = _rows(render(report, "csv", "zh"))
    header, body = rows[0], rows[1:]
    assert header[-3:] == ["测评记录", "测评单元判定", "风险"]
    by_rule = dict((r[1], dict(zip(COLUMNS, r))) for r in body)
    results = dict((r["rule_id"], r) for r in report["results"])
    for rule_id, row in by_rule.items():
        assert row["record"] == records.record(results[rule_id], "zh")
    verdicts = dict((i["id"], i["verdict"]) for i in assessment.assess(report)["items"])
    ciphers = by_rule["mlps.ia.ssh-ciphers"]
    assert ciphers["item_verdict"] == {"nonconform": "不符合", "partial": "部分符合"}[verdicts[ciphers["gbt28448"]]]
    assert ciphers["risk"] == "高风险"                       # a failed high-severity rule
    assert by_rule["xc.db.foreign"]["item_verdict"] == ""   # no test unit
    assert all(row["risk"] == "" for rid, row in by_rule.items() if results[rid]["status"] != "fail")
