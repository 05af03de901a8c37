"""xcscan fix: from finding to fix (加固/整改) — dry-run diff, bash or Ansible script, guarded apply,
rollback. Never changes anything without --apply."""
from __future__ import absolute_import

import os
import sys

import click

from scanner.cli.options import check_target, lang_option, resolve_lang, root_option, unknown_os_option
from scanner.engine import SEVERITIES

EXIT_FINDINGS = 3
DEFAULT_BACKUP_DIR = "/var/lib/xcscan/fix"


def _default_lock():
    try:
        from scanner.agent.config import load
        return os.path.join(load(must_be_enrolled=False).state_path, "agent.lock")
    except Exception:  # an unreadable agent config must not stop a fix: use the default state dir
        return "/var/lib/xcscan/agent.lock"


@click.command()
@root_option
@unknown_os_option
@click.option("--report", "report_file", type=click.Path(dir_okay=False), default=None, metavar="FILE.json",
              help="Fix the failures of this saved report instead of scanning first / 按已保存报告中的不符合项整改")
@click.option("--profile", "-p", default=None, metavar="PROFILE",
              help="Profile to scan with and select from (default: the report's, else all) / 检查方案")
@click.option("--rule", "rule_globs", multiple=True, metavar="ID",
              help="Only these rules (id or glob; repeatable) / 只整改这些规则")
@click.option("--severity", type=click.Choice(SEVERITIES), default=None,
              help="Only failures of this severity or higher / 只整改该级别及以上")
@click.option("--every", is_flag=True, default=False,
              help="Every rule of the profile that has a fix, failed or not, without scanning (fleet scripts) "
                   "/ 不扫描，包含方案中所有可自动整改的规则")
@click.option("--allow", "allow", multiple=True, metavar="ID",
              help="Opt in to a dangerous fix, one rule id each (repeatable) / 明确允许某条高风险整改")
@click.option("--dry-run", "dry_run", is_flag=True, default=False,
              help="Show the changes as a unified diff per file and the commands (the default) / 只显示将要做的修改")
@click.option("--script", "script", type=click.Choice(["bash", "ansible"]), default=None,
              help="Write a POSIX-shell script or an Ansible playbook / 生成加固脚本或 Ansible 剧本")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False), default=None,
              help="Where --script writes (default: standard output) / 脚本输出文件")
@click.option("--apply", "do_apply", is_flag=True, default=False,
              help="Apply on this host (or --root), with backups and a rollback script, then rescan "
                   "/ 在本机执行整改（先备份，可回退），随后复查")
@click.option("--backup-dir", type=click.Path(file_okay=False), default=None,
              help="Where --apply keeps backups and the rollback script (default /var/lib/xcscan/fix, "
                   "inside the root with --root) / 备份目录")
@click.option("--lock", "lock_path", type=click.Path(dir_okay=False), default=None,
              help="Lock file shared with `xcscan agent run` (default: the agent's state_dir/agent.lock) / 锁文件")
@click.option("--rollback", "rollback_dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Undo an earlier --apply run (its directory) / 回退一次整改")
@click.option("--coverage", is_flag=True, default=False,
              help="List which rules have automated, dangerous (opt-in) or manual fixes / 列出各规则的整改方式")
@lang_option
def fix(root, allow_unknown_os, report_file, profile, rule_globs, severity, every, allow, dry_run, script, output, do_apply,
        backup_dir, lock_path, rollback_dir, coverage, lang):
    """Fix failed rules: dry-run diff, bash/Ansible script, or --apply with rollback / 整改不符合项（加固）"""
    from scanner.i18n import t
    lang = resolve_lang(lang)
    modes = [m for m, on in (("--dry-run", dry_run), ("--script", script), ("--apply", do_apply),
                             ("--rollback", rollback_dir), ("--coverage", coverage)) if on]
    if len(modes) > 1:
        raise click.UsageError(t("fix.one_mode", lang, modes=", ".join(modes)))
    if rollback_dir:
        return _rollback(rollback_dir, lock_path, lang)
    if script and output:
        from scanner.render.output_target import resolve
        resolve(output)          # a directory, socket or planted link is refused before scanning
    from scanner.engine import load_profile, load_ruleset
    ruleset = load_ruleset()
    if coverage:
        return _coverage(ruleset, lang)
    _check_rule_ids(ruleset, rule_globs, allow, lang)
    if report_file and every:
        raise click.UsageError(t("fix.report_or_every", lang))
    if not (script and (report_file or every)):
        # the root is scanned or changed: an empty or unmounted mount point is not a system to fix
        # (an --apply there would write a made-up /etc under the mount point)
        check_target(root, allow_unknown_os)
    report = None
    if report_file:
        report = _load_report(report_file, lang)
        if not profile:
            # the report's own profile when it is a shipped one (a tailored file is not in the report:
            # its params are, per result); --profile FILE rescans with the same tailoring
            from scanner.engine.profiles import list_profiles
            named = (report.get("summary") or {}).get("profile")
            profile = named if named in list_profiles() else "all"
    profile = profile or "all"
    prof = load_profile(profile)
    if report is None and not every:
        from scanner.pipeline import scan_report
        click.echo(t("fix.scanning", lang, profile=profile), err=True)
        report = scan_report(root=root, profile=profile)
    from scanner.remediate.select import select
    sel = select(ruleset, report=report, profile=prof, rule_globs=rule_globs, min_severity=severity,
                 allow=allow, every=every)
    _explain_selection(sel, lang)
    if script:
        return _script(sel, script, output, lang)
    if not sel.items:
        click.echo(t("fix.nothing", lang), err=True)
        return
    from scanner.remediate.planner import in_chroot, plan
    if os.path.abspath(root or "/") == "/" and in_chroot():
        click.echo(t("fix.chroot", lang), err=True)
    the_plan = plan(root, sel.items)
    problems = _validate(the_plan)
    if not do_apply:
        from scanner.remediate.diff import render
        sys.stdout.write(render(the_plan, lang))
        if problems:
            _refuse(problems, lang)
        return
    if problems:
        _refuse(problems, lang)
    _apply(the_plan, root, prof, profile, backup_dir, lock_path, lang)


def _check_rule_ids(ruleset, rule_globs, allow, lang):
    """A --rule that matches no rule, or an --allow naming no rule, is a typo: say so with the
    nearest ids instead of quietly fixing nothing (or not opting in)."""
    import fnmatch
    from scanner.errors import XcscanError
    from scanner.i18n import t
    from scanner.suggest import did_you_mean
    ids = [r["id"] for r in ruleset]
    for pattern in rule_globs:
        if not any(fnmatch.fnmatchcase(rule_id, pattern) for rule_id in ids):
            raise XcscanError(t("fix.unknown_rule", lang, pattern=pattern, suggestion=did_you_mean(pattern, ids, lang)),
                              hint=t("fix.unknown_rule_hint", lang))
    for rule_id in allow:
        if rule_id not in ids:
            raise XcscanError(t("fix.unknown_allow", lang, rule=rule_id, suggestion=did_you_mean(rule_id, ids, lang)),
                              hint=t("fix.unknown_rule_hint", lang))


def _load_report(path, lang):
    from scanner.errors import XcscanError
    from scanner.i18n import t
    from scanner.report import load_report
    try:
        return load_report("/dev/stdin" if path == "-" else path)
    except XcscanError as exc:
        from scanner.i18n import error_text
        raise XcscanError(t("report.load_failed", lang, why=error_text(exc, lang)),
                          hint=None if exc.hint else t("report.load_hint", lang))


def _explain_selection(sel, lang):
    from scanner.i18n import pick, t
    for rule in sel.needs_opt_in:
        click.echo(t("fix.needs_opt_in", lang, rule=rule["id"], why=pick(rule["fix"]["dangerous"], lang)), err=True)
    for rule in sel.manual:
        click.echo(t("fix.manual", lang, rule=rule["id"], why=pick(rule["fix"]["manual"], lang)), err=True)
    for rule, reason in sel.cannot:
        click.echo(t("fix.skipped_rule", lang, rule=rule["id"], why=pick(reason, lang)), err=True)
    for rule in sel.os_mismatch:
        click.echo(t("fix.os_mismatch", lang, rule=rule["id"]), err=True)
    if sel.no_fix:
        click.echo(t("fix.no_fix", lang, count=len(sel.no_fix), rules=", ".join(sel.no_fix)), err=True)


def _validate(the_plan):
    from scanner.remediate.validate import pam_problems, sshd_problems
    problems = []
    changed = [path for path, before, after in the_plan.changes()]
    # by the files a plan changes, whichever action changes them (a `lines` or `set_key` into
    # /etc/pam.d or an sshd drop-in is validated like the pam_arg and sshd actions)
    if the_plan.touches_sshd():
        problems += sshd_problems(the_plan.overlay)
    problems += pam_problems(the_plan.overlay, changed)
    return problems


def _refuse(problems, lang):
    from scanner.errors import XcscanError
    from scanner.i18n import t
    for problem in problems:
        click.echo("  " + problem, err=True)
    raise XcscanError(t("fix.refused", lang, count=len(problems)), hint=t("fix.refused_hint", lang))


def _script(sel, kind, output, lang):
    from scanner.i18n import t
    if kind == "bash":
        from scanner.remediate.bash import render
    else:
        from scanner.remediate.ansible import render
    text = render(sel.items, lang=lang)
    if output:
        # /dev/null, a FIFO or a symlink is written through, never replaced (scanner/render/output_target.py)
        from scanner.render.output_target import open_output
        with open_output(output, mode=0o700 if kind == "bash" else 0o600) as fh:
            fh.write(text.encode("utf-8"))
        click.echo(t("fix.script_written", lang, path=output, count=len(sel.items)), err=True)
    else:
        sys.stdout.write(text)


def _apply(the_plan, root, prof, profile, backup_dir, lock_path, lang):
    from scanner.i18n import pick, t
    from scanner.remediate.apply import apply_plan
    for rp in the_plan.rules:
        if rp.skipped:
            click.echo(t("fix.skipped_rule", lang, rule=rp.rule_id, why=pick(rp.skipped, lang)), err=True)
    if backup_dir is None:
        backup_dir = DEFAULT_BACKUP_DIR if root == "/" else os.path.join(root, DEFAULT_BACKUP_DIR.lstrip("/"))
    run_dir = apply_plan(the_plan, os.path.abspath(backup_dir), lock_path=lock_path or _default_lock())
    changed = len(the_plan.changes())
    click.echo(t("fix.applied", lang, changes=changed, dir=run_dir), err=True)
    # verify: rescan and judge the rules that were fixed
    from scanner.pipeline import scan_report
    fixed = [rp.rule_id for rp in the_plan.applicable()]
    after = scan_report(root=root, profile=profile)
    status = dict((r["rule_id"], r["status"]) for r in after.get("results") or [])
    still = []
    for rule_id in fixed:
        st = status.get(rule_id, "not_applicable")
        click.echo("  %-48s %s" % (rule_id, t("scan.status." + st, lang)))
        if st == "fail":
            still.append(rule_id)
    if still:
        click.echo(t("fix.still_failing", lang, count=len(still), rules=", ".join(still)), err=True)
        click.get_current_context().exit(EXIT_FINDINGS)


def _rollback(run_dir, lock_path, lang):
    from scanner.i18n import t
    from scanner.remediate.apply import rollback
    count = rollback(os.path.abspath(run_dir), lock_path=lock_path or _default_lock())
    click.echo(t("fix.rolled_back", lang, count=count, dir=run_dir), err=True)


def _coverage(ruleset, lang):
    from scanner.i18n import pick, t
    from scanner.remediate.select import coverage
    cov = coverage(ruleset)
    for kind in ("automated", "dangerous", "manual"):
        click.echo("%s (%d)" % (t("fix.kind." + kind, lang), len(cov[kind])))
        for rule_id in cov[kind]:
            click.echo("  " + rule_id)
    click.echo("%s (%d)" % (t("fix.kind.none", lang), len(cov["none"])))
    groups = []  # reasons in the order the data file gives them, each with its rules
    for rule_id in cov["none"]:
        why = pick(cov["why"][rule_id], lang) if cov["why"][rule_id] else t("fix.why_unknown", lang)
        if why not in [g[0] for g in groups]:
            groups.append((why, []))
        dict(groups)[why].append(rule_id)
    for why, rule_ids in groups:
        click.echo("  %s (%d)" % (why, len(rule_ids)))
        for rule_id in rule_ids:
            click.echo("    " + rule_id)
