"""`xcscan rules lint` checks the high-risk determination guide (rules/controls/high-risk.yaml) by its own
shape instead of as a standard's controls file: entries with ids, match any|all, rules that exist."""
from scanner.engine.rules import _lint_high_risk


def test_shipped_shape_passes_and_mistakes_are_named(tmp_path):
    good = tmp_path / "high-risk.yaml"
    good.write_text("entries:\n- id: weak-password\n  match: any\n  rules: [mlps.a]\n", encoding="utf-8")
    assert _lint_high_risk(str(good), {"mlps.a"}) == []
    bad = tmp_path / "bad.yaml"
    bad.write_text("entries:\n- id: x\n  match: some\n  rules: [mlps.a, mlps.gone]\n- {rules: []}\n",
                   encoding="utf-8")
    problems = [p.message for p in _lint_high_risk(str(bad), {"mlps.a"})]
    text = " | ".join(problems)
    assert "match must be any or all" in text and "unknown rule 'mlps.gone'" in text and "needs an 'id'" in text
    items = tmp_path / "items.yaml"
    items.write_text("items: []\n", encoding="utf-8")
    assert "'entries' list" in _lint_high_risk(str(items), set())[0].message
