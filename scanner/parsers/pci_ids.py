"""Look up vendor and device names in a pci.ids file without parsing all of it.

pci.ids (1.3 MB) lists "vvvv  Vendor name" lines, each followed by "\tdddd  Device name"
lines (and "\t\t" subsystem lines). Only the vendors asked for are looked at; the scan
stops at the first class section ("C xx").
"""
from __future__ import absolute_import


def lookup(text, wanted):
    """``wanted``: {vendor_hex: set(device_hex)} (lowercase, 4 digits, no 0x).

    Returns {"vendors": {vid: name}, "devices": {(vid, did): name}} for what was found.
    """
    vendors, devices = {}, {}
    if not text or not wanted:
        return {"vendors": vendors, "devices": devices}
    current = None
    remaining = set(wanted)
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        if line[0] != "\t":
            if line.startswith("C "):
                break  # device classes follow; no more vendors
            vid = line[:4].lower()
            if current is not None:
                remaining.discard(current)
                if not remaining:
                    break
            current = vid if vid in wanted else None
            if current is not None:
                vendors[vid] = line[4:].strip()
            continue
        if current is None or line.startswith("\t\t"):
            continue
        did = line[1:5].lower()
        if did in wanted[current]:
            devices[(current, did)] = line[5:].strip()
    return {"vendors": vendors, "devices": devices}
