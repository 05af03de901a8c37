"""Parameters in fixes and remediation texts: ``{param: name}`` values and ``{name}`` placeholders.

Only declared params are substituted, so shell text such as ``${HOME}`` or ``{a,b}`` stays as written.
"""
from __future__ import absolute_import

import re

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def fmt_value(value):
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt_value(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def fill_text(text, params):
    """``{name}`` -> the param's value, for declared params only."""
    if not isinstance(text, str) or not params:
        return text

    def repl(m):
        name = m.group(1)
        return fmt_value(params[name]) if name in params else m.group(0)
    return _PLACEHOLDER.sub(repl, text)


def resolve(value, params):
    """Resolve ``{param: name}`` (recursively in lists and mappings) and placeholders in strings."""
    if isinstance(value, dict):
        if set(value) == {"param"}:
            return params[value["param"]]
        return dict((k, resolve(v, params)) for k, v in value.items())
    if isinstance(value, list):
        return [resolve(v, params) for v in value]
    if isinstance(value, str):
        return fill_text(value, params)
    return value


def _fill_pair(pair, params):
    if not isinstance(pair, dict):
        return pair
    return dict((lang, fill_text(text, params)) for lang, text in pair.items())


def _with_defaults(rule, params):
    merged = dict(rule.get("params") or {})
    merged.update(params or {})
    return merged


def remediation_text(rule, params):
    """The rule's remediation {zh, en} with the (tailored) params filled in."""
    return _fill_pair(rule.get("remediation") or {}, _with_defaults(rule, params))


def title_text(rule, params=None):
    """The rule's title {zh, en} with the (tailored) params filled in: a profile that tailors
    ``min_length`` to 12 gets '口令最小长度不少于12位', the limit its check really applies."""
    return _fill_pair(rule.get("title") or {}, _with_defaults(rule, params))


def placeholders(text):
    """The ``{name}`` placeholders of ``text``."""
    return _PLACEHOLDER.findall(text) if isinstance(text, str) else []


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _fits(default, value):
    """``value`` has the kind of the declared ``default``; text has no control characters."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and value == value and value not in (float("inf"), float("-inf"))
    if isinstance(default, str):
        return isinstance(value, str) and len(value) <= 1024 and not _CONTROL.search(value)
    if isinstance(default, list):
        if not isinstance(value, list) or len(value) > 256:
            return False
        if not default:
            return all(_fits("", v) or _fits(0, v) for v in value)
        return all(_fits(default[0], v) for v in value)
    return False


def checked_params(rule, given):
    """The rule's declared params with ``given`` (the params a saved report or a stored result was
    judged with: the host wrote them, and any host may be compromised) laid over them. Returns
    (params, [names of given values that do not fit]): a value must have the declared default's kind,
    and text no control character (a newline in a value would add a line of its own to the file the
    fix writes). Undeclared names are ignored."""
    params = dict(rule.get("params") or {})
    bad = []
    for name, value in sorted((given or {}).items()) if isinstance(given, dict) else ():
        if name not in params:
            continue
        if _fits(params[name], value):
            params[name] = value
        else:
            bad.append(name)
    return params, bad
