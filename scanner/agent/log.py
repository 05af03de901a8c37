"""Agent messages: warnings and errors to stderr, everything to syslog when asked.

Quiet by default: a successful run prints exactly one summary line.
"""
from __future__ import absolute_import

import sys

IDENT = "xcscan-agent"


PREFIX = {"en": ("xcscan agent: ", "warning: ", "error: "),
          "zh": ("xcscan 代理：", "警告：", "错误：")}


class AgentLog(object):
    """``lang`` is the language of every line it writes (terminal and syslog); the callers pass
    catalogue texts (scanner/locale, t()) in that language and errors through ``error``, which
    gives an XcscanError in that language (scanner/locale/errors.zh.yaml)."""

    def __init__(self, use_syslog=False, quiet=False, stream=None, lang="en"):
        self.quiet = quiet
        self.stream = stream
        self.lang = lang if lang in PREFIX else "en"
        self._syslog = None
        if use_syslog:
            try:
                import syslog
                syslog.openlog(IDENT, syslog.LOG_PID, syslog.LOG_DAEMON)
                self._syslog = syslog
            except Exception:  # no syslog module on this platform: stderr only
                self._syslog = None

    def _out(self):
        return self.stream or sys.stderr

    def _to_syslog(self, priority, text):
        if self._syslog is not None:
            self._syslog.syslog(getattr(self._syslog, priority), text)

    def info(self, text):
        """Detail: syslog only (the terminal stays quiet)."""
        self._to_syslog("LOG_INFO", text)

    def terminal(self, text):
        """For a person watching: stderr only when it is a terminal (cron and systemd stay quiet)."""
        out = self._out()
        if not self.quiet and hasattr(out, "isatty") and out.isatty():
            out.write("%s%s\n" % (PREFIX[self.lang][0], text))
            out.flush()

    def t(self, key, **fields):
        """A catalogue text in this log's language."""
        from scanner.i18n import t
        return t(key, self.lang, **fields)

    def reason(self, text):
        """A reason the code states in English (an upload problem, a server's refusal) in this log's
        language where scanner/locale/errors.zh.yaml has it."""
        from scanner.i18n import error_part
        return error_part(text, self.lang)

    def warning(self, text):
        head, warn, _err = PREFIX[self.lang]
        self._out().write("%s%s%s\n" % (head, warn, text))
        self._out().flush()
        self._to_syslog("LOG_WARNING", text)

    def error(self, text):
        """``text``: a line in this log's language, or an XcscanError (said in that language)."""
        if not isinstance(text, str):
            from scanner.i18n import error_text
            text = error_text(text, self.lang)
        head, _warn, err = PREFIX[self.lang]
        self._out().write("%s%s%s\n" % (head, err, text))
        self._out().flush()
        self._to_syslog("LOG_ERR", text)

    def summary(self, text):
        if not self.quiet:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
        self._to_syslog("LOG_NOTICE", text)
