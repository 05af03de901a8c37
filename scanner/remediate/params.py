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


def remediation_text(rule, params):
    """The rule's remediation {zh, en} with the (tailored) params filled in."""
    pair = rule.get("remediation") or {}
    if not isinstance(pair, dict):
        return pair
    return dict((lang, fill_text(text, params)) for lang, text in pair.items())
