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


def test_no_two_remediations_truncate_one_file():
    """An officer follows the remediation of each failing rule in turn: two rules that both write
    `> FILE` keep only the last one's line (the sysctl rules once all truncated one drop-in). A shared
    file is appended to (`>>`); a file only one rule writes may be truncated."""
    import collections
    import re
    writers = collections.defaultdict(set)
    for rule in RULES:
        for text in rule["remediation"].values():
            for path in re.findall(r"(?<![>])>\s*(/[\w./-]+)", text):
                writers[path].add(rule["id"])
    shared = {p: sorted(ids) for p, ids in writers.items() if len(ids) > 1}
    assert shared == {}


def test_sysctl_remediations_use_the_drop_in_the_fixer_writes():
    """The text an officer types and `xcscan fix` write one file, named to sort after 99-sysctl.conf (the
    /etc/sysctl.conf link) so that systemd-sysctl applies it last (sysctl.d(5): lexical order, later wins)."""
    from scanner.remediate.planner import SYSCTL_DROPIN
    sysctl_rules = [r for r in RULES if r["id"].startswith("mlps.ip.sysctl-")]
    assert len(sysctl_rules) >= 10
    for rule in sysctl_rules:
        for text in rule["remediation"].values():
            assert ">> %s" % SYSCTL_DROPIN in text, rule["id"]
    assert sorted(["99-sysctl.conf", SYSCTL_DROPIN.rsplit("/", 1)[1]])[-1] != "99-sysctl.conf"
