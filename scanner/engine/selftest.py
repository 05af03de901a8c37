"""Run each rule's embedded test cases (``xcscan rules test``).

A case is a facts fragment (plus optional inventory, params, live, now); the
group it sits in (pass, fail, error, not_applicable, manual) is the status the
rule must give. Top-level facts present in the fragment count as collected
("ok", or "unknown" when null) unless the case sets ``facts.collection``.
"""
from __future__ import absolute_import

import copy

from scanner.engine.evaluator import evaluate_rule


def case_inputs(case):
    facts = copy.deepcopy(case.get("facts") or {})
    collection = facts.setdefault("collection", {})
    for key, value in facts.items():
        if key in ("collection", "errors", "schema"):
            continue
        collection.setdefault(key, {"status": "ok" if value is not None else "unknown"})
    facts.setdefault("errors", [])
    inventory = copy.deepcopy(case.get("inventory"))
    if isinstance(inventory, dict):
        inventory.setdefault("components", [])
        for comp in inventory["components"]:
            comp.setdefault("substitutes", [])
            comp.setdefault("details", {})
        if "localization" not in inventory:
            from scanner.inventory import localization
            inventory["localization"] = localization(inventory["components"])
    elif inventory is None:
        inventory = {"components": [], "localization": {"rate": None, "by_category": {}}}
    return facts, inventory


def _now(case):
    if case.get("now") is None:
        return None
    from scanner.engine.ops import as_date
    return as_date(case["now"] if not hasattr(case["now"], "isoformat") else case["now"])


def rule_tests(rule):
    """The rule's embedded test cases: its own ``tests`` (a rule from ``lint``), else read from its
    rule file (a loaded rule set leaves them out: scanner.engine.rules.load_ruleset)."""
    if "tests" in rule:
        return rule.get("tests") or {}
    source = rule.get("source")
    if not source:
        return {}
    from scanner.yamlio import load_yaml_text
    with open(source, "rb") as fh:
        doc = load_yaml_text(fh.read().decode("utf-8"), source)  # as lint reads it (no YAML cache)
    tests = doc.get("tests") if isinstance(doc, dict) else None
    return tests if isinstance(tests, dict) else {}


def run_rule_tests(rule, catalog=None):
    """[(group, index, expected_status, got_result)] for every case of ``rule``."""
    out = []
    for group, cases in sorted(rule_tests(rule).items()):
        for i, case in enumerate(cases or []):
            facts, inventory = case_inputs(case)
            params = dict(rule.get("params") or {})
            params.update(case.get("params") or {})
            result = evaluate_rule(rule, facts, inventory, params=params, live=case.get("live"),
                                   now=_now(case), catalog=catalog)
            out.append((group, i, group, result))
    return out


def missing_groups(rule):
    tests = rule_tests(rule)
    manual = isinstance(rule.get("check"), dict) and "manual" in rule["check"]
    need = ("manual",) if manual else ("pass", "fail")
    return [g for g in need if not tests.get(g)]
