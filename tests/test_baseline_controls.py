"""rules/controls/mlps-l2.yaml and mlps-l3.yaml: every GB/T 28448 computing-environment item, mapped to real rules."""
import os

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(level):
    with open(os.path.join(REPO, "rules", "controls", "mlps-l%d.yaml" % level)) as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def ruleset():
    from scanner.engine import load_ruleset
    return load_ruleset(use_cache=False)


def test_level3_lists_every_test_item_once():
    ids = [i["id"] for i in load(3)["items"]]
    assert ids == ["L3-CES1-%02d" % n for n in range(1, 36) if n != 16]


def test_level2_has_no_confidentiality_and_fewer_items():
    items = load(2)["items"]
    assert len(items) == 23
    assert not [i for i in items if i["area"]["en"] == "Data confidentiality"]
    assert [i["clause"] for i in items][:3] == ["7.1.4.1 a)", "7.1.4.1 b)", "7.1.4.1 c)"]


@pytest.mark.parametrize("level", [2, 3])
def test_items_reference_existing_rules_of_that_level(ruleset, level):
    doc = load(level)
    assert doc["standard"] == "GB/T 28448-2019" and doc["level"] == level
    for item in doc["items"]:
        assert item["status"] in ("automated", "partial", "manual")
        assert item["rules"], item["id"]
        for rid in item["rules"]:
            rule = ruleset.get(rid)
            assert rule is not None, (item["id"], rid)
            assert level in (rule.get("levels") or [2, 3]), (item["id"], rid)
        automated = [r for r in item["rules"] if "manual" not in ruleset.get(r)["check"]]
        if item["status"] == "manual":
            assert not automated and item["evidence"]["zh"] and item["evidence"]["en"]
        else:
            assert automated, item["id"]


def test_every_mlps_rule_is_mapped_to_its_own_item(ruleset):
    items = dict((i["id"], i) for i in load(3)["items"])
    for rule in ruleset:
        if not rule["id"].startswith("mlps."):
            continue
        unit = rule["refs"]["gbt28448"]
        assert rule["id"] in items[unit]["rules"], (rule["id"], unit)


def test_at_least_60_automated_level3_checks(ruleset):
    auto = [r for r in ruleset if r["id"].startswith("mlps.") and "manual" not in r["check"]
            and 3 in (r.get("levels") or [2, 3])]
    assert len(auto) >= 60
    areas = set(r["refs"]["gbt28448"] for r in auto)
    # 身份鉴别, 访问控制, 安全审计, 入侵防范, 恶意代码防范, 剩余信息保护 all have automated checks
    for unit in ("L3-CES1-01", "L3-CES1-06", "L3-CES1-12", "L3-CES1-18", "L3-CES1-23", "L3-CES1-32"):
        assert unit in areas


def test_coverage_in_a_level3_scan(tmp_path):
    from scanner.engine.coverage import coverage
    results = [{"rule_id": "mlps.ia.password-max-age", "status": "fail"},
               {"rule_id": "mlps.ia.no-empty-passwords", "status": "pass"}]
    cov = coverage("mlps-l3", results)
    first = cov["items"][0]
    assert first["id"] == "L3-CES1-01" and first["result"] == "fail"
    manual = [i for i in load(3)["items"] if i["status"] == "manual"]
    assert cov["counts"]["manual"] == len(manual) > 0
    assert cov["counts"]["not_covered"] == 34 - len(manual) - 1
