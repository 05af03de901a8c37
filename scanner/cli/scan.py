"""xcscan scan: inventory + rule evaluation, with an exit code for CI and cron."""
from __future__ import absolute_import

import click

from scanner.cli.options import (check_target, image_option, lang_option, mark_image, mark_unknown_os,
                                 resolve_lang, root_option, scan_target, unknown_os_option)
from scanner.cli.output_options import (assessment_option, check_outputs, emit, load_assessment, output_options,
                                        pop_per_format)
from scanner.cli.remote import pop_ssh, ssh_options
from scanner.engine import SEVERITIES
from scanner.render import RENDERERS

EXIT_FINDINGS = 3


@click.command()
@root_option
@image_option
@ssh_options
@unknown_os_option
@click.option("--profile", "-p", default="all", show_default=True, metavar="PROFILE",
              help="Rule profile: xinchuang, mlps-l2, mlps-l3, crypto, data-security, all (or a profile "
                   "YAML file) / 检查方案")
@click.option("--waivers", "waivers", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Waivers YAML file (rule, hosts, justification, approver, expires) / 豁免文件")
@click.option("--format", "fmt", type=click.Choice(sorted(RENDERERS)), default="table", show_default=True,
              help="Output format / 输出格式")
@output_options
@click.option("--fail-on", "fail_on", type=click.Choice(SEVERITIES), default=None,
              help="Exit 3 when a failed rule (not waived) has this severity or higher; without it findings "
                   "never change the exit code / 存在该严重程度及以上的不符合规则时退出码为 3")
@lang_option
@assessment_option
def scan(root, image, allow_unknown_os, profile, waivers, fmt, outputs, bom, quiet, fail_on, lang, assessment,
         **per_format):
    """Scan the host (or --root DIR) against a rule profile / 按检查方案扫描主机"""
    from scanner.pipeline import scan_report
    lang = resolve_lang(lang)
    ssh = pop_ssh(per_format)
    per_format = pop_per_format(per_format)
    check_outputs(fmt, lang, outputs, per_format, bom)  # a bad --output fails before the scan
    frame = load_assessment(assessment)                  # and so does a bad --assessment file
    if ssh["ssh"] or ssh["ssh_list"]:
        from scanner.cli import remote
        if root not in (None, "/") or image or (ssh["ssh"] and ssh["ssh_list"]):
            raise click.UsageError("give one target: --root, --image, --ssh or --ssh-list")
        args = remote.remote_args(profile, allow_unknown_os)
        if ssh["ssh_list"]:
            click.get_current_context().exit(remote.run_list(ssh, args, profile, waivers, fail_on, quiet, lang))
        report = remote.one(ssh["ssh"], ssh, args, profile, waivers)
        os_found = True
        img = None
    else:
        with scan_target(root, image) as (target, img):
            os_found = check_target(target, allow_unknown_os, img)
            report = scan_report(root=target, profile=profile, waivers=waivers)
        from scanner.privilege import mark_unprivileged
        mark_unprivileged(report)   # not root: say so at the top, and which rules it cost
    mark_image(report, img)
    if not os_found:
        mark_unknown_os(report, img.path if img else root)
    if frame is not None:
        from scanner.assessment_info import apply_manual
        report["assessment"] = frame
        apply_manual(report, frame, assessment)
    emit(report, fmt, lang, outputs, per_format, bom=bom, quiet=quiet)
    from scanner.cli.report_messages import echo_warnings, fail_on_line
    echo_warnings(report, lang)
    code = exit_code(report, fail_on)
    if code:
        click.echo("xcscan: %s" % fail_on_line(report, fail_on, lang), err=True)
        click.get_current_context().exit(code)


def exit_code(report, fail_on):
    """0, or 3 when an unwaived failure is at or above ``fail_on``."""
    if not fail_on:
        return 0
    from scanner.engine import severity_rank
    threshold = severity_rank(fail_on)
    for result in report.get("results") or []:
        if result.get("status") == "fail" and severity_rank(result.get("severity")) >= threshold:
            return EXIT_FINDINGS
    return 0
