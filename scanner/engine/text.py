"""Reasons and other engine texts as {"zh", "en"} pairs from scanner/locale."""
from __future__ import absolute_import

from scanner.i18n import t


def reason(key, **fields):
    return {"zh": t(key, "zh", **fields), "en": t(key, "en", **fields)}


def short(value, limit=160):
    """A compact, human-readable rendering of a fact value for expected/actual."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(short(v, 60) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join("%s: %s" % (k, short(v, 40)) for k, v in value.items()) + "}"
    elif hasattr(value, "strftime"):
        text = value.strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        text = str(value)
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return text
