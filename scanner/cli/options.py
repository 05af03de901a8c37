"""Options shared by several commands."""
from __future__ import absolute_import

import os

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


def write_output(text, output):
    """Write to a file atomically (temp + rename) or to stdout."""
    if not output or output == "-":
        click.echo(text, nl=False)
        return
    directory = os.path.dirname(os.path.abspath(output)) or "."
    tmp = os.path.join(directory, ".%s.tmp%d" % (os.path.basename(output), os.getpid()))
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, output)
    except (IOError, OSError) as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        from scanner.errors import XcscanError
        raise XcscanError("cannot write output: %s" % (exc.strerror or exc), path=output,
                          hint="check the directory exists, is writable and has free space; "
                               "the previous file, if any, was left untouched")
