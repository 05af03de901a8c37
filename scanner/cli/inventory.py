"""`xcscan inventory`: what the host is built from, and which parts are domestic."""
from __future__ import absolute_import

import click

from scanner.cli.options import (check_target, image_option, lang_option, mark_image, mark_unknown_os,
                                 resolve_lang, root_option, scan_target, unknown_os_option)
from scanner.cli.output_options import announcer, quiet_option


@click.command()
@root_option
@image_option
@unknown_os_option
@click.option("--format", "fmt", type=click.Choice(["table", "json", "html"]), default="table", show_default=True,
              help="Output format / 输出格式")
@click.option("--output", "-o", default=None, help="Write to this file instead of stdout / 输出到文件")
@quiet_option
@lang_option
def inventory(root, image, allow_unknown_os, fmt, output, quiet, lang):
    """Inventory OS, CPU, server, storage, accelerators and software / 资产清单"""
    from scanner.pipeline import inventory_report
    from scanner.render.outputs import write_report
    from scanner.render.outputs import plan
    lang = resolve_lang(lang)
    outputs = [output] if output else ()
    plan(fmt, outputs)   # a bad --output fails before the inventory
    with scan_target(root, image) as (target, img):
        os_found = check_target(target, allow_unknown_os, img)
        report = inventory_report(root=target)
    mark_image(report, img)
    if not os_found:
        mark_unknown_os(report, img.path if img else root)
    write_report(report, fmt, lang, outputs=outputs, announce=announcer(lang, quiet))
