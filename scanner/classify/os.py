"""facts.os -> the OS component (catalog rules/catalog/os.yaml)."""
from __future__ import absolute_import

import datetime

from scanner.classify.component import make_component, unknown_component
from scanner.classify.hwcommon import any_search, products_with


def _eol(product, version_id, today=None, name=None):
    """(end-of-life date, whether it has passed) from the catalog's eol table, or (None, None).

    Keys: the exact VERSION_ID, else its major version; "stream-<major>" for CentOS Stream,
    whose dates differ from CentOS Linux of the same major version.
    """
    table = product.get("eol") or {}
    if not table or not version_id:
        return None, None
    version_id = str(version_id)
    major = version_id.split(".")[0]
    key = None
    if name and "stream" in name.lower():
        key = ("stream-" + major) if ("stream-" + major) in table else None
        if key is None:
            return None, None
    elif version_id in table:
        key = version_id
    elif major in table:
        key = major
    if key is None:
        return None, None
    date = str(table[key])
    today = today or datetime.datetime.utcnow().date().isoformat()
    return date, date < today


def _match(facts_os, catalog):
    ident = facts_os.get("id")
    candidates = products_with(catalog, "ids")
    if ident:
        for product, match in candidates:
            if ident in [str(i).lower() for i in match.get("ids") or []]:
                return product, None
        return None, None
    # no os-release ID: vendor release files, vendor-specific ones first (collector order)
    for path, line in (facts_os.get("release_files") or {}).items():
        for product, match in products_with(catalog, "release"):
            if any_search(match.get("release"), line):
                return product, {"kind": "release-file", "value": line, "source": path}
    return None, None


def classify(facts, catalog, today=None):
    facts_os = facts.get("os")
    if not facts_os:
        return []
    evidence = [dict(e) for e in facts_os.get("evidence") or []]
    product, release_ev = _match(facts_os, catalog)
    if release_ev and release_ev not in evidence:
        evidence.append(release_ev)
    details = {
        "family": facts_os.get("family"),
        "edition": facts_os.get("edition"),
        "kernel": facts_os.get("kernel"),
        "arch": facts_os.get("arch"),
        "codename": facts_os.get("codename"),
        "platform_id": facts_os.get("platform_id"),
    }
    version = facts_os.get("version_id") or facts_os.get("version")
    model = facts_os.get("pretty_name") or facts_os.get("name")
    if product is None:
        if not (facts_os.get("id") or facts_os.get("name") or facts_os.get("pretty_name")):
            return []
        label = facts_os.get("pretty_name") or facts_os.get("name") or facts_os.get("id")
        return [unknown_component("os", label, evidence, version=version, model=model, details=details)]
    end_of_life, eol = _eol(product, facts_os.get("version_id"), today, facts_os.get("name"))
    if end_of_life:
        details["end_of_life"] = end_of_life
        details["eol"] = eol
    return [make_component(product, evidence, version=version, model=model, details=details)]
