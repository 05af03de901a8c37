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


def unknown_os_option(f):
    return click.option("--allow-unknown-os", "allow_unknown_os", is_flag=True, default=False,
                        help="Scan --root even when no operating system is found there (the report says so "
                             "at the top) / 即使 --root 下未找到操作系统也进行扫描")(f)


def check_target(root, allow_unknown_os):
    """Exit 1 when --root holds no recognisable OS (unless allowed); True when one was found."""
    from scanner.target import require_os
    return require_os(root, allow_unknown_os)


def mark_unknown_os(report, root):
    from scanner import notices
    notices.add(report, "unknown_os", root=root)
