"""Command line (click). Sub-commands live one module each and are imported only when used,
so `xcscan inventory` never pays for the server's imports."""
from __future__ import absolute_import

import importlib
import importlib.util
import sys

import click

from scanner import __version__

# command name -> "module:attribute"
COMMANDS = {
    "inventory": "scanner.cli.inventory:inventory",
    "scan": "scanner.cli.scan:scan",
    "rules": "scanner.cli.rules:rules",
    "report": "scanner.cli.report:report",
    "fix": "scanner.cli.fix:fix",
    "agent": "scanner.cli.agent:agent",
    "server": "scanner.cli.server:server",
}


def _available(name):
    module = COMMANDS[name].split(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(n for n in COMMANDS if _available(n))

    def get_command(self, ctx, name):
        if name not in COMMANDS or not _available(name):
            return None
        module, attr = COMMANDS[name].split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        finally:
            from scanner.launch import settle
            settle()   # the collector's thresholds as before start-up (scanner/launch.py)

    def invoke(self, ctx):
        from scanner.errors import XcscanError
        args = _args_of(ctx)      # click empties them when it hands them to the sub-command
        try:
            return super(LazyGroup, self).invoke(ctx)
        except XcscanError as exc:
            lang = _lang_of(args)
            if lang == "zh":
                from scanner.i18n import error_text
                click.echo("xcscan：错误：%s" % error_text(exc, lang), err=True)
            else:
                click.echo("xcscan: error: %s" % exc, err=True)
            ctx.exit(exc.exit_code)
        except click.UsageError as exc:
            # our own usage errors (give one target, --ca or --fingerprint...) and click's (a --waivers file
            # that does not exist, a misspelt option) in Chinese too; one without an entry is shown by click
            if _lang_of(args) == "zh":
                from scanner.i18n import error_part
                original = exc.format_message()
                text = error_part(original)
                if text != original:
                    click.echo("xcscan：错误：%s（“%s -h”显示用法）" % (
                        text, exc.ctx.command_path if exc.ctx else "xcscan"), err=True)
                    ctx.exit(exc.exit_code)
            raise
        except OSError as exc:
            if getattr(exc, "errno", None) == 28:  # ENOSPC
                click.echo("xcscan: error: no space left on device%s; nothing was overwritten"
                           % (" (%s)" % exc.filename if exc.filename else ""), err=True)
                ctx.exit(1)
            raise


def _args_of(ctx):
    import warnings
    with warnings.catch_warnings():          # click 8.2 deprecates the attribute, not the data
        warnings.simplefilter("ignore")
        protected = getattr(ctx, "protected_args", None) or []
    return list(protected) + list(ctx.args or [])


def _lang_of(args):
    """The language the failed command was asked for: its --lang, else the locale."""
    for i, arg in enumerate(args):
        if arg == "--lang" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
    from scanner.i18n import default_lang
    return default_lang()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xcscan")
def cli():
    """xcscan: 信创 localization and MLPS 2.0 (等保2.0) compliance scanner.

    国产化（信创）与等保2.0合规扫描工具。
    """


def main(argv=None):
    from scanner import recache
    if not recache.installed():
        recache.install()  # the regular expressions earlier runs compiled (scanner/recache.py)
    try:
        cli.main(args=argv, prog_name="xcscan")
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        recache.save()
        # The process ends here. Interpreter shutdown runs the cyclic collector over every live object
        # (~36 M instructions, the modules' functions and classes mostly: ~4% of a scan); moved to the
        # permanent generation they are only freed (by reference counts, as usual), not traversed.
        # Standard streams are flushed and atexit handlers run as always; no file is left open here.
        import gc
        gc.freeze()
