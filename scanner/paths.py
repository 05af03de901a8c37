"""Where the shipped data (rules/: catalog, checks, controls, profiles) lives."""
from __future__ import absolute_import

import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def rules_dir():
    """The rules/ directory: $XCSCAN_RULES, the installed copy, or the source checkout."""
    env = os.environ.get("XCSCAN_RULES")
    if env:
        return env
    if not _FOUND:  # where the package is does not move while it runs: looked up once (two stat calls)
        _FOUND.append(_installed_rules())
    return _FOUND[0]


_FOUND = []


def _installed_rules():
    for candidate in (os.path.join(_HERE, "_rules"), os.path.join(os.path.dirname(_HERE), "rules")):
        if os.path.isdir(os.path.join(candidate, "catalog")):
            return candidate
    return os.path.join(os.path.dirname(_HERE), "rules")
