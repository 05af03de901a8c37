"""os-release(5) and vendor release files (/etc/redhat-release, /etc/lsb-release, ...)."""
from __future__ import absolute_import

import re

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ESCAPES = {'"': '"', "\\": "\\", "$": "$", "`": "`", "n": "\n"}


def _unquote(raw):
    """Shell-like value: "double", 'single' or bare, with backslash escapes in double quotes."""
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        quote, body = raw[0], raw[1:-1]
        if quote == "'":
            return body
        out, i = [], 0
        while i < len(body):
            ch = body[i]
            if ch == "\\" and i + 1 < len(body) and body[i + 1] in _ESCAPES:
                out.append(_ESCAPES[body[i + 1]])
                i += 2
                continue
            out.append(ch)
            i += 1
        return "".join(out)
    if raw[:1] in "\"'":  # unterminated quote: keep the text, drop the quote
        return raw[1:]
    # bare value: a trailing comment is not part of it
    return raw.split(" #", 1)[0].strip()


def parse_os_release(text, problems=None):
    """KEY=value pairs of an os-release or lsb-release file.

    Blank lines and comments are skipped; a line that is not KEY=value (binary
    garbage, a stray word) is skipped and, when ``problems`` is a list, noted
    there as "line N: ...". The last assignment of a key wins (as in a shell).
    """
    values = {}
    if not text:
        return values
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY_RE.match(key) or "\ufffd" in key or "\x00" in line:
            if problems is not None:
                problems.append("line %d is not KEY=value" % number)
            continue
        value = _unquote(value)
        if "\x00" in value or "\ufffd" in value:
            if problems is not None:
                problems.append("line %d (%s) holds undecodable bytes" % (number, key))
            continue
        values[key] = value
    return values


_RELEASE_RE = re.compile(
    r"^(?P<name>.+?)\s+(?:release\s+|Linux\s+release\s+)?(?P<version>[vV]?\d[\w.\-]*)"
    r"(?:\s*\((?P<codename>[^)]*)\))?\s*$")


def parse_release_line(line):
    """'CentOS Linux release 7.1.1503 (Core)' -> {name, version, codename} (values may be None)."""
    if not line:
        return {"name": None, "version": None, "codename": None}
    line = line.strip()
    match = re.match(r"^(?P<name>.*?)\s+release\s+(?P<version>\S+)(?:\s*\((?P<codename>[^)]*)\))?", line)
    if not match:
        match = _RELEASE_RE.match(line)
    if not match:
        return {"name": line or None, "version": None, "codename": None}
    return {"name": match.group("name").strip() or None,
            "version": match.group("version"),
            "codename": (match.group("codename") or None)}
