"""Every shipped rule: lint-clean, with pass and fail cases that give the expected status (`xcscan rules test`)."""
import pytest
from click.testing import CliRunner

from scanner.cli import cli
from scanner.engine.rules import lint
from scanner.engine.selftest import missing_groups, run_rule_tests

RULES, PROBLEMS = lint()


def test_shipped_rules_lint_clean():
    assert [str(p) for p in PROBLEMS] == []
    assert len(RULES) >= 15


@pytest.mark.parametrize("rule", RULES, ids=[r["id"] for r in RULES])
def test_rule_embedded_cases(rule):
    assert missing_groups(rule) == [], "rule lacks a required test case group"
    for group, index, expected, result in run_rule_tests(rule):
        assert result["status"] == expected, "%s tests.%s[%d]: got %s (%s)" % (
            rule["id"], group, index, result["status"], (result.get("reason") or {}).get("en"))
        assert result["reason"] is None or (result["reason"]["zh"] and result["reason"]["en"])


def test_every_rule_has_bilingual_text_and_refs_shape():
    for rule in RULES:
        for field in ("title", "remediation"):
            assert rule[field]["zh"] and rule[field]["en"], rule["id"]
        assert isinstance(rule.get("refs"), dict)


def test_rules_test_command_runs_everything():
    res = CliRunner().invoke(cli, ["rules", "test", "--lang", "en"])
    assert res.exit_code == 0, res.output
    assert "all passed" in res.output
