"""Inventory component construction (the report contract's component shape)."""
from __future__ import absolute_import


def evidence(kind, value, source=None):
    """One piece of evidence: what kind, the exact value seen, where it was seen."""
    return {"kind": kind, "value": value, "source": source}


def make_component(product, evidence_list, version=None, model=None, confidence="high", details=None,
                   category=None):
    """A component for a catalog product."""
    return {
        "category": category or product["category"],
        "product_id": product["id"],
        "name": dict(product["name"]),
        "vendor": dict(product["vendor"]),
        "origin": product["origin"],
        "origin_policy": product.get("origin_policy"),
        "version": version,
        "model": model,
        "confidence": confidence,
        "evidence": list(evidence_list),
        "substitutes": list(product.get("substitutes") or []),
        "details": details or {},
    }


def unknown_component(category, label, evidence_list, version=None, model=None, details=None):
    """A component that matches no catalog product: kept, origin unknown, raw evidence attached."""
    return {
        "category": category,
        "product_id": None,
        "name": {"zh": label, "en": label},
        "vendor": None,
        "origin": "unknown",
        "origin_policy": None,
        "version": version,
        "model": model,
        "confidence": "low",
        "evidence": list(evidence_list),
        "substitutes": [],
        "details": details or {},
    }
