"""JUnit XML: one test case per rule result, so CI systems show failing rules as failing tests.

fail -> <failure>, error -> <error>, manual / not_applicable / waived -> <skipped>, each with the
expected and actual value, the evidence and the remediation. Validates against the Jenkins
(junit-10) and Ant JUnit schemas' common structure."""
from __future__ import absolute_import

import re

from scanner.i18n import t
from scanner.render import assessment, view

# Characters XML 1.0 cannot carry at all; dropped rather than producing a file consumers reject.
_INVALID_XML = re.compile(u"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _clean(value):
    return _INVALID_XML.sub(u"\ufffd", view.scalar_text(value))


def _details(res, lang, item=None, finding=None):
    from scanner.render import records
    lines = ["%s: %s" % (t("junit.record", lang), records.record(res, lang))]
    if item is not None and item.get("id"):
        lines.append("%s: %s %s" % (t("junit.unit", lang), view.scalar_text(item.get("id")),
                                    t("report.verdict." + item["verdict"], lang)))
    if finding is not None:
        risk = t("paper.risk." + finding["risk"], lang)
        entry = finding.get("guide")
        if entry:
            risk = t("junit.risk_guide", lang, risk=risk, title=view.pick(entry.get("title"), lang),
                     clause=view.scalar_text(entry.get("clause")))
        lines.append("%s: %s" % (t("junit.risk", lang), risk))
    for key, value in (("junit.expected", view.expected_text(res.get("expected"), lang)),
                       ("junit.actual", view.actual_text(res.get("actual"), lang))):
        if value:
            lines.append("%s: %s" % (t(key, lang), value))
    evidence = view.result_evidence_text(res, lang)
    if evidence:
        lines.append("%s:\n%s" % (t("junit.evidence", lang), evidence))
    ref_text = view.refs_text(res, lang)
    if ref_text:
        lines.append("%s: %s" % (t("junit.refs", lang), ref_text))
    remediation = view.pick(res.get("remediation"), lang)
    if remediation:
        lines.append("%s: %s" % (t("junit.remediation", lang), remediation))
    return "\n".join(lines)


def _ordered_results(report):
    seen, out = set(), []
    for _item, members in view.group_results(report):
        for res in members:
            if id(res) not in seen:
                seen.add(id(res))
                out.append(res)
    return out


def render(report, lang="en"):
    import xml.etree.ElementTree as ET
    view.check_report(report)
    host = report.get("host") or {}
    summary = report.get("summary") or {}
    results = _ordered_results(report)
    got = assessment.assess(report) if isinstance(report.get("results"), list) else None
    items, findings = assessment.per_result(got) if got else ({}, {})
    counts = {"fail": 0, "error": 0, "skipped": 0}
    for res in results:
        status = res.get("status")
        if status in ("fail", "error"):
            counts[status] += 1
        elif status != "pass":
            counts["skipped"] += 1
    suite_name = "xcscan.%s" % (view.scalar_text(summary.get("profile")) or "scan")
    root = ET.Element("testsuites", {"name": "xcscan", "tests": str(len(results)),
                                     "failures": str(counts["fail"]), "errors": str(counts["error"]),
                                     "time": "0"})
    timestamp = view.scalar_text(host.get("collected_at")).rstrip("Z")
    suite = ET.SubElement(root, "testsuite", {
        "name": _clean(suite_name), "tests": str(len(results)), "failures": str(counts["fail"]),
        "errors": str(counts["error"]), "skipped": str(counts["skipped"]), "time": "0",
        "timestamp": _clean(timestamp), "hostname": _clean(host.get("hostname") or "unknown"),
        "id": "0", "package": "xcscan"})
    props = ET.SubElement(suite, "properties")
    loc = (report.get("inventory") or {}).get("localization") or {}
    for name, value in (("report_id", report.get("report_id")), ("machine_id", host.get("machine_id")),
                        ("profile", summary.get("profile")), ("score", summary.get("score")),
                        ("score_without_waivers", summary.get("score_without_waivers")),
                        ("localization_rate", loc.get("rate")),
                        ("item_score", got["score"]["value"] if got and got["items"] else None),
                        ("scanner_version", (report.get("scanner") or {}).get("version"))):
        if value is not None:
            ET.SubElement(props, "property", {"name": name, "value": _clean(value)})
    from scanner.notices import texts
    for text in texts(report, lang):    # no OS under --root, not run as root: how to read every case
        ET.SubElement(props, "property", {"name": "notice", "value": _clean(text)})
    for res in results:
        status = view.scalar_text(res.get("status"))
        title = view.pick(res.get("title"), lang)
        case = ET.SubElement(suite, "testcase", {
            "name": _clean("%s: %s" % (view.scalar_text(res.get("rule_id")), title)),
            "classname": _clean("xcscan.%s" % (view.scalar_text(res.get("category")) or "rule")),
            "time": "0"})
        details = _clean(_details(res, lang, items.get(id(res)), findings.get(id(res))))
        severity = view.scalar_text(res.get("severity")) or "unknown"
        if status == "fail":
            actual = view.actual_text(res.get("actual"), lang)
            message = t("junit.failure", lang, title=title, actual=actual) if actual else title
            child = ET.SubElement(case, "failure", {"type": _clean(severity), "message": _clean(message)})
            child.text = details
        elif status == "error":
            message = t("junit.error", lang, title=title)
            if res.get("reason"):
                message += " (%s)" % view.pick(res.get("reason"), lang)
            child = ET.SubElement(case, "error", {"type": "error", "message": _clean(message)})
            child.text = details
        elif status == "pass":
            if details:
                ET.SubElement(case, "system-out").text = details
        else:
            message = t("report.status." + status, lang) if status in view.STATUSES else status
            waiver = res.get("waiver") if isinstance(res.get("waiver"), dict) else None
            if status == "waived" and waiver:
                message = t("junit.waived", lang, justification=view.value_text(waiver.get("justification"), lang),
                            approver=view.value_text(waiver.get("approver"), lang),
                            expires=view.waiver_expiry(waiver))
            child = ET.SubElement(case, "skipped", {"type": _clean(status), "message": _clean(message)})
            child.text = details
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
