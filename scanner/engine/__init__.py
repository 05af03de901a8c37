"""The rule engine: YAML rules (rules/checks/<area>/*.yaml) evaluated over facts.

Public entry points::

    from scanner.engine import load_ruleset, load_profile, load_waivers, evaluate

The check vocabulary is closed and typed (scanner/engine/checks.py); nothing in a
rule is ever evaluated as code. docs/rules.md is the contract for rule authors.
"""
from __future__ import absolute_import

STATUSES = ("pass", "fail", "error", "not_applicable", "manual", "waived")
SEVERITIES = ("info", "low", "medium", "high", "critical")
CATEGORIES = ("localization", "baseline", "crypto", "data-security")


def severity_rank(severity):
    """0 (info) .. 4 (critical); unknown severities rank as medium."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        return 2


def load_ruleset(directory=None, use_cache=True):
    from scanner.engine.rules import load_ruleset as _load
    return _load(directory, use_cache=use_cache)


def load_profile(name_or_path, directory=None):
    from scanner.engine.profiles import load_profile as _load
    return _load(name_or_path, directory)


def load_waivers(path):
    from scanner.engine.waivers import load_waivers as _load
    return _load(path)


def evaluate(facts, inventory, ruleset, profile=None, waivers=None, host=None, now=None, catalog=None):
    from scanner.engine.evaluator import evaluate as _evaluate
    return _evaluate(facts, inventory, ruleset, profile=profile, waivers=waivers, host=host, now=now,
                     catalog=catalog)


def facts_read(ruleset, profile=None):
    """Top-level fact names read by the rules ``profile`` selects (check, applies_to, evidence):
    what the scan must collect, e.g. to decide whether an on-demand collector runs. ``ruleset``: a
    RuleSet (its rules' names come with the rules cache, scanner/engine/rules.py) or a list of rules."""
    from scanner.engine.evaluator import select_rules
    kept = getattr(ruleset, "fact_names", None) or {}
    names = set()
    for rule in select_rules(ruleset, profile):
        got = kept.get(rule["id"])
        names.update(rule_fact_names(rule) if got is None else got)
    return names


def rule_fact_names(rule):
    """The top-level fact names one rule reads (sorted list)."""
    names = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("fact", "for_each") and isinstance(value, str):
                    names.add(value[2:].split(".", 1)[0] if value.startswith("$.") else value.split(".", 1)[0])
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(rule.get("check"))
    walk(rule.get("applies_to"))
    for path in rule.get("evidence_facts") or ():
        names.add(path.split(".", 1)[0])
    return sorted(names)
