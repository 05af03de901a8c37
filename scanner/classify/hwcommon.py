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


def search(pattern, value):
    return value is not None and bool(rx(pattern).search(str(value)))


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
