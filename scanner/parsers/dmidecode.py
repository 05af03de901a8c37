"""`dmidecode` text output -> records, plus the system, board and processor (type 4) views."""
from __future__ import absolute_import

import re

_HANDLE_RE = re.compile(r"^Handle (0x[0-9A-Fa-f]+), DMI type (\d+), (\d+) bytes")
# values dmidecode prints for "no information"
PLACEHOLDERS = ("", "not specified", "to be filled by o.e.m.", "to be filled by oem", "default string",
                "system manufacturer", "system product name", "o.e.m.", "oem", "none", "unknown",
                "not applicable", "<out of spec>", "n/a", "--", "0123456789", "123456789")


# Firmware writers vary punctuation and case ("To Be Filled By O.E.M", "TO BE FILLED BY O.E.M.",
# "Default String", "-- ", all spaces): placeholders are compared with case, spaces and punctuation gone.
_PUNCT_RE = re.compile(r"[\s.\-_,;:/\\*#'\"()<>]+")
_PLACEHOLDER_KEYS = frozenset(_PUNCT_RE.sub("", p) for p in PLACEHOLDERS) | frozenset((
    "tobefilledbyoem", "defaultstring", "systemserialnumber", "chassismanufacturer", "chassisversion",
    "basebordmanufacturer", "baseboardmanufacturer", "baseboardproductname", "systemversion", "notavailable",
    "typeyourtexthere", "invalid", "empty", "null", "xxxxx", "na"))


def is_placeholder(value):
    """True for what firmware writes when it has no real value (any case or punctuation)."""
    key = _PUNCT_RE.sub("", (value or "").lower())
    if not key:
        return True  # nothing but spaces and punctuation ("--", "   ", "..")
    if len(key) > 1 and len(set(key)) == 1 and key[0] in "0fx":
        return True  # "00000000", "FFFFFFFF", "xxxx"
    return key in _PLACEHOLDER_KEYS


def clean(value):
    """Stripped value, or None when it is a BIOS placeholder."""
    if value is None:
        return None
    value = value.strip()
    return None if is_placeholder(value) else value


def parse(text):
    """List of records {"handle", "type", "title", "values": {key: value}, "lists": {key: [items]}}."""
    records, record, list_key = [], None, None
    for raw in (text or "").splitlines():
        match = _HANDLE_RE.match(raw)
        if match:
            record = {"handle": match.group(1), "type": int(match.group(2)), "title": None,
                      "values": {}, "lists": {}}
            records.append(record)
            list_key = None
            continue
        if record is None or not raw.strip():
            continue
        if not raw.startswith("\t"):
            if record["title"] is None:
                record["title"] = raw.strip()
            continue
        if raw.startswith("\t\t"):
            if list_key is not None:
                record["lists"].setdefault(list_key, []).append(raw.strip())
            continue
        key, sep, value = raw.strip().partition(":")
        if not sep:
            continue
        key = key.strip()
        value = value.strip()
        if value:
            record["values"].setdefault(key, value)
            list_key = None
        else:
            list_key = key
    return records


def _first_of_type(records, dmi_type):
    for rec in records:
        if rec["type"] == dmi_type:
            return rec["values"]
    return {}


def system(records):
    values = _first_of_type(records, 1)
    return {"manufacturer": clean(values.get("Manufacturer")), "product_name": clean(values.get("Product Name")),
            "version": clean(values.get("Version")), "family": clean(values.get("Family"))}


def baseboard(records):
    values = _first_of_type(records, 2)
    return {"manufacturer": clean(values.get("Manufacturer")), "product_name": clean(values.get("Product Name"))}


def bios(records):
    values = _first_of_type(records, 0)
    return {"vendor": clean(values.get("Vendor")), "version": clean(values.get("Version"))}


def _int(value):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def decode_processor_id(id_bytes, manufacturer=None, family=None):
    """Decode the 8-byte type-4 ID.

    ARM (SMBIOS 3.x): the first 4 bytes are MIDR_EL1, little-endian -> implementer/part.
    x86: the first 4 bytes are the CPUID leaf-1 EAX signature -> family/model.
    Anything else (Loongson stores ASCII) -> {}.
    """
    parts = (id_bytes or "").split()
    if len(parts) < 4:
        return {}
    try:
        raw = [int(p, 16) for p in parts[:4]]
    except ValueError:
        return {}
    word = raw[0] | raw[1] << 8 | raw[2] << 16 | raw[3] << 24
    if word == 0:
        return {}
    text = ("%s %s" % (manufacturer or "", family or "")).lower()
    looks_arm = any(k in text for k in ("arm", "hisilicon", "phytium", "ampere", "huawei"))
    if looks_arm:
        return {"implementer": "0x%x" % ((word >> 24) & 0xff), "part": "0x%03x" % ((word >> 4) & 0xfff),
                "variant": "0x%x" % ((word >> 20) & 0xf)}
    if all(32 <= b < 127 for b in raw):
        return {}  # ASCII (Loongson writes the model name here)
    base_family = (word >> 8) & 0xf
    ext_family = (word >> 20) & 0xff
    base_model = (word >> 4) & 0xf
    ext_model = (word >> 16) & 0xf
    cpu_family = base_family + ext_family if base_family == 0xf else base_family
    model = (ext_model << 4 | base_model) if base_family in (0x6, 0xf, 0x7) else base_model
    return {"cpu_family": cpu_family, "model": model}


def processors(records):
    """Populated type-4 records: manufacturer, version, family, id, signature, implementer/part or
    cpu_family/model, core_count, thread_count."""
    out = []
    for rec in records:
        if rec["type"] != 4:
            continue
        values = rec["values"]
        status = values.get("Status") or ""
        if "unpopulated" in status.lower():
            continue
        item = {
            "socket": clean(values.get("Socket Designation")),
            "manufacturer": clean(values.get("Manufacturer")),
            "version": clean(values.get("Version")),
            "family": clean(values.get("Family")),
            "id": clean(values.get("ID")),
            "signature": clean(values.get("Signature")),
            "core_count": _int(values.get("Core Count")),
            "thread_count": _int(values.get("Thread Count")),
            "implementer": None, "part": None, "cpu_family": None, "model": None,
        }
        signature = item["signature"] or ""
        match = re.search(r"Implementor (0x[0-9a-fA-F]+).*Part (0x[0-9a-fA-F]+)", signature)
        if match:
            item["implementer"] = "0x%x" % int(match.group(1), 16)
            item["part"] = "0x%03x" % int(match.group(2), 16)
        else:
            match = re.search(r"Family (\d+), Model (\d+)", signature)
            if match and int(match.group(1)):
                item["cpu_family"] = int(match.group(1))
                item["model"] = int(match.group(2))
        if item["implementer"] is None and item["cpu_family"] is None:
            decoded = decode_processor_id(item["id"], item["manufacturer"], item["family"])
            for key, value in decoded.items():
                item[key] = value
        if not (item["manufacturer"] or item["version"] or item["id"]):
            continue
        out.append(item)
    return out


def summary(text):
    """Everything the collectors keep from a dmidecode run or a saved dmidecode file."""
    records = parse(text)
    return {"records": len(records), "bios": bios(records), "system": system(records),
            "baseboard": baseboard(records), "processors": processors(records)}
