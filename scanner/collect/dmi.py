"""Server identity from DMI/SMBIOS: /sys/class/dmi/id (readable unprivileged), and dmidecode
(live, as root, when installed) or a saved dmidecode output in an offline root for the
processor (type 4) records.
"""
from __future__ import absolute_import

import os as _os

NAME = "dmi"
LIVE_ONLY = False

DMI_DIR = "/sys/class/dmi/id"
FIELDS = ("sys_vendor", "product_name", "product_version", "product_family", "board_vendor", "board_name",
          "bios_vendor", "bios_version", "chassis_vendor", "chassis_type")
SAVED_DMIDECODE = ("/sos_commands/hardware/dmidecode", "/dmidecode", "/dmidecode.txt")


def _evidence(kind, value, source):
    return {"kind": kind, "value": value, "source": source}


def _which(name):
    """shutil.which without importing shutil; sbin directories included (often off PATH)."""
    dirs = (_os.environ.get("PATH") or "").split(_os.pathsep) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
    for directory in dirs:
        candidate = _os.path.join(directory or ".", name)
        if _os.path.isfile(candidate) and _os.access(candidate, _os.X_OK):
            return candidate
    return None


def _dmidecode_text(ctx):
    """(text, source) from a live dmidecode run or a saved output; (None, None) otherwise."""
    if ctx.live:
        # dmidecode needs root and an SMBIOS table (containers and some VMs have none)
        if _os.geteuid() != 0 or not (ctx.fs.exists("/sys/firmware/dmi/tables/DMI") or ctx.fs.isdir(DMI_DIR)):
            return None, None
        binary = _which("dmidecode")
        if not binary:
            return None, None
        out = ctx.run([binary, "-t", "0", "-t", "1", "-t", "2", "-t", "4"], timeout=5)
        return (out, "dmidecode -t 0,1,2,4") if out else (None, None)
    for path in SAVED_DMIDECODE:
        if ctx.fs.isfile(path):
            text = ctx.fs.read_text(path, max_bytes=2 * 1024 * 1024)
            if text and "DMI type" in text:
                return text, path
            if text is not None:
                ctx.error(path, "saved dmidecode output has no 'DMI type' records; ignored")
    return None, None


def collect(ctx):
    values, evidence = {}, []
    if not ctx.fs.isdir(DMI_DIR):
        values = dict((field, None) for field in FIELDS)
        return _with_dmidecode(ctx, values, evidence, None)
    from scanner.parsers.dmidecode import clean
    for field in FIELDS:
        raw = ctx.fs.read_first_line("%s/%s" % (DMI_DIR, field), report=True)
        if raw is None:
            from scanner.collect.os import note_dangling
            note_dangling(ctx, "%s/%s" % (DMI_DIR, field))
        value = clean(raw) if raw is not None else None
        if value and ("\x00" in value or "\ufffd" in value):
            ctx.error("%s/%s" % (DMI_DIR, field), "undecodable bytes; ignored")
            value = None
        values[field] = value
        if value and field in ("sys_vendor", "product_name", "board_vendor"):
            evidence.append(_evidence("dmi", "%s=%s" % (field, value), "%s/%s" % (DMI_DIR, field)))
    return _with_dmidecode(ctx, values, evidence, DMI_DIR if any(values.values()) else None)


def _with_dmidecode(ctx, values, evidence, source):
    text, dsource = _dmidecode_text(ctx)
    decoded = None
    if text:
        from scanner.parsers.dmidecode import summary
        decoded = summary(text)
        system, board, bios = decoded["system"], decoded["baseboard"], decoded["bios"]
        for field, value in (("sys_vendor", system["manufacturer"]), ("product_name", system["product_name"]),
                             ("product_version", system["version"]), ("product_family", system["family"]),
                             ("board_vendor", board["manufacturer"]), ("board_name", board["product_name"]),
                             ("bios_vendor", bios["vendor"]), ("bios_version", bios["version"])):
            if not values.get(field) and value:
                values[field] = value
                if field in ("sys_vendor", "product_name", "board_vendor"):
                    evidence.append(_evidence("dmidecode", "%s=%s" % (field, value), dsource))
        source = source or dsource
    if source is None:
        return None
    facts = dict(values)
    facts["source"] = source
    facts["dmidecode_source"] = dsource
    facts["processors"] = decoded["processors"] if decoded else None
    facts["evidence"] = evidence
    return facts
