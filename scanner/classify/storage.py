"""facts.storage.disks -> storage array components (one per product; LUNs and paths counted)."""
from __future__ import absolute_import

from scanner.classify.component import evidence as make_evidence
from scanner.classify.component import make_component
from scanner.classify.hwcommon import products_with, search, substitutes_for


def match_disk(disk, catalog):
    vendor, model = disk.get("vendor"), disk.get("model")
    if not vendor and not model:
        return None
    for product, match in products_with(catalog, "luns"):
        for sig in match.get("luns") or []:
            if search(sig.get("vendor", ""), vendor or "") and search(sig.get("model", ""), model or ""):
                return product
    return None


def classify(facts, catalog):
    storage = facts.get("storage") or {}
    groups = []
    for disk in storage.get("disks") or []:
        product = match_disk(disk, catalog)
        if product is None:
            continue
        for entry in groups:
            if entry[0] is product:
                entry[1].append(disk)
                break
        else:
            groups.append((product, [disk]))
    components = []
    for product, disks in groups:
        wwids = set(d.get("wwid") for d in disks if d.get("wwid"))
        models = []
        for d in disks:
            label = "%s %s" % (d.get("vendor") or "", d.get("model") or "")
            if label.strip() and label.strip() not in models:
                models.append(label.strip())
        evidence = [make_evidence("sysfs", "%s: vendor=%s model=%s" % (d["name"], d.get("vendor"), d.get("model")),
                                  d.get("source")) for d in disks[:5]]
        if len(disks) > 5:
            evidence.append(make_evidence("sysfs", "... and %d more block devices" % (len(disks) - 5), "/sys/block"))
        no_wwid = len([d for d in disks if not d.get("wwid")])  # counted one LUN per device
        details = {"paths": len(disks), "luns": len(wwids) + no_wwid,
                   "devices": [d["name"] for d in disks][:64], "models": models}
        comp = make_component(product, evidence, model=", ".join(models[:3]), details=details, category="storage")
        comp["substitutes"] = substitutes_for(product, "storage")
        components.append(comp)
    return components
