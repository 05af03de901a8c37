"""The checks every external-login setting (``ldap``, ``oidc``) starts with: an object, known keys only,
defaults filled in. A mistake stops ``serve`` with a message naming the setting and the key."""
from __future__ import annotations

from scanner.errors import DataError


def fail(setting, message, hint=None):
    raise DataError("setting '%s': %s" % (setting, message), hint=hint)


def object_of(setting, config, known, defaults):
    """``config`` with ``defaults`` for the keys it leaves out; DataError when it is not an object or
    names a key outside ``known``."""
    if not isinstance(config, dict):
        fail(setting, "must be an object of name: value")
    unknown = sorted(set(config) - set(known))
    if unknown:
        fail(setting, "unknown key(s) %s" % ", ".join(unknown), hint="known: %s" % ", ".join(sorted(known)))
    return dict(defaults, **config)
