"""/proc/cpuinfo: blocks of "key : value" lines, and a summary shared with the lscpu parser.

The summary (see :func:`summarize`) has the same keys whatever the source, so the CPU
classifier never needs to know whether the facts came from cpuinfo or lscpu:
arch, vendor_id, vendor_id_raw, model_name, cpu_family, model, stepping, implementer,
part, variant, isa, cpu_model, system_type, loongarch_family, power_cpu, platform,
machine, logical_cpus, sockets, cores, threads_per_core.
"""
from __future__ import absolute_import

import re

X86_VENDORS = ("GenuineIntel", "AuthenticAMD", "HygonGenuine", "CentaurHauls", "Shanghai",
               "CyrixInstead", "NexGenDriven", "GenuineTMx86", "RiseRiseRise", "SiS SiS SiS",
               "UMC UMC UMC", "Geode by NSC", "Vortex86 SoC", "MiSTer AO486", "GenuineAO486")


def _lines(text):
    """Lines of ``text`` one at a time (no list of every line, no second copy of the text)."""
    start, size = 0, len(text)
    while start < size:
        end = text.find("\n", start)
        if end < 0:
            end = size
        yield text[start:end].rstrip("\r")
        start = end + 1


def parse(text):
    """Return {"blocks": [{key: value}], "truncated_block": bool}.

    Keys keep their case ("CPU implementer", "Model Name"); values keep inner and
    leading spaces except the single space after the colon (Zhaoxin's vendor_id is
    "  Shanghai  "). Lines without a colon are ignored.
    """
    blocks, current = [], {}
    shared = {}  # identical values (flags lines, model names) repeated per CPU are stored once
    for line in _lines(text or ""):
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if not key or "\x00" in key or "\ufffd" in key:
            continue
        if value.startswith(" "):
            value = value[1:]
        value = shared.setdefault(value, value)
        current.setdefault(shared.setdefault(key, key), value)
    if current:
        blocks.append(current)
    return {"blocks": blocks}


def _first(blocks, *keys):
    for key in keys:
        for block in blocks:
            value = block.get(key)
            if value is not None and value.strip():
                return value
    return None


def _int(value, base=10):
    if value is None:
        return None
    try:
        return int(str(value).strip(), base)
    except ValueError:
        return None


def _hex(value):
    """'0x48' / '0X48' / '72' -> '0x48' (lowercase), or None."""
    if value is None:
        return None
    text = str(value).strip().lower()
    try:
        number = int(text, 16) if text.startswith("0x") else int(text, 16 if re.search("[a-f]", text) else 10)
    except ValueError:
        return None
    return "0x%x" % number


def _hex_part(value):
    """CPU part is always hex in cpuinfo ('0xd01'); keep three digits."""
    if value is None:
        return None
    text = str(value).strip().lower()
    try:
        number = int(text, 16)
    except ValueError:
        return None
    return "0x%03x" % number


def infer_arch(summary):
    """Architecture from what cpuinfo shows, when uname is not available (offline roots)."""
    if summary.get("vendor_id"):
        vid = summary["vendor_id"]
        if vid == "IBM/S390":
            return "s390x"
        if vid in X86_VENDORS or (summary.get("cpu_family") is not None and summary.get("_flags")):
            flags = (summary.get("_flags") or "").split()
            if "lm" in flags:
                return "x86_64"
            # a full flags line without "lm" is a 32-bit CPU; an abbreviated one tells nothing
            return "i686" if len(flags) > 30 else "x86"
    isa = (summary.get("isa") or "").lower()
    if "loongarch64" in isa or (summary.get("loongarch_family") or "").lower().startswith("loongson-64"):
        return "loongarch64"
    if summary.get("implementer"):
        arch_no = summary.get("_cpu_architecture")
        if arch_no is not None and arch_no.strip() in ("7", "6", "5"):
            return "armv7l"
        return "aarch64"
    if summary.get("cpu_model"):
        model = summary["cpu_model"].lower()
        if "mips64" in isa or "loongson-3" in model or "octeon" in model:
            return "mips64"
        return "mips"
    if summary.get("power_cpu"):
        return "ppc64"
    return None


def summarize(parsed):
    blocks = parsed.get("blocks") or []
    processors = [b for b in blocks if "processor" in b]
    vendor_raw = _first(blocks, "vendor_id", "vendor")
    summary = {
        "vendor_id": vendor_raw.strip() if vendor_raw else None,
        "vendor_id_raw": vendor_raw,
        "model_name": (_first(blocks, "model name", "Model Name") or "").strip() or None,
        "cpu_family": _int(_first(blocks, "cpu family")),
        "model": None,
        "stepping": _int(_first(blocks, "stepping")),
        "implementer": _hex(_first(blocks, "CPU implementer")),
        "part": _hex_part(_first(blocks, "CPU part")),
        "variant": _hex(_first(blocks, "CPU variant")),
        "isa": (_first(blocks, "ISA", "isa") or "").strip() or None,
        "cpu_model": (_first(blocks, "cpu model") or "").strip() or None,
        "system_type": (_first(blocks, "system type") or "").strip() or None,
        "loongarch_family": (_first(blocks, "CPU Family") or "").strip() or None,
        "power_cpu": None,
        "platform": (_first(blocks, "platform") or "").strip() or None,
        "machine": None,
        "logical_cpus": None,
        "sockets": None,
        "cores": None,
        "threads_per_core": None,
    }
    model_value = _first(blocks, "model")
    cpu_line = _first(blocks, "cpu")
    if cpu_line and re.match(r"\s*POWER", cpu_line, re.I):
        summary["power_cpu"] = cpu_line.strip()
        summary["machine"] = (model_value or "").strip() or None
    elif model_value is not None:
        summary["model"] = _int(model_value)
    if not summary["model_name"] and summary["power_cpu"]:
        summary["model_name"] = summary["power_cpu"].split(",")[0].strip()
    if not summary["model_name"]:
        legacy = _first(blocks, "Processor")  # old ARM kernels: "Processor : AArch64 Processor rev 1"
        if legacy:
            summary["model_name"] = legacy.strip()
    # IBM Z: "processor 0: version = FF,  identification = 2733E8,  machine = 2964"
    for block in blocks:
        for key, value in block.items():
            if key.startswith("processor ") and "machine" in value:
                match = re.search(r"machine\s*=\s*([0-9A-Fa-f]+)", value)
                if match:
                    summary["machine"] = match.group(1)
                    break
        if summary["machine"] and summary["vendor_id"] == "IBM/S390":
            break
    if summary["vendor_id"] == "IBM/S390":
        summary["logical_cpus"] = _int(_first(blocks, "# processors"))
        if not summary["model_name"] and summary["machine"]:
            summary["model_name"] = "IBM Z machine type %s" % summary["machine"]
    else:
        summary["logical_cpus"] = len(processors) or None
    # sockets and cores, where cpuinfo tells them
    sockets = set(b["physical id"].strip() for b in blocks if b.get("physical id", "").strip())
    if not sockets:
        sockets = set(b["package"].strip() for b in processors if b.get("package", "").strip())
    if sockets:
        summary["sockets"] = len(sockets)
    cores = {}
    for block in blocks:
        pid = block.get("physical id", "").strip()
        count = _int(block.get("cpu cores"))
        if pid and count:
            cores[pid] = count
    if cores:
        summary["cores"] = sum(cores.values())
    elif summary["vendor_id"] != "IBM/S390":
        with_package = all(b.get("package", "").strip() for b in processors)
        core_ids = set((b.get("package", "").strip() if with_package else "", b["core"].strip())
                       for b in processors if b.get("core", "").strip())
        if core_ids:
            summary["cores"] = len(core_ids)
    if summary["cores"] and summary["logical_cpus"] and summary["logical_cpus"] >= summary["cores"]:
        summary["threads_per_core"] = summary["logical_cpus"] // summary["cores"]
    # ARM big.LITTLE: every distinct "implementer:part" in processor order. A phone/PC SoC lists several
    # (Kirin 9000S: HiSilicon 0xd02 and 0xd42 cores next to ARM Cortex-A510 0x41:0xd46, the little cores
    # usually first); a Kunpeng server lists one. The classifier needs all of them, not the first block's.
    core_types = []
    for block in processors:
        pair = (_hex(block.get("CPU implementer")), _hex_part(block.get("CPU part")))
        if pair[0] and pair[1] and "%s:%s" % pair not in core_types:
            core_types.append("%s:%s" % pair)
    if core_types:
        summary["core_types"] = core_types
    summary["_flags"] = (_first(blocks, "flags") or "").strip()
    summary["_cpu_architecture"] = _first(blocks, "CPU architecture")
    summary["arch"] = infer_arch(summary)
    del summary["_flags"]
    del summary["_cpu_architecture"]
    return summary


def parse_and_summarize(text):
    return summarize(parse(text))
