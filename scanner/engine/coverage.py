"""Coverage of a standard's test items (rules/controls/<name>.yaml) by the evaluated rules.

Each control item maps to rules with a status (automated, partial, manual). The
item's result is the worst result of its rules that ran (fail > error > waived >
pass > not_applicable); ``manual`` for manual items; null when none of its rules ran.
"""
from __future__ import absolute_import

import os

ITEM_STATUSES = ("automated", "partial", "manual")
_ORDER = ("fail", "error", "waived", "manual", "pass", "not_applicable")


def controls_path(name):
    from scanner.paths import rules_dir
    if os.sep in name or name.endswith(".yaml"):
        return name
    return os.path.join(rules_dir(), "controls", name + ".yaml")


def load_controls(name):
    from scanner.errors import DataError
    from scanner.yamlio import load_yaml_file
    path = controls_path(name)
    doc = load_yaml_file(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise DataError("a controls file holds a top-level 'items' list", path=path)
    for i, item in enumerate(doc["items"]):
        if not isinstance(item, dict) or not item.get("id"):
            raise DataError("each control item needs an 'id'", path="%s: items[%d]" % (path, i))
        if item.get("status") not in ITEM_STATUSES:
            raise DataError("status must be one of %s" % ", ".join(ITEM_STATUSES),
                            path="%s: items[%d] (%s)" % (path, i, item.get("id")))
    return doc


def coverage(name, results):
    counts = {"automated": 0, "partial": 0, "manual": 0, "not_covered": 0}
    out = {"level": name, "items": [], "counts": counts}
    try:
        doc = load_controls(name)
    except Exception as exc:  # coverage is an add-on: report why it is missing, keep the scan
        out["error"] = str(exc)
        return out
    out["standard"] = doc.get("standard")
    by_id = dict((r["rule_id"], r) for r in results)
    for item in doc["items"]:
        rules = list(item.get("rules") or [])
        ran = [by_id[r]["status"] for r in rules if r in by_id]
        status = item["status"]
        if status == "manual":
            result = "manual"
        elif not ran:
            result = None
        else:
            result = next(s for s in _ORDER if s in ran)
        if status != "manual" and not ran:
            counts["not_covered"] += 1
        else:
            counts[status] += 1
        entry = {"id": item["id"], "clause": item.get("clause"), "area": item.get("area"),
                 "title": item.get("title"), "status": status, "rules": rules, "result": result}
        if item.get("evidence"):
            entry["evidence"] = item["evidence"]
        out["items"].append(entry)
    return out
