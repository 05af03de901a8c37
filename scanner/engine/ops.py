"""Comparison operators of the check vocabulary.

Each operator is ``fn(actual, value, opts) -> (ok, detail)``; ``detail`` is an
optional text naming what made it fail (e.g. the offending list entries).
Type problems raise :class:`OpError` and make the check ``error``.
"""
from __future__ import absolute_import

import datetime
import re

from scanner.engine.text import short


class OpError(Exception):
    pass


_TRUE = ("1", "yes", "true", "on", "enabled", "enable", "y")
_FALSE = ("0", "no", "false", "off", "disabled", "disable", "n")
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?)?(Z|[+-]00:?00)?$")
_REGEX_CACHE = {}


def as_number(x):
    if isinstance(x, bool):
        raise OpError("expected a number, got a boolean %s" % short(x))
    if isinstance(x, (int, float)):
        return x
    if isinstance(x, str):
        s = x.strip()
        try:
            return int(s, 10)
        except ValueError:
            try:
                return float(s)
            except ValueError:
                pass
    raise OpError("expected a number, got %s" % short(x))


def as_bool(x):
    if isinstance(x, bool):
        return x
    if isinstance(x, int):
        return x != 0
    if isinstance(x, str) and x.strip().lower() in _TRUE:
        return True
    if isinstance(x, str) and x.strip().lower() in _FALSE:
        return False
    raise OpError("expected a boolean, got %s" % short(x))


def as_date(x):
    if isinstance(x, datetime.datetime):
        return x.replace(tzinfo=None)
    if isinstance(x, datetime.date):
        return datetime.datetime(x.year, x.month, x.day)
    if isinstance(x, str):
        m = _DATE_RE.match(x.strip())
        if m:
            parts = [int(p) if p else 0 for p in m.groups()[:6]]
            try:
                return datetime.datetime(*parts)
            except ValueError:
                pass
    raise OpError("expected a date (YYYY-MM-DD[THH:MM:SSZ]), got %s" % short(x))


def as_mode(x):
    if isinstance(x, bool):
        raise OpError("expected a file mode, got %s" % short(x))
    if isinstance(x, int):
        return x
    if isinstance(x, str):
        try:
            return int(x.strip(), 8)
        except ValueError:
            pass
    raise OpError("expected an octal file mode such as \"0640\", got %s" % short(x))


def as_list(actual, opts):
    if isinstance(actual, (list, tuple)):
        return list(actual)
    if isinstance(actual, str) and opts.get("split"):
        return [p.strip() for p in actual.split(opts["split"]) if p.strip()]
    return None


def _norm(x, opts):
    if opts.get("ignore_case") and isinstance(x, str):
        return x.lower()
    return x


def _equal(a, b, opts):
    if isinstance(b, bool) or isinstance(a, bool):
        return as_bool(a) == as_bool(b)
    if isinstance(b, (int, float)) or isinstance(a, (int, float)):
        try:
            return as_number(a) == as_number(b)
        except OpError:
            return False
    if isinstance(b, (datetime.date, datetime.datetime)):
        return as_date(a) == as_date(b)
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        return a == b
    return _norm(str(a), opts) == _norm(str(b), opts)


def _ordered(a, b):
    """Both sides as numbers, or both as dates."""
    if isinstance(b, (datetime.date, datetime.datetime)) or (
            isinstance(b, str) and _DATE_RE.match(b.strip()) and isinstance(a, str)):
        return as_date(a), as_date(b)
    return as_number(a), as_number(b)


def op_eq(a, v, o):
    return _equal(a, v, o), None


def op_ne(a, v, o):
    return not _equal(a, v, o), None


def op_lt(a, v, o):
    x, y = _ordered(a, v)
    return x < y, None


def op_le(a, v, o):
    x, y = _ordered(a, v)
    return x <= y, None


def op_gt(a, v, o):
    x, y = _ordered(a, v)
    return x > y, None


def op_ge(a, v, o):
    x, y = _ordered(a, v)
    return x >= y, None


_SETS = {}


def _text_set(values, o):
    """A set of the list's texts when every value is text (fast membership), else None."""
    key = (id(values), bool(o.get("ignore_case")))
    hit = _SETS.get(key)
    if hit is not None and hit[0] is values:
        return hit[1]
    if all(isinstance(v, str) for v in values):
        texts = frozenset(v.lower() if o.get("ignore_case") else v for v in values)
    else:
        texts = None
    if len(_SETS) > 4096:
        _SETS.clear()
    _SETS[key] = (values, texts)  # keeps ``values`` alive, so its id is not reused
    return texts


def _member(x, values, o):
    if isinstance(x, str):
        texts = _text_set(values, o)
        if texts is not None:
            return (x.lower() if o.get("ignore_case") else x) in texts
    return any(_equal(x, v, o) for v in values)


def op_in(a, v, o):
    if not isinstance(v, list):
        raise OpError("'in' needs a list value")
    items = as_list(a, o)
    if items is None:
        return _member(a, v, o), None
    outside = [x for x in items if not _member(x, v, o)]
    return not outside, ("not allowed: " + ", ".join(short(x, 60) for x in outside)) if outside else None


def op_not_in(a, v, o):
    if not isinstance(v, list):
        raise OpError("'not_in' needs a list value")
    items = as_list(a, o)
    if items is None:
        return not _member(a, v, o), None
    inside = [x for x in items if _member(x, v, o)]
    return not inside, ("found: " + ", ".join(short(x, 60) for x in inside)) if inside else None


def op_contains(a, v, o):
    items = as_list(a, o)
    if items is not None:
        return _member(v, items, o), None
    if isinstance(a, dict):
        return v in a, None
    if isinstance(a, str):
        return _norm(str(v), o) in _norm(a, o), None
    raise OpError("'contains' needs a list or text, got %s" % short(a))


def op_not_contains(a, v, o):
    ok, _ = op_contains(a, v, o)
    return not ok, None


def _regex(pattern, o):
    key = (pattern, bool(o.get("ignore_case")))
    rx = _REGEX_CACHE.get(key)
    if rx is None:
        rx = re.compile(pattern, re.IGNORECASE if o.get("ignore_case") else 0)
        _REGEX_CACHE[key] = rx
    return rx


def op_regex(a, v, o):
    rx = _regex(v, o)
    items = as_list(a, o)
    if items is not None:
        return any(rx.search(str(x)) for x in items), None
    return bool(rx.search(short(a, 100000) if not isinstance(a, str) else a)), None


def op_not_regex(a, v, o):
    rx = _regex(v, o)
    items = as_list(a, o)
    if items is not None:
        bad = [x for x in items if rx.search(str(x))]
        return not bad, ("matching: " + ", ".join(short(x, 60) for x in bad)) if bad else None
    return not rx.search(a if isinstance(a, str) else short(a, 100000)), None


def op_true(a, v, o):
    return as_bool(a) is True, None


def op_false(a, v, o):
    return as_bool(a) is False, None


def _length(a, o):
    items = as_list(a, o)
    if items is not None:
        return len(items)
    if isinstance(a, (dict, str)):
        return len(a.strip()) if isinstance(a, str) else len(a)
    raise OpError("'empty' needs a list, mapping or text, got %s" % short(a))


def op_empty(a, v, o):
    return _length(a, o) == 0, None


def op_not_empty(a, v, o):
    return _length(a, o) > 0, None


def op_mode_within(a, v, o):
    actual, allowed = as_mode(a), as_mode(v)
    extra = actual & 0o7777 & ~allowed
    return extra == 0, ("extra permission bits %04o" % extra) if extra else None


def op_intersects(a, v, o):
    if not isinstance(v, list):
        raise OpError("'intersects' needs a list value")
    items = as_list(a, o)
    if items is None:
        items = [a]
    return any(_member(x, v, o) for x in items), None


# Presence operators are handled by the evaluator (they look at the Missing kind).
PRESENCE_OPS = ("exists", "absent")
VALUELESS_OPS = ("exists", "absent", "true", "false", "empty", "not_empty")
OPS = {
    "eq": op_eq, "ne": op_ne, "lt": op_lt, "le": op_le, "gt": op_gt, "ge": op_ge,
    "in": op_in, "not_in": op_not_in, "contains": op_contains, "not_contains": op_not_contains,
    "regex": op_regex, "not_regex": op_not_regex, "true": op_true, "false": op_false,
    "empty": op_empty, "not_empty": op_not_empty, "mode_within": op_mode_within,
    "intersects": op_intersects,
    "exists": None, "absent": None,
}
