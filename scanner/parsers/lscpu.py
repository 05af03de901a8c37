"""`lscpu` output (old flat and new indented layouts) -> the cpuinfo summary shape."""
from __future__ import absolute_import

import re


def parse(text):
    """{"Key": "value"} of every "Key: value" line; indentation is ignored, the first value wins."""
    values = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not key or "\x00" in key:
            continue
        values.setdefault(key, value.strip())
    return values


def _int(value):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def summarize(values):
    vendor = values.get("Vendor ID") or None
    model_raw = values.get("Model")
    implementer = part = None
    arch = values.get("Architecture") or None
    # lscpu prints the ARM implementer as a vendor name and the part as a model name;
    # on old versions it prints the raw hex ("0x48", "0xd01").
    if vendor and re.match(r"^0x[0-9a-fA-F]+$", vendor):
        implementer = "0x%x" % int(vendor, 16)
    model_name = values.get("Model name") or None
    if model_name and re.match(r"^0x[0-9a-fA-F]+$", model_name):
        part = "0x%03x" % int(model_name, 16)
    summary = {
        "arch": arch,
        "vendor_id": vendor,
        "vendor_id_raw": vendor,
        "model_name": model_name,
        "cpu_family": _int(values.get("CPU family")),
        "model": _int(model_raw) if arch and re.match(r"^(x86_64|i\d86)$", arch) else None,
        "stepping": _int(values.get("Stepping")),
        "implementer": implementer,
        "part": part,
        "variant": None,
        "isa": None,
        "cpu_model": None,
        "system_type": None,
        "loongarch_family": None,
        "power_cpu": None,
        "platform": None,
        "machine": values.get("Machine type") or None,
        "logical_cpus": _int(values.get("CPU(s)")),
        "sockets": _int(values.get("Socket(s)")),
        "cores": None,
        "threads_per_core": _int(values.get("Thread(s) per core")),
        "bios_vendor_id": values.get("BIOS Vendor ID") or None,
        "bios_model_name": values.get("BIOS Model name") or None,
    }
    per_socket = _int(values.get("Core(s) per socket"))
    if per_socket and summary["sockets"]:
        summary["cores"] = per_socket * summary["sockets"]
    return summary


# lscpu's names for ARM implementers (util-linux sys-utils/lscpu-arm.c), so a sample that
# shows "Vendor ID: HiSilicon" still yields the implementer code the catalog matches on.
ARM_VENDOR_NAMES = {
    "arm": "0x41", "broadcom": "0x42", "cavium": "0x43", "dec": "0x44", "fujitsu": "0x46",
    "hisilicon": "0x48", "infineon": "0x49", "motorola/freescale": "0x4d", "nvidia": "0x4e",
    "apm": "0x50", "qualcomm": "0x51", "samsung": "0x53", "marvell": "0x56", "apple": "0x61",
    "faraday": "0x66", "intel": "0x69", "microsoft": "0x6d", "phytium": "0x70", "ampere": "0xc0",
}


# lscpu's part names whose meaning is unambiguous; they changed across util-linux versions
# (0xd01: "tsv110" in 2.35, "Kunpeng-920" in 2.36-2.39, "TaiShan-v110" in 2.40-2.42) and
# "Kunpeng-920" names several parts, so it stays unmapped (the model-name signature covers it).
ARM_PART_NAMES = {
    ("0x48", "tsv110"): "0xd01", ("0x48", "taishan-v110"): "0xd01", ("0x48", "taishan-v120"): "0xd02",
    ("0x48", "kunpeng-950"): "0xd06",
    ("0x70", "ftc310"): "0x303", ("0x70", "ftc660"): "0x660", ("0x70", "ftc661"): "0x661",
    ("0x70", "ftc662"): "0x662", ("0x70", "ftc663"): "0x663", ("0x70", "ftc664"): "0x664",
    ("0x70", "ftc862"): "0x862",
}


def parse_and_summarize(text):
    summary = summarize(parse(text))
    arch = (summary.get("arch") or "").lower()
    if arch.startswith("aarch64") or arch.startswith("arm"):
        if not summary["implementer"] and summary["vendor_id"]:
            summary["implementer"] = ARM_VENDOR_NAMES.get(summary["vendor_id"].strip().lower())
        if not summary["part"] and summary["implementer"] and summary["model_name"]:
            summary["part"] = ARM_PART_NAMES.get((summary["implementer"], summary["model_name"].strip().lower()))
    return summary
