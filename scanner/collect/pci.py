"""PCI functions from /sys/bus/pci/devices/*/{vendor,device,class}; names from the target's
pci.ids for display and processing-accelerator functions only (read lazily, only when needed).

facts.pci = {"devices": [{"slot", "vendor", "device", "class", "vendor_name", "device_name"}],
             "pci_ids": path or None}
"""
from __future__ import absolute_import

import re

NAME = "pci"
LIVE_ONLY = False

SYS_PCI = "/sys/bus/pci/devices"
PCI_IDS = ("/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids", "/usr/share/pci.ids")
ACCELERATOR_CLASSES = ("03", "12")  # display controller, processing accelerator
MAX_DEVICES = 4096


def _hex4(value):
    if not value:
        return None
    value = value.strip().lower()
    if value.startswith("0x"):
        value = value[2:]
    return value if re.match(r"^[0-9a-f]{1,6}$", value) else None


def collect(ctx):
    slots = ctx.fs.listdir(SYS_PCI)
    if slots is None:
        return None
    if len(slots) > MAX_DEVICES:
        ctx.error(SYS_PCI, "%d PCI functions; only the first %d were read" % (len(slots), MAX_DEVICES))
        slots = slots[:MAX_DEVICES]
    devices = []
    for slot in slots:
        base = "%s/%s/" % (SYS_PCI, slot)
        raw = dict((name, ctx.fs.read_first_line(base + name, report=True)) for name in ("vendor", "device", "class"))
        vendor, device, klass = _hex4(raw["vendor"]), _hex4(raw["device"]), _hex4(raw["class"])
        for name, value in (("vendor", vendor), ("device", device), ("class", klass)):
            if value is None and raw[name]:
                ctx.error(base + name, "not a hexadecimal PCI id: %r" % raw[name][:40])
        if vendor is None:
            continue
        devices.append({"slot": slot, "vendor": vendor.zfill(4), "device": (device or "").zfill(4) or None,
                        "class": klass.zfill(6) if klass else None, "vendor_name": None, "device_name": None})
    wanted = {}
    for dev in devices:
        if dev["class"] and dev["class"][:2] in ACCELERATOR_CLASSES:
            wanted.setdefault(dev["vendor"], set()).add(dev["device"])
    ids_path = None
    if wanted:
        from scanner.parsers.pci_ids import lookup
        for path in PCI_IDS:
            if not ctx.fs.isfile(path):
                continue
            text = ctx.fs.read_text(path, max_bytes=8 * 1024 * 1024)
            if text is None:
                continue
            ids_path = path
            names = lookup(text, wanted)
            for dev in devices:
                dev["vendor_name"] = names["vendors"].get(dev["vendor"])
                dev["device_name"] = names["devices"].get((dev["vendor"], dev["device"]))
            break
    return {"devices": devices, "pci_ids": ids_path}
