"""Output options shared by `xcscan scan` and `xcscan report`: one --format to stdout (or a plain
--output FILE), plus any number of extra artefacts from the same report."""
from __future__ import absolute_import

import click

from scanner.render.outputs import FORMATS


def format_option(default="table"):
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default=default, show_default=True,
                        help="Output format / 输出格式")


def quiet_option(f):
    return click.option("--quiet", "-q", is_flag=True, default=False,
                        help="Do not say which files were written / 不提示已写入的文件")(f)


def announcer(lang, quiet):
    """The "wrote PATH" line on stderr for each output file, unless --quiet."""
    if quiet:
        return None
    from scanner.i18n import t
    return lambda path: click.echo(t("output.wrote", lang, path=path), err=True)


def output_options(f):
    f = quiet_option(f)
    f = click.option("--bom", is_flag=True, default=False,
                     help="CSV: start with a UTF-8 byte order mark so Excel reads Chinese correctly "
                          "/ CSV 以 UTF-8 BOM 开头，便于 Excel 正确显示中文")(f)
    for fmt in reversed(FORMATS):
        f = click.option("--output-%s" % fmt, "output_%s" % fmt, metavar="FILE", default=None,
                         help="Also write the %s report to FILE / 同时输出 %s 报告到文件" % (fmt, fmt))(f)
    f = click.option("--output", "-o", "outputs", multiple=True, metavar="[FORMAT:]FILE",
                     help="Write to FILE instead of stdout; FORMAT:FILE (repeatable) writes another format too, "
                          "e.g. -o html:r.html -o junit:r.xml / 输出到文件；可重复使用 FORMAT:FILE 同时输出多种格式")(f)
    return f


def assessment_option(f):
    return click.option("--assessment", "assessment", type=click.Path(dir_okay=False, exists=True), default=None,
                        metavar="FILE",
                        help="The working paper's frame (organization, system, level, assessors, time zone...) "
                             "shown in the HTML report, see docs/reports.md / 测评基本信息文件")(f)


def load_assessment(path):
    """The checked --assessment file, or None (errors name the file and the field)."""
    if not path:
        return None
    from scanner.assessment_info import load
    return load(path)


def pop_per_format(kwargs):
    """Take the --output-<format> values out of a command's kwargs: {format: path}."""
    return dict((fmt, kwargs.pop("output_%s" % fmt, None)) for fmt in FORMATS)


def check_outputs(fmt, lang, outputs=(), per_format=None, bom=False):
    """Validate the output options (before any slow work); returns the (format, path) plan."""
    from scanner.i18n import t
    from scanner.render.outputs import plan
    targets = plan(fmt, outputs, per_format)
    if bom and not any(f == "csv" for f, _p in targets):
        raise click.UsageError(t("report.bom_only_csv", lang))
    return targets


def emit(report, fmt, lang, outputs=(), per_format=None, bom=False, quiet=False):
    """Render the report in every requested format and write them all (atomically as a set)."""
    from scanner.render.outputs import render_all, write_files
    targets = check_outputs(fmt, lang, outputs, per_format, bom)
    write_files(render_all(report, targets, lang, bom=bom), announce=announcer(lang, quiet))
    return targets
