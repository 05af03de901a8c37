"""Small helpers shared by the server modules."""
from __future__ import annotations

import hashlib
import json
import re
import time

ORG_RE = re.compile(r"^(/[^/\x00-\x1f\x7f]{1,64}){1,16}$")
DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def now():
    return int(time.time())


def sha256_hex(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _orjson_dumps():
    try:
        import orjson
    except ImportError:
        return None
    opts = orjson.OPT_NON_STR_KEYS

    def fast(value):
        try:
            return orjson.dumps(value, default=str, option=opts).decode("utf-8")
        except TypeError:  # e.g. integers beyond 64 bits: the stdlib handles them
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return fast


_FAST_DUMPS = _orjson_dumps()


def dumps(value):
    if _FAST_DUMPS is not None:
        return _FAST_DUMPS(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def loads(text, default=None):
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def normalise_org(path):
    """'/gov/finance/' -> '/gov/finance'; None when not a valid org path."""
    if not isinstance(path, str):
        return None
    path = "/" + path.strip().strip("/")
    if path == "/":
        return "/"
    if not ORG_RE.match(path) or any(seg.strip() in ("", ".", "..") for seg in path.split("/")[1:]):
        return None
    return path


def org_ancestors(path):
    """'/a/b/c' -> ['/', '/a', '/a/b', '/a/b/c']."""
    parts = [p for p in path.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]


def parse_duration(text):
    """'7d' -> seconds; None when unparseable."""
    m = DURATION_RE.match(str(text))
    if not m:
        return None
    return int(m.group(1)) * _UNITS[m.group(2)]


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(value, limit):
    """A user-supplied string: control characters removed, bounded length."""
    if value is None:
        return None
    text = value if value.__class__ is str else str(value)
    if len(text) > limit:
        text = text[:limit * 2]
    elif text.isprintable():  # the common case, checked in C
        return text
    return _CONTROL.sub("", text)[:limit]


def iso(ts):
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))
