"""Look up vendor and device names in a pci.ids file without parsing all of it.

pci.ids (1.3 MB) lists "vvvv  Vendor name" lines, each followed by "\tdddd  Device name"
lines (and "\t\t" subsystem lines); the device classes ("C xx") come last. Only the vendors
asked for are looked at: each is found with one substring search, then only its own block
is split into lines.
"""
from __future__ import absolute_import


def _vendor_block(text, vid, end):
    """(vendor name, block text) for vendor ``vid`` (before offset ``end``), or (None, None)."""
    start = 0
    while True:
        if text.startswith(vid + "  ", start) and start < end:
            pos = start
        else:
            pos = text.find("\n" + vid + "  ", start, end)
            if pos < 0:
                return None, None
            pos += 1
        line_end = text.find("\n", pos)
        line_end = len(text) if line_end < 0 else line_end
        name = text[pos + len(vid):line_end].strip()
        # the block runs until the next line that does not start with a tab
        cursor = line_end + 1
        while cursor < len(text) and text[cursor] in "\t#":
            nxt = text.find("\n", cursor)
            cursor = len(text) if nxt < 0 else nxt + 1
        return name, text[line_end + 1:cursor]


def lookup(text, wanted):
    """``wanted``: {vendor_hex: set(device_hex)} (lowercase, 4 digits, no 0x).

    Returns {"vendors": {vid: name}, "devices": {(vid, did): name}} for what was found.
    """
    vendors, devices = {}, {}
    if not text or not wanted:
        return {"vendors": vendors, "devices": devices}
    classes = text.find("\nC ")
    end = len(text) if classes < 0 else classes
    for vid in sorted(wanted):
        name, block = _vendor_block(text, vid, end)
        if name is None:
            continue
        vendors[vid] = name
        want = wanted[vid]
        for line in block.splitlines():
            if line.startswith("\t") and not line.startswith("\t\t"):
                did = line[1:5].lower()
                if did in want:
                    devices[(vid, did)] = line[5:].strip()
    return {"vendors": vendors, "devices": devices}
