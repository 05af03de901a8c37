"""CPU: /proc/cpuinfo (bounded read), /sys/devices/system/cpu topology, and saved lscpu output.

Facts: the summary of :mod:`scanner.parsers.cpuinfo` (arch, vendor_id, model_name, cpu_family,
model, implementer, part, isa, cpu_model, ..., logical_cpus, sockets, cores, threads_per_core)
plus source, evidence and, on ARM, midr_el1. DMI type-4 processor records are in facts.dmi.
"""
from __future__ import absolute_import

import os as _os
import re

NAME = "cpu"
LIVE_ONLY = False

CPUINFO = "/proc/cpuinfo"
CPUINFO_MAX_BYTES = 4 * 1024 * 1024  # a 1024-thread host prints ~1.5 MB; more is not cpuinfo
# Saved `lscpu` output in an offline root (sosreport layout, or a file dropped next to the image).
SAVED_LSCPU = ("/sos_commands/processor/lscpu", "/lscpu", "/lscpu.txt")
SYS_CPU = "/sys/devices/system/cpu"
MAX_TOPOLOGY_CPUS = 4096


def _evidence(kind, value, source):
    return {"kind": kind, "value": value, "source": source}


def _topology(ctx):
    """Sockets/cores/threads from sysfs, or None."""
    names = [n for n in (ctx.fs.listdir(SYS_CPU) or []) if re.match(r"^cpu\d+$", n)]
    if not names:
        return None
    packages, cores, seen = set(), set(), 0
    for name in names[:MAX_TOPOLOGY_CPUS]:
        base = "%s/%s/topology/" % (SYS_CPU, name)
        package = ctx.fs.read_first_line(base + "physical_package_id")
        core = ctx.fs.read_first_line(base + "core_id")
        if package is None and core is None:
            continue
        seen += 1
        packages.add(package)
        cores.add((package, core))
    if not seen:
        return None
    return {"logical_cpus": seen, "sockets": len(packages), "cores": len(cores),
            "threads_per_core": (seen // len(cores)) if cores else None}


def _saved_lscpu(ctx):
    from scanner.parsers import lscpu
    for path in SAVED_LSCPU:
        if not ctx.fs.isfile(path):
            continue
        text = ctx.fs.read_text(path, max_bytes=256 * 1024)
        if not text:
            continue
        summary = lscpu.parse_and_summarize(text)
        if summary.get("arch") or summary.get("vendor_id") or summary.get("model_name"):
            return path, summary
        ctx.error(path, "saved lscpu output has no Architecture, Vendor ID or Model name; ignored")
    return None, None


def collect(ctx):
    from scanner.parsers import cpuinfo
    summary, source, evidence = None, None, []
    data = ctx.fs.read_bytes(CPUINFO, max_bytes=CPUINFO_MAX_BYTES)
    if data is None:
        from scanner.collect.os import note_dangling
        note_dangling(ctx, CPUINFO)
    truncated = data is not None and len(data) >= CPUINFO_MAX_BYTES
    if data is not None:
        if b"\x00" in data[:4096]:
            ctx.error(CPUINFO, "binary data where text was expected; NUL bytes ignored")
            data = data.replace(b"\x00", b"")
        text = data.decode("utf-8", "replace")
        data = None  # the text is all we keep: a 4 MiB cpuinfo must not cost twice
        summary = cpuinfo.parse_and_summarize(text)
        text = None
        if not any(summary.get(k) for k in ("vendor_id", "model_name", "implementer", "cpu_model", "isa",
                                            "power_cpu", "loongarch_family")):
            ctx.error(CPUINFO, "no CPU identification fields (vendor_id, model name, CPU implementer, "
                               "cpu model, ISA) found")
            summary = None
        else:
            source = CPUINFO
    lscpu_path = None
    if summary is None and not ctx.live:
        lscpu_path, summary = _saved_lscpu(ctx)
        source = lscpu_path
    if summary is None:
        summary = {}
    if ctx.live:
        summary["arch"] = _os.uname().machine
    topology = _topology(ctx)
    if topology:
        for key, value in topology.items():
            if value:
                summary[key] = value
    midr = ctx.fs.read_first_line(SYS_CPU + "/cpu0/regs/identification/midr_el1")
    if midr:
        try:
            word = int(midr, 16)
            summary["midr_el1"] = midr
            summary.setdefault("implementer", None)
            summary.setdefault("part", None)
            if not summary["implementer"]:
                summary["implementer"] = "0x%x" % ((word >> 24) & 0xff)
                summary["part"] = "0x%03x" % ((word >> 4) & 0xfff)
            evidence.append(_evidence("sysfs", "midr_el1=%s" % midr,
                                      SYS_CPU + "/cpu0/regs/identification/midr_el1"))
        except ValueError:
            ctx.error(SYS_CPU + "/cpu0/regs/identification/midr_el1", "not a hex number: %r" % midr[:40])
    if not summary or not any(v for k, v in summary.items() if k != "arch"):
        if not ctx.live:
            return None
    kind = "cpuinfo" if source == CPUINFO else ("lscpu" if lscpu_path else "sysfs")
    for key, label in (("vendor_id_raw", "vendor_id"), ("model_name", "model name"),
                       ("implementer", "CPU implementer"), ("part", "CPU part"), ("cpu_family", "cpu family"),
                       ("cpu_model", "cpu model"), ("isa", "ISA"), ("loongarch_family", "CPU Family"),
                       ("power_cpu", "cpu"), ("machine", "machine"), ("system_type", "system type")):
        value = summary.get(key)
        if value is not None and value != "" and source:
            evidence.append(_evidence(kind, "%s: %s" % (label, value), source))
    if len(summary.get("core_types") or ()) > 1 and source:
        evidence.append(_evidence(kind, "core types (implementer:part): %s" % ", ".join(summary["core_types"]), source))
    summary["source"] = source
    summary["truncated"] = bool(truncated)
    summary["evidence"] = evidence
    return summary
