"""CSV: one row per result, for spreadsheets. RFC 4180 quoting via the csv module (commas, quotes,
newlines and Chinese survive), headers in the report language. Cells that a spreadsheet would run
as a formula (=, +, -, @ first) get a leading apostrophe. ``render(..., bom=True)`` (``--bom``)
prefixes a UTF-8 byte order mark so Excel opens Chinese text correctly."""
from __future__ import absolute_import

import csv
import io
import re

from scanner.i18n import t
from scanner.render import assessment, records, view

COLUMNS = ("hostname", "rule_id", "title", "category", "severity", "status", "gbt28448", "gbt22239",
           "expected", "actual", "evidence", "remediation", "waiver_justification", "waiver_approver",
           "waiver_expires", "record", "item_verdict", "risk")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")
BOM = u"\ufeff"


def safe_cell(value):
    """Neutralise spreadsheet formulas (CSV injection) without touching plain numbers."""
    text = view.scalar_text(value)
    if text and text[0] in "=+-@\t\r" and not _NUMBER.match(text):
        return "'" + text
    return text


def _row(report, res, lang, verdict=None, risk=None):
    host = report.get("host") or {}
    refs = res.get("refs") or {}
    status = view.scalar_text(res.get("status"))
    severity = view.scalar_text(res.get("severity"))
    waiver = res.get("waiver") if isinstance(res.get("waiver"), dict) else {}
    return [
        host.get("hostname"), res.get("rule_id"), view.pick(res.get("title"), lang),
        view.rule_category(res.get("category"), lang),
        t("report.severity." + severity, lang) if severity in view.SEVERITIES else severity,
        t("report.status." + status, lang) if status in view.STATUSES else status,
        view.value_text(refs.get("gbt28448"), lang), view.value_text(refs.get("gbt22239"), lang),
        view.expected_text(res.get("expected"), lang), view.actual_text(res.get("actual"), lang),
        view.result_evidence_text(res, lang), view.pick(res.get("remediation"), lang),
        view.value_text(waiver.get("justification"), lang), view.value_text(waiver.get("approver"), lang),
        view.waiver_expiry(waiver),
        records.record(res, lang),
        t("report.verdict." + verdict, lang) if verdict else "",
        t("paper.risk." + risk, lang) if risk else "",
    ]


def render(report, lang="en", bom=False):
    view.check_report(report)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([t("csv.col." + c, lang) for c in COLUMNS])
    seen = set()
    # the unit verdict and the risk exactly as the HTML working paper and the JSON report give them
    # (a manual part an assessor recorded as failed is a finding with a risk too)
    items, findings = assessment.per_result(assessment.assess(report))
    for _item, members in view.group_results(report):
        for res in members:
            if id(res) in seen:
                continue
            seen.add(id(res))
            item, finding = items.get(id(res)), findings.get(id(res))
            verdict = item["verdict"] if item is not None and item.get("id") else None
            writer.writerow([safe_cell(v) for v in _row(report, res, lang, verdict, finding["risk"] if finding else None)])
    return (BOM if bom else "") + buf.getvalue()
