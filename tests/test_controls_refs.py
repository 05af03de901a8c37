"""A rule's GB/T 28448 item must be the item the controls file gives for its GB/T 22239 clause,
and every MLPS-relevant rule that cites a level-3 clause must be listed under that item."""
import glob
import os

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _controls(level):
    with open(os.path.join(REPO, "rules", "controls", "mlps-l%d.yaml" % level), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _rules():
    for path in sorted(glob.glob(os.path.join(REPO, "rules", "checks", "**", "*.yaml"), recursive=True)):
        with open(path, encoding="utf-8") as fh:
            yield path, yaml.safe_load(fh)


def test_gbt28448_item_matches_the_22239_clause():
    by_clause = {it["clause"]: it for it in _controls(3)["items"]}
    wrong = []
    for path, rule in _rules():
        refs = rule.get("refs") or {}
        clause = refs.get("gbt22239")
        clause = clause[0] if isinstance(clause, list) and clause else clause
        if clause in by_clause and refs.get("gbt28448") != by_clause[clause]["id"]:
            wrong.append("%s: %s cites %s, controls say %s" % (
                os.path.relpath(path, REPO), clause, refs.get("gbt28448"), by_clause[clause]["id"]))
    assert not wrong, "\n".join(wrong)


def test_baseline_crypto_and_data_rules_are_mapped_to_their_item():
    items = {it["id"]: set(it.get("rules") or []) for it in _controls(3)["items"]}
    missing = []
    for path, rule in _rules():
        area = rule["id"].split(".")[0]
        item = (rule.get("refs") or {}).get("gbt28448")
        if area in ("mlps", "crypto", "data-security") and item in items and rule["id"] not in items[item]:
            missing.append("%s not listed under %s" % (rule["id"], item))
    assert not missing, "\n".join(missing)
