"""Errors that reach the user: each says what went wrong, where, and what to do."""


class XcscanError(Exception):
    """A user-facing error; the CLI prints it without a traceback and exits 1."""

    exit_code = 1

    def __init__(self, message, path=None, hint=None):
        Exception.__init__(self, message)
        self.message = message
        self.path = path
        self.hint = hint

    def __str__(self):
        text = self.message
        if self.path:
            text = "%s: %s" % (self.path, text)
        if self.hint:
            text = "%s (%s)" % (text, self.hint)
        return text


class DataError(XcscanError):
    """Malformed data file: catalog, rule, profile, waiver, report."""
