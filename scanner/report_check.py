"""`xcscan report` refuses a damaged document instead of printing inconsistent totals: the sections
have their shapes (scanner/render/view.check_report), a document with results has its summary, every
result names its rule and has a known status and severity, and the summary's counts are the results'."""
from __future__ import absolute_import

from scanner.errors import DataError

STATUSES = ("pass", "fail", "error", "not_applicable", "manual", "waived")
SEVERITIES = ("info", "low", "medium", "high", "critical")
HINT = "the report is damaged or was edited; re-run the scan, or re-render with --reevaluate"


def _bad(message, path):
    return DataError(message, path=path, hint=HINT)


def check_document(doc, path=None, results=True):
    """Raise DataError naming the field; ``results=False`` skips what --reevaluate recomputes."""
    from scanner.render.view import check_report
    try:
        check_report(doc)
    except DataError as exc:
        raise DataError(exc.message, path=path, hint=exc.hint)
    if not results:
        return
    has_results, summary = "results" in doc, doc.get("summary")
    if has_results and summary is None:
        raise _bad("the report has results but no 'summary' section", path)
    if summary is not None and not has_results:
        raise _bad("the report has a 'summary' but no 'results'", path)
    if not has_results:
        return
    seen = {}
    for index, res in enumerate(doc["results"]):
        where = "results[%d]" % index
        rule_id = res.get("rule_id")
        if not isinstance(rule_id, str) or not rule_id:
            raise _bad("%s has no rule_id" % where, path)
        where = "%s (%s)" % (where, rule_id)
        if res.get("status") not in STATUSES:
            raise _bad("%s: status %r is not one of %s" % (where, res.get("status"), ", ".join(STATUSES)), path)
        if res.get("severity") is not None and res.get("severity") not in SEVERITIES:
            raise _bad("%s: severity %r is not one of %s" % (where, res.get("severity"), ", ".join(SEVERITIES)),
                       path)
        seen[res["status"]] = seen.get(res["status"], 0) + 1
    counts = summary.get("counts")
    if counts is not None:
        for status in STATUSES:
            given = counts.get(status, 0)
            if given != seen.get(status, 0):
                raise _bad("summary.counts.%s is %r but the results hold %d" % (status, given, seen.get(status, 0)),
                           path)
