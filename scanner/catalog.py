"""The product catalog (rules/catalog/*.yaml): what each product is and where it comes from.

A catalog file looks like::

    category: os                 # default category for the products below
    products:
      - id: kylin                # stable lowercase slug
        name: {zh: 银河麒麟, en: Kylin}
        vendor: {zh: 麒麟软件, en: KylinSoft}
        origin: domestic         # domestic | foreign | unknown (with origin_policy)
        substitutes: []          # foreign products: domestic product ids
        match: {...}             # signatures, interpreted by the classifier of the category

Signatures are data; the classifiers in scanner/classify/ interpret them.
"""
from __future__ import absolute_import

import glob
import os
import re

from scanner.errors import DataError
from scanner.paths import rules_dir
from scanner.yamlio import load_yaml_file

CATEGORIES = ("cpu", "os", "server", "storage", "accelerator", "database", "middleware",
              "message-queue", "web-server", "cache", "crypto")
ORIGINS = ("domestic", "foreign", "unknown")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


class Catalog(object):
    def __init__(self, products, sources=None, checked=False):
        self.products = products  # id -> product dict
        self.sources = sources or {}
        self.checked = checked  # every software signature is known to compile (the validated cache)

    def get(self, product_id):
        return self.products.get(product_id)

    def by_category(self, category):
        return [p for p in self.products.values() if p["category"] == category]

    def __contains__(self, product_id):
        return product_id in self.products

    def __len__(self):
        return len(self.products)


def _text_pair(value, where, field):
    if isinstance(value, dict) and value.get("zh") and value.get("en"):
        return {"zh": str(value["zh"]), "en": str(value["en"])}
    raise DataError("field %r must be a mapping with non-empty 'zh' and 'en'" % field, path=where)


def _markers(value, where):
    ok = isinstance(value, list) and value and all(
        isinstance(names, list) and names and all(isinstance(n, str) and n and "/" not in n for n in names)
        for names in value)
    if not ok:
        raise DataError("data_dir_markers must be a list of lists of entry names (no '/')", path=where,
                        hint="e.g. data_dir_markers: [[PG_VERSION, base, global]]")
    return [sorted(set(names)) for names in value]


def load_catalog(directory=None):
    directory = directory or os.path.join(rules_dir(), "catalog")
    files = sorted(glob.glob(os.path.join(directory, "*.yaml")))
    if not files:
        raise DataError("no catalog files found", path=directory,
                        hint="reinstall xcscan or set XCSCAN_RULES to a rules directory")
    products, sources = {}, {}
    for path in files:
        doc = load_yaml_file(path) or {}
        if not isinstance(doc, dict) or not isinstance(doc.get("products"), list):
            raise DataError("a catalog file needs a top-level 'products' list", path=path)
        default_cat = doc.get("category")
        for i, raw in enumerate(doc["products"]):
            where = "%s: products[%d]" % (path, i)
            if not isinstance(raw, dict) or not raw.get("id"):
                raise DataError("each product needs an 'id'", path=where)
            pid = str(raw["id"])
            where = "%s: product %s" % (path, pid)
            if not _ID_RE.match(pid):
                raise DataError("product id must be a lowercase slug", path=where)
            if pid in products:
                raise DataError("duplicate product id (also in %s)" % sources[pid], path=where)
            category = raw.get("category", default_cat)
            if category not in CATEGORIES:
                raise DataError("unknown category %r; expected one of %s" % (category, ", ".join(CATEGORIES)),
                                path=where)
            origin = raw.get("origin")
            if origin not in ORIGINS:
                raise DataError("origin must be one of %s" % ", ".join(ORIGINS), path=where)
            product = dict(raw)
            product["id"] = pid
            product["category"] = category
            product["name"] = _text_pair(raw.get("name"), where, "name")
            product["vendor"] = _text_pair(raw.get("vendor"), where, "vendor")
            product["substitutes"] = list(raw.get("substitutes") or [])
            product["match"] = raw.get("match") or {}
            if "data_dir_markers" in raw:
                product["data_dir_markers"] = _markers(raw["data_dir_markers"], where)
            products[pid] = product
            sources[pid] = path
    for pid, product in products.items():
        for sub in product["substitutes"]:
            if sub not in products:
                raise DataError("substitute %r is not a catalog product" % sub,
                                path="%s: product %s" % (sources[pid], pid))
            if products[sub]["origin"] != "domestic":
                raise DataError("substitute %r is not domestic" % sub,
                                path="%s: product %s" % (sources[pid], pid))
        if product["origin"] == "foreign" and not product["substitutes"]:
            raise DataError("a foreign product must list its domestic substitutes",
                            path="%s: product %s" % (sources[pid], pid))
    return Catalog(products, sources)


# bump when load_catalog's output for the same files changes shape
CACHE_FORMAT = "catalog-1"


def _fingerprint(files):
    from scanner import jsoncache
    from scanner.classify.software import match
    # the loader and the signature compiler that checked the cached copy are part of the key
    code = [os.path.abspath(__file__), os.path.abspath(match.__file__)]
    return jsoncache.fingerprint(list(files) + code, CACHE_FORMAT)


def load_catalog_cached(directory):
    """load_catalog(directory), from the JSON cache when no catalog file (nor this loader) changed
    since it was written; the YAML files are parsed and validated (signatures compiled) only after
    a change, so a run from the cache compiles only the signatures it uses."""
    from scanner import jsoncache
    directory = os.path.abspath(directory)
    files = sorted(glob.glob(os.path.join(directory, "*.yaml")))
    fp = _fingerprint(files) if files else None
    if fp:
        doc = jsoncache.read("catalog", directory, fp)
        if isinstance(doc, dict) and isinstance(doc.get("products"), dict):
            return Catalog(doc["products"], doc.get("sources") or {}, checked=True)
    catalog = load_catalog(directory)
    from scanner.classify.software.match import compile_catalog
    compile_catalog(catalog)  # every signature compiles (a DataError naming the product), then cache
    if fp:
        jsoncache.write("catalog", directory, fp, {"products": catalog.products, "sources": catalog.sources})
    return catalog


_CACHE = {}


def default_catalog():
    """The shipped catalog, loaded once per process (and parsed once per change: load_catalog_cached)."""
    key = rules_dir()
    if key not in _CACHE:
        _CACHE[key] = load_catalog_cached(os.path.join(key, "catalog"))
    return _CACHE[key]
