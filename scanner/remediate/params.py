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
