"""One JSON reader for the aggregator: the same parser with the same limits at intake and for
every later reader of what was stored (fleet views, exports, raw reports, re-evaluation).

A report is refused at intake when it breaks a limit, so nothing is stored that a reader cannot
read back. Rows stored before these limits existed (or written around them) are decoded with
``decode_or_skip`` by the fleet views: a row that cannot be read is logged, skipped and counted
(``X-Xcscan-Skipped-Rows`` on the response) instead of failing the whole view.
"""
from __future__ import annotations

import contextvars
import gc
import json
import logging

log = logging.getLogger("xcscan.server")

# Limits of a stored document. A real report nests about 8 deep (results[].items[].evidence[]...);
# the longest strings are file excerpts kept as evidence.
MAX_DEPTH = 64  # arrays and objects inside each other
MAX_STRING = 1024 * 1024  # characters in one string or object key
MAX_ITEMS = 200000  # entries of one array or object
MAX_NODES = 2000000  # values in the whole document


class JsonLimitError(ValueError):
    """Not JSON, not UTF-8, or over a limit; ``what`` says which, ``where`` the JSON path."""

    def __init__(self, what, where=None, limit=True):
        if where and len(where) > 120:
            where = where[:60] + "..." + where[-57:]
        ValueError.__init__(self, what + (" at %s" % where if where else ""))
        self.what = what
        self.limit = limit  # over a limit (else: not JSON at all)
        self.where = where


def _loader():
    try:
        import orjson  # 3-5x faster on report-sized documents; optional
        return orjson.loads
    except ImportError:
        return None


_ORJSON = _loader()


def parse(data):
    """The JSON value of ``data`` (bytes or text), checked against the limits."""
    try:
        if _ORJSON is not None:
            # orjson rejects bytes that are not UTF-8 itself; json.loads would guess UTF-16/32
            value = _ORJSON(data)
        else:
            value = json.loads(data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data)
    except UnicodeDecodeError:
        raise JsonLimitError("not UTF-8", limit=False)
    except RecursionError:
        raise JsonLimitError("nested more than %d levels deep" % MAX_DEPTH)
    except ValueError as exc:  # orjson.JSONDecodeError is a ValueError too
        text = str(exc)
        if "utf-8" in text.lower() or "surrogate" in text.lower():
            raise JsonLimitError("not UTF-8", limit=False)
        if "recursion" in text.lower() or "depth limit" in text.lower():
            raise JsonLimitError("nested more than %d levels deep" % MAX_DEPTH)
        raise JsonLimitError("not valid JSON: %s" % text[:200], limit=False)
    if not _bounded_by_text(data, value):
        check(value)
    return value


# Below this many bytes of text the items and values limits need no count of the text's commas:
# an object of plain values (the only container the collector does not track, so the walk below does
# not measure it) takes at least 5 bytes an entry ('"k":0,'; repeated keys collapse), so it cannot
# hold MAX_ITEMS entries; every value inside a container takes at least 2 bytes (itself and the
# '[', ',' or ':' before it), so the document cannot hold MAX_NODES of them; and no string is longer
# than the text.
_COUNT_FREE_BYTES = min(MAX_STRING, 5 * MAX_ITEMS, 2 * MAX_NODES)


def _bounded_by_text(data, value):
    """True when the JSON text ``data`` and its parsed ``value`` are certainly within the limits,
    proved without visiting every value (False: undecided, ``check`` decides). The depth from the
    parsed value, through the garbage collector's view of it: every list is tracked, and an object is
    untracked only while it holds no array or object (CPython's invariant), so the tracked containers,
    level by level in C (``gc.get_referents``), reach every level but the innermost, and the deepest
    level allowed is checked for any container at all: exact, not just an upper bound. The items per
    container: under _COUNT_FREE_BYTES, the length of every tracked container as the walk meets it
    (every array is one, and an untracked object is too small to matter, above); over it, from the
    text: an array or object of n items needs n - 1 commas, so none has more items than the text has
    commas + 1, and the document has at most commas + len(data) / 2 values (every value inside a
    container is its first item or follows a comma, and a container takes at least two characters)."""
    n = len(data)
    if n > MAX_STRING:
        return False
    measure = n < _COUNT_FREE_BYTES
    if not measure:
        commas = data.count(b"," if isinstance(data, (bytes, bytearray)) else ",")
        if commas + 1 > MAX_ITEMS or commas + n // 2 > MAX_NODES:
            return False
    if value.__class__ is not dict and value.__class__ is not list:
        return True
    level, depth = [value], 1
    referents, tracked = gc.get_referents, gc.is_tracked
    while True:
        if measure and max(map(len, level)) > MAX_ITEMS:
            return False
        children = referents(*level)
        if depth >= MAX_DEPTH:  # the deepest level allowed: it may hold no container at all
            return not any(c.__class__ is dict or c.__class__ is list for c in children)
        level = list(filter(tracked, children))
        if not level:
            return True  # what is untracked one level down holds no container
        depth += 1


def check(value):
    """Raise JsonLimitError when ``value`` nests too deep, or has too long a string or too many items."""
    if not _within_limits(value):
        raise _locate(value)


def _within_limits(value):
    # Iterative (a recursive walk would itself overflow on the documents it is meant to refuse).
    # Only containers go on the stack; strings are measured where they are met.
    str_, dict_, list_ = str, dict, list
    cls = value.__class__
    if cls is str_:
        return len(value) <= MAX_STRING
    if cls is not dict_ and cls is not list_:
        return True  # a number, true, false or null
    stack = [(value, 1)]
    push, pop = stack.append, stack.pop
    nodes = 0
    while stack:
        node, depth = pop()
        if depth > MAX_DEPTH or len(node) > MAX_ITEMS:
            return False
        nodes += len(node)
        if node.__class__ is dict_:
            for key, item in node.items():
                if len(key) > MAX_STRING:
                    return False
                cls = item.__class__
                if cls is str_:
                    if len(item) > MAX_STRING:
                        return False
                elif cls is dict_ or cls is list_:
                    push((item, depth + 1))
        else:
            for item in node:
                cls = item.__class__
                if cls is str_:
                    if len(item) > MAX_STRING:
                        return False
                elif cls is dict_ or cls is list_:
                    push((item, depth + 1))
    return nodes <= MAX_NODES


def _locate(value):
    """The error for a value that failed the fast check, with the JSON path of the first problem."""
    if isinstance(value, str):
        return JsonLimitError("a string longer than %d characters" % MAX_STRING)
    stack = [(value, 1, "$")]
    nodes = 0
    while stack:
        node, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            return JsonLimitError("nested more than %d levels deep" % MAX_DEPTH, where)
        if len(node) > MAX_ITEMS:
            return JsonLimitError("more than %d items in one array or object" % MAX_ITEMS, where)
        nodes += len(node)
        pairs = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in pairs:
            path = "%s.%s" % (where, key[:40]) if isinstance(key, str) else "%s[%d]" % (where, key)
            if isinstance(key, str) and len(key) > MAX_STRING:
                return JsonLimitError("an object key longer than %d characters" % MAX_STRING, where)
            if isinstance(item, str) and len(item) > MAX_STRING:
                return JsonLimitError("a string longer than %d characters" % MAX_STRING, path)
            if isinstance(item, (dict, list)):
                stack.append((item, depth + 1, path))
    return JsonLimitError("more than %d values in the document" % MAX_NODES)


# --- readers: decode a stored value, or skip the row ----------------------------------------------
class SkipCount(object):
    """Rows one request's views could not read (set per request by the app's guard)."""

    def __init__(self):
        self.rows = 0


_SKIPPED = contextvars.ContextVar("xcscan_skipped_rows", default=None)


def start_counting():
    counter = SkipCount()
    _SKIPPED.set(counter)
    return counter


class Unreadable(Exception):
    """A stored value that cannot be read back: the row holding it is skipped."""


def decode(text, default=None):
    """A stored JSON column value (None stays ``default``); Unreadable when it cannot be read."""
    if text is None:
        return default
    try:
        return parse(text)
    except JsonLimitError as exc:
        raise Unreadable(str(exc))


def decode_rows(rows, convert, view):
    """``convert(row)`` of each fetched row; a row that raises Unreadable (or a decoding error) is
    logged with the view's name, skipped and counted for the response header."""
    out = []
    for row in rows:
        try:
            out.append(convert(row))
        except (Unreadable, ValueError, RecursionError, OSError, EOFError) as exc:
            skipped(view, row, exc)
    return out


def skipped(view, row, exc):
    keys = {k: row[k] for k in ("id", "host_id", "rule_id", "report_id") if _has(row, k)}
    log.warning("%s: skipped a stored row that cannot be read (%s): %s", view, keys, str(exc)[:300])
    counter = _SKIPPED.get()
    if counter is not None:
        counter.rows += 1


def _has(row, key):
    try:
        return key in row
    except TypeError:
        return False
