"""`xcscan report FILE.json`: render a saved JSON report again (HTML, JUnit, CSV, table, JSON),
e.g. one received from another host, optionally re-evaluated with the current rules."""
from __future__ import absolute_import

import click

from scanner.cli.options import lang_option, resolve_lang
from scanner.cli.output_options import (assessment_option, emit, format_option, load_assessment, output_options,
                                        pop_per_format)


@click.command()
@click.argument("file", metavar="FILE.json")
@format_option("table")
@output_options
@lang_option
@click.option("--reevaluate", is_flag=True, default=False,
              help="Judge the saved facts again with the current catalog and rules / 用当前规则重新评估")
@click.option("--profile", default=None, help="Profile for --reevaluate / 重新评估使用的检查方案")
@click.option("--waivers", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Waivers file for --reevaluate / 重新评估使用的豁免文件")
@assessment_option
def report(file, fmt, outputs, bom, quiet, lang, reevaluate, profile, waivers, assessment, **kwargs):
    """Render a saved JSON report (FILE, or - for stdin) again / 重新生成已保存报告的各种格式"""
    from scanner.errors import XcscanError
    from scanner.i18n import t
    from scanner.report import load_report
    lang = resolve_lang(lang)
    per_format = pop_per_format(kwargs)
    try:
        doc = load_report("/dev/stdin" if file == "-" else file)
    except XcscanError as exc:
        from scanner.i18n import error_text
        raise XcscanError(t("report.load_failed", lang, why=error_text(exc, lang)),
                          hint=None if exc.hint else t("report.load_hint", lang))
    if (profile or waivers) and not reevaluate:
        raise click.UsageError(t("report.needs_reevaluate", lang))
    from scanner.report_check import check_document
    try:
        check_document(doc, path="-" if file == "-" else file, results=not reevaluate)
    except XcscanError as exc:
        from scanner.i18n import error_part
        raise XcscanError(t("report.load_failed", lang, why=error_part(exc.message, lang)), path=exc.path,
                          hint=exc.hint)
    if reevaluate:
        try:
            from scanner.pipeline import evaluate_report
        except ImportError:
            raise XcscanError(t("report.reevaluate_unavailable", lang))
        doc = evaluate_report(doc, profile=profile, waivers=waivers)
    frame = load_assessment(assessment)
    if frame is not None:
        from scanner.assessment_info import apply_manual
        doc["assessment"] = frame     # shown in this rendering; the saved report is not changed
        apply_manual(doc, frame, assessment)
    emit(doc, fmt, lang, outputs, per_format, bom=bom, quiet=quiet)
    from scanner.cli.report_messages import echo_warnings
    echo_warnings(doc, lang)   # notices and waivers naming no rule, on stderr whatever the format
