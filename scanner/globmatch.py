"""fnmatch.fnmatchcase without a compiled regex for the usual patterns.

fnmatch translates every new pattern into a regular expression and compiles it (~50 us each in pure
Python); a scan meets dozens (catalog install-path globs, include directories, profile rule-id
patterns). A pattern whose only wildcard is ``*`` is decided here with string operations: the text
starts with the part before the first ``*``, ends with the part after the last, and holds the parts in
between in order -- exactly what the translated regex matches. Any other pattern (``?``, ``[...]``)
goes to fnmatch.
"""
from __future__ import absolute_import

import fnmatch


def fnmatchcase(name, pattern):
    """fnmatch.fnmatchcase(name, pattern) (case-sensitive; ``*`` also matches ``/`` and newlines)."""
    if "?" in pattern or "[" in pattern:
        return fnmatch.fnmatchcase(name, pattern)
    parts = pattern.split("*")
    if len(parts) == 1:
        return name == pattern
    head, tail = parts[0], parts[-1]
    if len(name) < len(head) + len(tail) or not name.startswith(head) or not name.endswith(tail):
        return False
    pos, end = len(head), len(name) - len(tail)
    for part in parts[1:-1]:
        if part:
            at = name.find(part, pos, end)
            if at < 0:
                return False
            pos = at + len(part)
    return True
