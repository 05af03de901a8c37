"""Agent messages: warnings and errors to stderr, everything to syslog when asked.

Quiet by default: a successful run prints exactly one summary line.
"""
from __future__ import absolute_import

import sys

IDENT = "xcscan-agent"


class AgentLog(object):
    def __init__(self, use_syslog=False, quiet=False, stream=None):
        self.quiet = quiet
        self.stream = stream
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
            out.write("xcscan agent: %s\n" % text)
            out.flush()

    def warning(self, text):
        self._out().write("xcscan agent: warning: %s\n" % text)
        self._out().flush()
        self._to_syslog("LOG_WARNING", text)

    def error(self, text):
        self._out().write("xcscan agent: error: %s\n" % text)
        self._out().flush()
        self._to_syslog("LOG_ERR", text)

    def summary(self, text):
        if not self.quiet:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
        self._to_syslog("LOG_NOTICE", text)
