"""Helpers shared by the hardware/OS classifiers (os, cpu, server, storage, accelerator)."""
from __future__ import absolute_import

import re

_CACHE = {}


def rx(pattern):
    """Compiled regex (cached). Catalog regexes are data; a bad one is a catalog bug."""
    compiled = _CACHE.get(pattern)
    if compiled is None:
        compiled = _CACHE[pattern] = re.compile(pattern)
    return compiled


# "^NAME$" and "^(A|B|C)$" with plain names: most vendor signatures. Such a pattern matches a text that is one
# of the names, also with one newline after it (where "$" matches too), so it is decided without a regex.
_WHOLE_NAMES = re.compile(r"\^(?:([A-Za-z0-9_ -]+)|\(([A-Za-z0-9_ -]+(?:\|[A-Za-z0-9_ -]+)*)\))\$\Z")
_NAMES = {}


def _whole_names(pattern):
    names = _NAMES.get(pattern)
    if names is None:
        m = _WHOLE_NAMES.match(pattern)
        names = _NAMES[pattern] = frozenset((m.group(1) or m.group(2)).split("|")) if m else False
    return names


def search(pattern, value):
    if value is None:
        return False
    names = _whole_names(pattern)
    if names:
        text = str(value)
        return (text[:-1] if text.endswith("\n") else text) in names
    return bool(rx(pattern).search(str(value)))


def any_search(patterns, value):
    return any(search(p, value) for p in patterns or [])


def products_with(catalog, key):
    """Catalog products whose match (or server_match) has ``key``, in priority then file order."""
    found = []
    for index, product in enumerate(catalog.products.values()):
        match = product.get("match") or {}
        if key in match:
            found.append((match.get("priority", 100), index, product, match))
        server_match = product.get("server_match") or {}
        if key in server_match:
            found.append((server_match.get("priority", 100), index, product, server_match))
    found.sort(key=lambda item: (item[0], item[1]))
    return [(product, match) for _, _, product, match in found]


def substitutes_for(product, category):
    by_cat = product.get("substitutes_by_category") or {}
    if category in by_cat:
        return list(by_cat[category])
    return list(product.get("substitutes") or [])
