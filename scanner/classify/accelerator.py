"""facts.pci.devices -> accelerator components (display 0x03 / processing accelerator 0x12 only)."""
from __future__ import absolute_import

from scanner.classify.component import evidence as make_evidence
from scanner.classify.component import make_component, unknown_component
from scanner.classify.hwcommon import products_with

ACCELERATOR_CLASSES = ("03", "12")


def match_device(dev, catalog):
    if not dev.get("class") or dev["class"][:2] not in ACCELERATOR_CLASSES:
        return None
    for product, match in products_with(catalog, "pci"):
        for sig in match.get("pci") or []:
            if str(sig.get("vendor", "")).lower() != dev.get("vendor"):
                continue
            devices = [str(d).lower() for d in sig.get("devices") or []]
            if devices and dev.get("device") not in devices:
                continue
            return product
    return None


def _model(product, dev):
    models = product.get("models") or {}
    return dev.get("device_name") or models.get(dev.get("device")) or "%s:%s" % (dev["vendor"], dev["device"])


def classify(facts, catalog):
    pci = facts.get("pci") or {}
    groups, unknown = [], []
    for dev in pci.get("devices") or []:
        product = match_device(dev, catalog)
        if product is None:
            if dev.get("class", "")[:2] == "12":
                unknown.append(dev)
            continue
        for entry in groups:
            if entry[0] is product:
                entry[1].append(dev)
                break
        else:
            groups.append((product, [dev]))
    components = []
    for product, devs in groups:
        models = []
        for dev in devs:
            model = _model(product, dev)
            if model not in models:
                models.append(model)
        evidence = [make_evidence("pci", "%s %s:%s class %s%s" % (
            d["slot"], d["vendor"], d["device"], d["class"],
            " (%s)" % d["device_name"] if d.get("device_name") else ""),
            "/sys/bus/pci/devices/%s" % d["slot"]) for d in devs[:5]]
        details = {"count": len(devs), "slots": [d["slot"] for d in devs][:64], "models": models,
                   "pci_ids": pci.get("pci_ids")}
        components.append(make_component(product, evidence, model=", ".join(models[:3]), details=details))
    for dev in unknown:
        label = dev.get("vendor_name") or "PCI %s:%s" % (dev["vendor"], dev["device"])
        components.append(unknown_component(
            "accelerator", label,
            [make_evidence("pci", "%s %s:%s class %s" % (dev["slot"], dev["vendor"], dev["device"], dev["class"]),
                           "/sys/bus/pci/devices/%s" % dev["slot"])],
            model=dev.get("device_name"), details={"count": 1, "slots": [dev["slot"]]}))
    return components
