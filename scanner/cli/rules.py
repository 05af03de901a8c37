"""xcscan rules: list, show, lint and test the rule packs."""
from __future__ import absolute_import

import click

from scanner.cli.options import lang_option, resolve_lang


@click.group()
def rules():
    """List, show, lint and test rules / 规则：列出、查看、检查、测试"""


@rules.command("list")
@click.option("--profile", "-p", default=None, metavar="PROFILE", help="Only the rules of this profile / 仅列出该检查方案的规则")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@lang_option
def list_(profile, fmt, lang):
    """List rules / 列出规则"""
    from scanner.engine import load_profile, load_ruleset
    from scanner.engine.evaluator import select_rules
    from scanner.i18n import pick, t
    lang = resolve_lang(lang)
    from scanner.remediate.params import title_text
    ruleset = load_ruleset()
    prof = load_profile(profile) if profile else None
    selected = select_rules(ruleset, prof) if prof else list(ruleset)

    def profile_params(rule):  # the profile's tailoring, so a listed title states the limit it checks
        return prof.params_for(rule) if prof is not None else {}
    if fmt == "json":
        import json
        click.echo(json.dumps([_public(r, profile_params(r)) for r in selected], ensure_ascii=False, indent=2))
        return
    from scanner.render import grid
    from scanner.render.textwidth import terminal_width
    from scanner.render.view import rule_category
    rows = [[r["id"], t("scan.severity." + r["severity"], lang), rule_category(r["category"], lang),
             ",".join(str(x) for x in r.get("levels") or []), pick(title_text(r, profile_params(r)), lang)] for r in selected]
    headers = [t("rules.col." + k, lang) for k in ("id", "severity", "category", "levels", "title")]
    click.echo(grid.render(headers, rows, terminal_width()))


def _public(rule, params):
    from scanner.remediate.params import title_text
    out = dict((k, v) for k, v in rule.items() if k not in ("tests",))
    out["title"] = title_text(rule, params)
    return out


@rules.command()
@click.argument("rule_id")
@lang_option
def show(rule_id, lang):
    """Show one rule as YAML / 查看一条规则"""
    import yaml
    from scanner.engine import load_ruleset
    from scanner.errors import XcscanError
    from scanner.i18n import t
    from scanner.suggest import did_you_mean
    ruleset = load_ruleset()
    rule = ruleset.get(rule_id)
    if rule is None:
        raise XcscanError("%s%s%s%s" % (t("rules.unknown_rule", resolve_lang(lang)),
                                          "：" if resolve_lang(lang) == "zh" else ": ", rule_id,
                                        did_you_mean(rule_id, [r["id"] for r in ruleset], resolve_lang(lang))),
                          hint="`xcscan rules list` shows every rule id")
    click.echo(yaml.safe_dump(dict(rule), allow_unicode=True, sort_keys=False, width=110), nl=False)


@rules.command()
@click.argument("path", required=False, type=click.Path(exists=True))
@lang_option
def lint(path, lang):
    """Check rule files: YAML syntax, fields, check types, fact paths, duplicate ids / 检查规则文件"""
    from scanner.engine.rules import lint as run_lint
    from scanner.i18n import t
    lang = resolve_lang(lang)
    found, problems = run_lint(path)
    if path is None:  # the shipped rules: also the profiles and controls that name them
        from scanner.engine.rules import lint_data
        problems = problems + lint_data(set(r["id"] for r in found))
    for problem in problems:
        click.echo(problem.text(lang))
    if problems:
        click.echo(t("rules.lint_problems", lang, count=len(problems)), err=True)
        click.get_current_context().exit(1)
    click.echo(t("rules.lint_ok", lang, count=len(found)))


@rules.command()
@click.argument("path", required=False, type=click.Path(exists=True))
@click.option("--verbose", "-v", is_flag=True, help="Print every case / 显示每个用例")
@lang_option
def test(path, verbose, lang):
    """Run every rule's embedded pass/fail cases / 运行规则内置的测试用例"""
    from scanner.catalog import default_catalog
    from scanner.engine.rules import lint as run_lint
    from scanner.engine.selftest import missing_groups, run_rule_tests
    from scanner.i18n import pick, t
    lang = resolve_lang(lang)
    found, problems = run_lint(path)
    for problem in problems:
        click.echo(str(problem))
    try:
        catalog = default_catalog()
    except Exception:
        catalog = None
    cases = failed = missing = 0
    for rule in found:
        for group in missing_groups(rule):
            missing += 1
            click.echo(t("rules.test_missing", lang, rule=rule["id"], group=group))
        for group, index, expected, result in run_rule_tests(rule, catalog):
            cases += 1
            ok = result["status"] == expected
            if not ok:
                failed += 1
            if not ok or verbose:
                click.echo(("" if ok else "FAILED ") + t("rules.test_case_failed", lang, rule=rule["id"], group=group,
                                                         index=index, expected=expected, got=result["status"],
                                                         reason=pick(result.get("reason"), lang)))
    if failed or missing or problems:
        click.echo(t("rules.test_failed", lang, failed=failed, cases=cases, missing=missing), err=True)
        click.get_current_context().exit(1)
    click.echo(t("rules.test_ok", lang, rules=len(found), cases=cases))
