"""The assessor's view of a report: item verdicts, risk ratings, the item score and the per-控制点
summary. Pure functions over the report dict (shared by HTML, JSON, CSV and the aggregator).

Item verdict rule (docs/reports.md, "How an item is judged"). The results mapped to one GB/T 28448
test item are its parts. Each part counts as:

* satisfied  -- ``pass``; ``waived`` (a compensating measure with approver and expiry); a manual
                part whose verdict was recorded as ``pass``;
* failed     -- ``fail`` of severity low and above; a manual part recorded ``fail``;
* both       -- a manual part recorded ``partial``;
* excluded   -- also a manual part recorded ``not_applicable`` (the aggregator's 不适用 verdict);
* open       -- ``error`` (could not be judged) and ``manual`` without a recorded verdict;
* observation-- ``fail`` of severity ``info`` (listed, never decides the item);
* excluded   -- ``not_applicable``.

Verdict:

1. a failed part that is ``critical`` or that the high-risk determination guide lists
   (rules/controls/high-risk.yaml, see guide_hits) -> 不符合 (nonconform);
2. failed parts and no satisfied part -> 不符合;  failed and satisfied parts -> 部分符合 (partial);
   (open parts do not hold back a verdict that failures already decide; they are listed);
3. no failed part and an open part -> 待人工核查 (pending);
4. no failed and no open part, at least one satisfied part or observation -> 符合 (conform);
5. nothing but excluded parts -> 不适用 (not_applicable).
"""
from __future__ import absolute_import

from scanner.render import view

VERDICTS = ("nonconform", "partial", "pending", "conform", "not_applicable")
# what a recorded manual verdict (result["manual_verdict"]) may say
MANUAL_VERDICTS = ("pass", "fail", "partial", "not_applicable")
RISKS = ("high", "medium", "low")
# a failure's risk from its severity (info: an observation, low risk)
SEVERITY_RISK = {"critical": "high", "high": "high", "medium": "medium", "low": "low", "info": "low"}
# order of results inside an item: failures first
_STATUS_RANK = {"fail": 0, "error": 1, "manual": 2, "waived": 3, "pass": 4, "not_applicable": 5}
_SEV_RANK = dict((s, i) for i, s in enumerate(view.SEVERITIES))


def _status(result):
    return view.scalar_text(result.get("status"))


def _severity(result):
    return view.scalar_text(result.get("severity"))


def manual_verdict(result):
    """The verdict an assessor recorded for a manual part (pass | fail | partial), or None."""
    recorded = result.get("manual_verdict")
    if isinstance(recorded, dict):
        recorded = recorded.get("verdict")
    recorded = view.scalar_text(recorded)
    return recorded if recorded in MANUAL_VERDICTS else None


def part_kind(result, high_risk=None):
    """satisfied | failed | decisive | both | open | observation | excluded (see module doc)."""
    status = _status(result)
    if status in ("pass", "waived"):
        return "satisfied"
    if status == "fail":
        if _severity(result) == "info":
            return "observation"
        if _severity(result) == "critical" or (high_risk and view.scalar_text(result.get("rule_id")) in high_risk):
            return "decisive"
        return "failed"
    if status == "manual":
        recorded = manual_verdict(result)
        return {"pass": "satisfied", "fail": "failed", "partial": "both", "not_applicable": "excluded"}.get(recorded, "open")
    if status == "not_applicable":
        return "excluded"
    return "open"  # error, or a status this version does not know: never a pass


def item_verdict(results, high_risk=None):
    """(verdict, counts) for the results of one test item; counts per part kind."""
    counts = dict((k, 0) for k in ("satisfied", "failed", "decisive", "both", "open", "observation", "excluded"))
    for res in results:
        counts[part_kind(res, high_risk)] += 1
    failed = counts["failed"] + counts["decisive"] + counts["both"]
    satisfied = counts["satisfied"] + counts["both"]
    if counts["decisive"]:
        verdict = "nonconform"
    elif failed:
        verdict = "partial" if satisfied else "nonconform"
    elif counts["open"]:
        verdict = "pending"
    elif satisfied or counts["observation"]:
        verdict = "conform"
    else:
        verdict = "not_applicable"
    return verdict, counts


def order_results(results):
    """Failures first (then errors, manual, waived, pass, not applicable), severest first."""
    return sorted(results, key=lambda r: (_STATUS_RANK.get(_status(r), 9), _SEV_RANK.get(_severity(r), 9),
                                          view.natural_key(view.scalar_text(r.get("rule_id")))))


# ------------------------------------------------------------------ high-risk guide
_GUIDE = {}


def _guide_doc():
    """rules/controls/high-risk.yaml ({} when absent or damaged: a report still renders, without
    guide marks)."""
    if "doc" not in _GUIDE:
        import os
        from scanner.paths import rules_dir
        from scanner.yamlio import load_yaml_file
        doc = {}
        try:
            loaded = load_yaml_file(os.path.join(rules_dir(), "controls", "high-risk.yaml"))
            if isinstance(loaded, dict):
                doc = loaded
        except Exception:  # a broken data file must not stop a report from rendering
            doc = {}
        _GUIDE["doc"] = doc
    return _GUIDE["doc"]


def guide_entries():
    return [e for e in _guide_doc().get("entries") or [] if isinstance(e, dict)]


def guide_source():
    return _guide_doc().get("source") or {}


def guide_hits(results, entries=None):
    """{rule_id: guide entry} for the failed results the guide treats as high risk: every failed
    rule of a ``match: any`` entry; the rules of a ``match: all`` entry only when all of them failed."""
    failed = set(view.scalar_text(r.get("rule_id")) for r in results
                 if isinstance(r, dict) and (_status(r) == "fail"
                                             or (_status(r) == "manual" and manual_verdict(r) == "fail")))
    hits = {}
    for entry in guide_entries() if entries is None else entries:
        rules = [view.scalar_text(x) for x in view.as_list(entry.get("rules"))]
        if entry.get("match") == "all":
            chosen = rules if rules and all(x in failed for x in rules) else []
        else:
            chosen = [x for x in rules if x in failed]
        for rule_id in chosen:
            hits.setdefault(rule_id, entry)
    return hits


def risk(result, hits):
    """(rating, guide entry or None) for a failed result: high for a guide-listed finding,
    else from the severity (critical/high -> high, medium -> medium, low/info -> low)."""
    entry = hits.get(view.scalar_text(result.get("rule_id")))
    if entry is not None:
        return "high", entry
    return SEVERITY_RISK.get(_severity(result), "medium"), None


# ------------------------------------------------------------------ items, control points, score
def assess(report):
    """Everything the working paper needs, computed once:

    {"items": [{id, clause, area, title, verdict, counts, results (ordered)}] in clause order,
     "by_control": [(area pair, {verdict: n, "not_checked": n, "items": n})] in clause order,
     "findings": [{result, item, risk, guide}] failed results, high risk first,
     "score": {value, conform, partial, nonconform, pending, counted, excluded}}"""
    results = [r for r in report.get("results") or [] if isinstance(r, dict)]
    guide = guide_hits(results)
    items = []
    for item, members in view.group_results(report):
        if item is None:
            continue
        verdict, counts = item_verdict(members, guide)
        items.append({"id": item.get("id"), "clause": item.get("clause"), "area": item.get("area"),
                      "title": item.get("title"), "verdict": verdict, "counts": counts,
                      "results": order_results(members), "coverage": item.get("status")})
    judged = dict((view.scalar_text(i["id"]), i) for i in items if i.get("id"))
    by_control = []
    index = {}
    for cov in view.coverage_items(report):
        area = cov.get("area")
        key = view.pick(area, "zh") or view.pick(area, "en") or "?"
        if key not in index:
            row = dict((v, 0) for v in VERDICTS)
            row.update({"not_checked": 0, "items": 0})
            index[key] = row
            by_control.append((area, row))
        row = index[key]
        row["items"] += 1
        found = judged.get(view.scalar_text(cov.get("id")))
        if found is None:
            row["not_checked"] += 1
        else:
            row[found["verdict"]] += 1
    findings = []
    for item in items + [{"id": None, "results": _unplaced(report, items)}]:
        for res in item["results"]:
            if _status(res) == "fail" or (_status(res) == "manual" and manual_verdict(res) in ("fail", "partial")):
                rating, entry = risk(res, guide)
                findings.append({"result": res, "item": item if item.get("id") else None,
                                 "risk": rating, "guide": entry})
    risk_rank = dict((r, i) for i, r in enumerate(RISKS))
    findings.sort(key=lambda f: (risk_rank[f["risk"]], f["guide"] is None, _SEV_RANK.get(_severity(f["result"]), 9),
                                 view.natural_key(view.scalar_text(f["result"].get("rule_id")))))
    return {"items": items, "by_control": by_control, "findings": findings, "score": item_score(items),
            "guide": guide}


def per_result(got):
    """({id(result): item}, {id(result): finding}) from ``assess``: the first test unit each result
    is listed under and the finding (risk, guide entry) of a failed one, so that CSV and JUnit say
    what the HTML and JSON say about the same result."""
    items, findings = {}, {}
    for item in got["items"]:
        for res in item["results"]:
            items.setdefault(id(res), item)
    for finding in got["findings"]:
        findings.setdefault(id(finding["result"]), finding)
    return items, findings


def _unplaced(report, items):
    placed = set(id(r) for i in items for r in i["results"])
    return [r for r in report.get("results") or [] if isinstance(r, dict) and id(r) not in placed]


def item_score(items):
    """score = 100 x (符合 + 0.5 x 部分符合) / (符合 + 部分符合 + 不符合 + 待人工核查).

    不适用 items are left out; an item pending a manual verdict or holding an error counts 0 until it
    is decided (an unjudged part is never a pass). None when no item counts."""
    tally = dict((v, 0) for v in VERDICTS)
    for item in items:
        tally[item["verdict"]] += 1
    counted = tally["conform"] + tally["partial"] + tally["nonconform"] + tally["pending"]
    value = round(100.0 * (tally["conform"] + 0.5 * tally["partial"]) / counted, 1) if counted else None
    out = {"value": value, "counted": counted, "excluded": tally["not_applicable"]}
    out.update(tally)
    return out


# ------------------------------------------------------------------ the JSON report's added fields
ANNOTATION = "xcscan.assessment/1"


def annotate(report):
    """Add the assessor's reading to a report in place (fields added to xcscan.report/1, none renamed):

    * every result: ``record`` {zh, en} (the 测评记录); a failed one also ``risk`` (high|medium|low)
      and, when the high-risk guide lists it, ``high_risk`` {id, clause};
    * ``summary.assessment``: the rule version, ``items`` [{id, verdict, counts}], ``by_control``
      [{area, items, <verdict>..., not_checked}], ``score`` and ``risks`` {high, medium, low, guide}.
    Returns the report."""
    from scanner.render import records
    if not isinstance(report.get("results"), list) or not isinstance(report.get("summary"), dict):
        return report
    got = assess(report)
    risky = dict((id(f["result"]), f) for f in got["findings"])
    for res in report["results"]:
        if not isinstance(res, dict):
            continue
        res["record"] = {"zh": records.record(res, "zh"), "en": records.record(res, "en")}
        finding = risky.get(id(res))
        if finding is not None:
            res["risk"] = finding["risk"]
            if finding["guide"]:
                res["high_risk"] = {"id": finding["guide"].get("id"), "clause": finding["guide"].get("clause")}
    by_control = []
    for area, row in got["by_control"]:
        entry = {"area": area}
        entry.update(row)
        by_control.append(entry)
    risks = dict((r, sum(1 for f in got["findings"] if f["risk"] == r)) for r in RISKS)
    risks["guide"] = sum(1 for f in got["findings"] if f["guide"])
    report["summary"]["assessment"] = {
        "rule": ANNOTATION,
        "items": [{"id": i["id"], "verdict": i["verdict"], "counts": i["counts"]} for i in got["items"]],
        "by_control": by_control, "score": got["score"], "risks": risks}
    return report
