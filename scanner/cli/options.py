"""Options shared by several commands."""
from __future__ import absolute_import


import click

from scanner.i18n import LANGS


def lang_option(f):
    return click.option("--lang", type=click.Choice(LANGS), default=None,
                        help="Output language (default from LANG) / 输出语言（默认取自 LANG）")(f)


def root_option(f):
    return click.option("--root", type=click.Path(file_okay=False, dir_okay=True, exists=True,
                                                  resolve_path=True),
                        default="/", show_default=True,
                        help="Scan a mounted image or container filesystem instead of the live host "
                             "/ 扫描已挂载的镜像或容器文件系统")(f)


def resolve_lang(lang):
    from scanner.i18n import default_lang
    return lang or default_lang()
