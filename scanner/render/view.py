"""What the HTML, JUnit and CSV renderers share: ordering of results by GB/T 28448 item, plain-text
forms of arbitrary fact values, status and waiver lookups. Pure functions over the report dict."""
from __future__ import absolute_import

import re

from scanner.errors import DataError
from scanner.i18n import pick as _pick

STATUSES = ("fail", "error", "manual", "waived", "not_applicable", "pass")
SEVERITIES = ("critical", "high", "medium", "low", "info")
COVERAGE_STATUSES = ("automated", "partial", "manual", "not_covered")

_NUM_RE = re.compile(r"(\d+)")


def natural_key(text):
    """'L3-CES1-10' after 'L3-CES1-9'; '8.1.4.10 a)' after '8.1.4.2 b)'."""
    parts = _NUM_RE.split(text or "")
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p != "")


def pick(pair, lang="en"):
    """One language of a {"zh", "en"} pair as text, whatever the values' types."""
    if isinstance(pair, dict):
        chosen = _pick(pair, lang)
        return chosen if isinstance(chosen, str) else value_text(chosen, lang)
    return value_text(pair, lang)


def count(value):
    """A non-negative count from a report field (anything else counts as 0)."""
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


# (path, expected container) pairs checked before rendering; "*" = every element of a list
# or every value of a mapping. Leaves of other types are rendered as text.
_SHAPE = (
    (("inventory",), dict), (("inventory", "components"), list), (("inventory", "components", "*"), dict),
    (("inventory", "localization"), dict), (("inventory", "localization", "by_category"), dict),
    (("inventory", "localization", "by_category", "*"), dict),
    (("results",), list), (("results", "*"), dict), (("results", "*", "refs"), dict),
    (("results", "*", "waiver"), dict), (("summary",), dict), (("summary", "counts"), dict),
    (("summary", "coverage"), dict), (("summary", "coverage", "items"), list),
    (("summary", "coverage", "items", "*"), dict), (("summary", "coverage", "items", "*", "rules"), list),
    (("summary", "coverage", "counts"), dict), (("host",), dict), (("facts",), dict),
    (("facts", "errors"), list), (("scanner",), dict), (("assessment",), dict),
)
_HASHABLE = ((("results", "*", "rule_id"),), (("inventory", "components", "*", "product_id"),))


def _walk(doc, path, where=()):
    if not path:
        yield where, doc
        return
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(doc, list):
            pairs = enumerate(doc)
        elif isinstance(doc, dict):
            pairs = doc.items()
        else:
            pairs = ()
        for key, value in pairs:
            for found in _walk(value, rest, where + (key,)):
                yield found
    elif isinstance(doc, dict) and doc.get(head) is not None:
        for found in _walk(doc[head], rest, where + (head,)):
            yield found


def _shape_error(where, what, value):
    name = ".".join(str(w) if not isinstance(w, int) else "[%d]" % w for w in where).replace(".[", "[")
    return DataError("report field %s must be %s, found %s" % (name, what, type(value).__name__),
                     hint="the report is damaged or was not written by xcscan; re-run the scan")


def check_report(report):
    """Raise DataError naming the field when a section of the report has the wrong shape."""
    if not isinstance(report, dict):
        raise DataError("a report is a JSON object, found %s" % type(report).__name__)
    for path, kind in _SHAPE:
        for where, value in _walk(report, path):
            if not isinstance(value, kind):
                raise _shape_error(where, "a list" if kind is list else "an object", value)
    for (path,) in _HASHABLE:
        for where, value in _walk(report, path):
            if isinstance(value, (dict, list)):
                raise _shape_error(where, "text", value)
    for where, value in _walk(report, ("summary", "coverage", "items", "*", "rules", "*")):
        if isinstance(value, (dict, list)):
            raise _shape_error(where, "a rule id", value)


def as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def scalar_text(value):
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def value_text(value, lang="en"):
    """A readable single- or multi-line text for any JSON value (expected, actual, items...)."""
    if isinstance(value, dict):
        if set(value) <= {"zh", "en"} and value:
            return pick(value, lang)
        return "; ".join("%s: %s" % (k, value_text(v, lang)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in value):
            return ", ".join(scalar_text(v) for v in value)
        return "\n".join(value_text(v, lang) for v in value)
    return scalar_text(value)


def expected_text(value, lang="en"):
    """A result's or item's ``expected``, with the engine's operator words in ``lang``."""
    from scanner.formula_text import formula
    return formula(value, lang, "expected") if isinstance(value, str) else value_text(value, lang)


def actual_text(value, lang="en"):
    """A result's or item's ``actual``, with the engine's own summaries ("0 items") in ``lang``."""
    from scanner.formula_text import formula
    return formula(value, lang, "actual") if isinstance(value, str) else value_text(value, lang)


EVIDENCE_KINDS = ("process", "port", "package", "service", "path", "config", "file", "command", "probe")


def evidence_lines(evidence, lang="en"):
    """Evidence as one-line strings: 'kind: value (source)' for inventory evidence,
    'fact = value (source)' for rule evidence."""
    lines = []
    for ev in as_list(evidence):
        if isinstance(ev, dict) and ("kind" in ev or "fact" in ev):
            if "kind" in ev:
                kind = scalar_text(ev.get("kind"))
                if kind in EVIDENCE_KINDS:
                    from scanner.i18n import t
                    kind = t("sw.evidence." + kind, lang)
                text = "%s: %s" % (kind, value_text(ev.get("value"), lang))
            else:
                value = ev.get("value")
                shown = "null" if value is None else ("[]" if value == [] else value_text(value, lang))
                text = "%s = %s" % (scalar_text(ev.get("fact")), shown)
            if ev.get("source"):
                text += " (%s)" % scalar_text(ev.get("source"))
            if lang == "zh":
                from scanner.formula_text import data_zh
                text = data_zh(text)
            if ev.get("message"):
                from scanner.i18n import message
                text += " (%s)" % message(value_text(ev.get("message"), lang), lang)
        else:
            text = value_text(ev, lang)
        lines.append(text)
    return lines


def item_lines(items, lang="en", depth=0):
    """Per-item findings ({key, status, expected, actual, reason, items}) as indented lines."""
    from scanner.i18n import t
    lines = []
    pad = "  " * depth + "- "
    for item in as_list(items):
        if not isinstance(item, dict):
            lines.append(pad + value_text(item, lang))
            continue
        head = scalar_text(item.get("key")) or "?"
        status = scalar_text(item.get("status"))
        if status:
            head += " [%s]" % (t("report.status." + status, lang) if status in STATUSES else status)
        detail = pick(item.get("reason"), lang) if item.get("reason") else actual_text(item.get("actual"), lang)
        if not item.get("reason") and "key" not in item:
            detail = value_text(item, lang)
        lines.append(pad + head + (": " + detail if detail else ""))
        if item.get("items"):
            lines.extend(item_lines(item["items"], lang, depth + 1))
    return lines


def result_evidence_text(result, lang="en"):
    """Why (reason), per-item findings and the evidence of one result, as text."""
    lines = []
    if result.get("reason"):
        lines.append(value_text(result.get("reason"), lang))
    lines.extend(item_lines(result.get("items"), lang))
    lines.extend(evidence_lines(result.get("evidence"), lang))
    return "\n".join(lines)


RULE_CATEGORIES = ("localization", "baseline", "crypto", "data-security")


def rule_category(category, lang="en"):
    from scanner.i18n import t
    category = scalar_text(category)
    return t("report.rule_category." + category, lang) if category in RULE_CATEGORIES else category


def refs(result):
    return result.get("refs") or {}


REF_LABELS = (("gbt22239", "GB/T 22239"), ("gbt28448", "GB/T 28448"), ("gbt39786", "GB/T 39786"),
              ("cac", "CaC"), ("cis", "CIS"))


def refs_text(result, lang="en"):
    """'GB/T 22239 8.1.4.1 a), GB/T 28448 L3-CES1-01, CaC ...' (standards only, not notes)."""
    given = refs(result)
    parts = ["%s %s" % (label, value_text(given[key], lang)) for key, label in REF_LABELS if given.get(key)]
    if given.get("csl"):   # 《网络安全法》 (Cybersecurity Law of the PRC), "art. 21(3)"
        parts.append(law_ref_text(value_text(given["csl"], lang), lang))
    known = set(k for k, _l in REF_LABELS) | {"csl"}
    parts += ["%s %s" % (k, value_text(v, lang)) for k, v in sorted(given.items())
              if k not in known and k != "note" and v]
    return ", ".join(parts)


def law_ref_text(value, lang="en"):
    import re
    m = re.match(r"^art\. ?(\d+)(?:\((\d+)\))?$", value.strip())
    if lang != "zh":
        return "Cybersecurity Law %s" % value
    if not m:
        return "《网络安全法》%s" % value
    return "《网络安全法》第%s条%s" % (m.group(1), "第（%s）项" % m.group(2) if m.group(2) else "")


def item_ids(result):
    return [str(x) for x in as_list(refs(result).get("gbt28448")) if x]


def coverage(report):
    cov = (report.get("summary") or {}).get("coverage")
    return cov if isinstance(cov, dict) else None


def coverage_items(report):
    """Coverage items in clause order (clause, then item id)."""
    cov = coverage(report)
    items = [i for i in (cov or {}).get("items") or [] if isinstance(i, dict)]
    return sorted(items, key=lambda i: (natural_key(scalar_text(i.get("clause"))),
                                        natural_key(scalar_text(i.get("id")))))


def coverage_status(item):
    """automated | partial | manual | not_covered: an automated or partial item none of whose
    rules produced a result in this scan is not covered (as the summary counts it)."""
    status = scalar_text(item.get("status"))
    if status in ("automated", "partial") and item.get("result") is None:
        return "not_covered"
    return status


def group_results(report):
    """Results grouped by GB/T 28448 item in clause order.

    Returns [(item_or_None, [results])]: items from the coverage table first (a result listed by an
    item's rules or naming the item in refs.gbt28448), then items only named in refs, then the
    results with no item (localization, crypto...) under None."""
    results = [r for r in report.get("results") or [] if isinstance(r, dict)]
    by_rule, by_item = {}, {}
    for res in results:
        by_rule.setdefault(res.get("rule_id"), []).append(res)
        for item_id in item_ids(res):
            by_item.setdefault(item_id, []).append(res)
    placed = set()
    groups = []
    known = set()
    for item in coverage_items(report):
        item_id = scalar_text(item.get("id"))
        known.add(item_id)
        members, seen = [], set()
        candidates = [res for rid in as_list(item.get("rules")) for res in by_rule.get(rid, [])]
        for res in candidates + by_item.get(item_id, []):
            if id(res) not in seen:
                members.append(res)
                seen.add(id(res))
        if members:
            groups.append((_group_key(item, False), (item, members)))
            placed.update(seen)
    # items named only in refs, and results that cite a GB/T 22239 clause but no test item
    extra = {}
    for res in results:
        if id(res) in placed:
            continue
        ids = [i for i in item_ids(res) if i not in known]
        clause = scalar_text(refs(res).get("gbt22239"))
        if ids:
            for item_id in ids:
                entry = extra.setdefault(("item", item_id), ({"id": item_id, "clause": clause or None}, []))
                entry[1].append(res)
        elif clause:
            entry = extra.setdefault(("clause", clause), ({"id": None, "clause": clause}, []))
            entry[1].append(res)
        else:
            continue
        placed.add(id(res))
    groups.extend((_group_key(entry[0], kind == "clause"), entry) for (kind, _k), entry in extra.items())
    groups = [g for _key, g in sorted(groups, key=lambda pair: pair[0])]
    rest = [r for r in results if id(r) not in placed]
    if rest:
        rank = dict((s, i) for i, s in enumerate(STATUSES))
        rest.sort(key=lambda r: (rank.get(r.get("status"), 9), natural_key(scalar_text(r.get("rule_id")))))
        groups.append((None, rest))
    return groups


def _group_key(item, clause_only):
    """Clause order; an item without a clause after those with one; test items before a bare clause."""
    clause = natural_key(scalar_text(item.get("clause")))
    return (not clause, clause, clause_only, natural_key(scalar_text(item.get("id"))))


def status_counts(report):
    counts = dict((s, 0) for s in STATUSES)
    given = (report.get("summary") or {}).get("counts") or {}
    if given:
        for key, value in given.items():
            counts[key] = value
        return counts
    for res in report.get("results") or []:
        status = res.get("status")
        counts[status] = counts.get(status, 0) + 1
    return counts


def failed_by_severity(report):
    """{severity: number of failed (not waived) results}: the summary's, else counted."""
    given = (report.get("summary") or {}).get("failed_by_severity")
    if isinstance(given, dict):
        return given
    counts = {}
    for res in report.get("results") or []:
        if isinstance(res, dict) and res.get("status") == "fail":
            sev = scalar_text(res.get("severity"))
            counts[sev] = counts.get(sev, 0) + 1
    return counts


def waived(report):
    """Results that carry a waiver (applied or expired), in rule id order."""
    out = [r for r in report.get("results") or [] if isinstance(r, dict) and isinstance(r.get("waiver"), dict)]
    return sorted(out, key=lambda r: natural_key(scalar_text(r.get("rule_id"))))


def waiver_expiry(waiver):
    return scalar_text(waiver.get("expires") or waiver.get("expiry") or waiver.get("expires_at"))


def percent(rate):
    """0.6667 -> '66.7%'; None -> None."""
    if rate is None:
        return None
    try:
        return "%.1f%%" % (float(rate) * 100)
    except (TypeError, ValueError):
        return None


def score_text(score):
    """Scores are 0..100 with one decimal (engine contract); None when nothing could be judged."""
    if score is None:
        return None
    try:
        return ("%.1f" % float(score)).rstrip("0").rstrip(".")
    except (TypeError, ValueError):
        return scalar_text(score)


class SubstituteNamer(object):
    """Names for substitute product ids: from the report's own components, else the catalog,
    else the id itself (a report from another version may name products this catalog lacks)."""

    def __init__(self, components, lang="en", results=None):
        self.lang = lang
        self.known = {}
        for comp in components or []:
            if isinstance(comp, dict) and comp.get("product_id") and comp.get("name"):
                self.known.setdefault(comp["product_id"], comp["name"])
        # the engine names substitutes in component findings: {"id", "name": {zh, en}}
        for res in results or []:
            for item in as_list(res.get("items") if isinstance(res, dict) else None):
                for sub in as_list(item.get("substitutes") if isinstance(item, dict) else None):
                    if isinstance(sub, dict) and sub.get("id") and sub.get("name"):
                        self.known.setdefault(scalar_text(sub["id"]), sub["name"])
        self.catalog = None

    def names(self, ids):
        out = []
        for sub in as_list(ids):
            if isinstance(sub, dict):
                out.append(pick(sub.get("name"), self.lang) or scalar_text(sub.get("id")))
                continue
            sub = scalar_text(sub)
            if sub in self.known:
                out.append(pick(self.known[sub], self.lang))
                continue
            if self.catalog is None:
                self.catalog = _catalog_or_false()
            product = self.catalog.get(sub) if self.catalog else None
            out.append(pick(product["name"], self.lang) if product else sub)
        return out


def substitute_names(ids, lang="en", components=None):
    return SubstituteNamer(components, lang).names(ids)


def _catalog_or_false():
    try:
        from scanner.catalog import default_catalog
        return default_catalog()
    except Exception:  # a broken or absent catalog must not stop a report from rendering
        return False
