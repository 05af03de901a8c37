"""Inventory: components plus the localization rate overall and by category."""
from __future__ import absolute_import

from scanner.catalog import CATEGORIES


def localization(components):
    by_category = {}
    for comp in components:
        cat = by_category.setdefault(comp["category"], {"domestic": 0, "foreign": 0, "unknown": 0})
        origin = comp.get("origin") if comp.get("origin") in ("domestic", "foreign") else "unknown"
        cat[origin] += 1
    totals = {"domestic": 0, "foreign": 0, "unknown": 0}
    for counts in by_category.values():
        judged = counts["domestic"] + counts["foreign"]
        counts["rate"] = round(float(counts["domestic"]) / judged, 4) if judged else None
        for key in totals:
            totals[key] += counts[key]
    judged = totals["domestic"] + totals["foreign"]
    ordered = dict((c, by_category[c]) for c in CATEGORIES if c in by_category)
    for c in sorted(by_category):  # categories a newer catalog may add
        ordered.setdefault(c, by_category[c])
    return {
        "rate": round(float(totals["domestic"]) / judged, 4) if judged else None,
        "domestic": totals["domestic"],
        "foreign": totals["foreign"],
        "unknown": totals["unknown"],
        "by_category": ordered,
    }


def build_inventory(facts, catalog):
    from scanner.classify import classify
    order = dict((c, i) for i, c in enumerate(CATEGORIES))
    components = classify(facts, catalog)
    components.sort(key=lambda c: (order.get(c["category"], 99), c.get("product_id") or "~"))
    return {"components": components, "localization": localization(components)}
