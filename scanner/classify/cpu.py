"""facts.cpu (cpuinfo / lscpu) and facts.dmi.processors (SMBIOS type 4) -> CPU components."""
from __future__ import absolute_import

from scanner.classify.component import evidence as make_evidence
from scanner.classify.component import make_component, unknown_component
from scanner.classify.hwcommon import products_with, search

_REGEX_KEYS = ("vendor_id", "model_name", "cpu_model", "isa", "loongarch_family", "power_cpu",
               "dmi_manufacturer", "dmi_version")
_LIST_KEYS = ("implementer", "part", "arch", "cpu_family", "heterogeneous")
ARM_LTD = "0x41"  # ARM's own implementer code: stock licensed cores, never what names a SoC


def cpu_signals(cpu):
    """The signals to match: with several core types (big.LITTLE) the SoC designer's own cores decide --
    the first type whose implementer is not ARM Ltd -- and ``heterogeneous`` says there are several (a phone or
    PC SoC such as Kirin, never a Kunpeng server, whose cores are all alike). util-linux lscpu-arm.c: 0x48 0xd02
    "TaiShan-v120 used in Kirin 990A and 9000S SoCs", the same part Kunpeng 920B servers report."""
    types = cpu.get("core_types") or []
    if len(types) < 2:
        return cpu
    signals = dict(cpu, heterogeneous="true")
    own = [t for t in types if not t.startswith(ARM_LTD + ":")]
    if own:
        signals["implementer"], signals["part"] = own[0].split(":", 1)
    return signals


def _holds(condition, signals):
    for key, expected in condition.items():
        value = signals.get(key)
        if value is None or value == "":
            return False
        if key in _REGEX_KEYS:
            if not search(expected, value):
                return False
        elif key in _LIST_KEYS:
            wanted = [str(x).lower() for x in (expected if isinstance(expected, list) else [expected])]
            if str(value).lower() not in wanted:
                return False
        else:
            return False  # unknown condition key: never matches (the catalog test reports it)
    return True


def match_signals(signals, catalog):
    """The first catalog CPU product (by priority) with a signature that holds, or None."""
    for product, match in products_with(catalog, "signatures"):
        if product["category"] != "cpu":
            continue
        for condition in match.get("signatures") or []:
            if isinstance(condition, dict) and condition and _holds(condition, signals):
                return product
    return None


def _dmi_signals(proc):
    return {"implementer": proc.get("implementer"), "part": proc.get("part"),
            "cpu_family": proc.get("cpu_family"), "model_name": proc.get("version"),
            "dmi_manufacturer": proc.get("manufacturer"), "dmi_version": proc.get("version")}


def _model(product, signals):
    parts = product.get("parts") or {}
    if signals.get("model_name"):
        return signals["model_name"]
    if signals.get("part") and signals["part"] in parts:
        return parts[signals["part"]]
    return signals.get("cpu_model") or signals.get("power_cpu")


def classify(facts, catalog):
    cpu = facts.get("cpu") or {}
    dmi_procs = (facts.get("dmi") or {}).get("processors") or []
    dmi_source = (facts.get("dmi") or {}).get("dmidecode_source")
    components = []
    signals = cpu_signals(cpu) if cpu else cpu
    product = match_signals(signals, catalog) if cpu else None
    has_cpu_facts = any(cpu.get(k) for k in ("vendor_id", "model_name", "implementer", "cpu_model", "isa",
                                             "power_cpu", "loongarch_family"))
    if product is not None or has_cpu_facts:
        evidence = [dict(e) for e in cpu.get("evidence") or []]
        details = dict((k, signals.get(k)) for k in ("arch", "vendor_id", "cpu_family", "model", "implementer",
                                                     "part", "logical_cpus", "sockets", "cores",
                                                     "threads_per_core", "core_types") if signals.get(k) is not None)
        if cpu.get("bios_vendor_id"):
            details["bios_vendor_id"] = cpu["bios_vendor_id"]
        for proc in dmi_procs:  # corroborating SMBIOS records
            if product is not None and match_signals(_dmi_signals(proc), catalog) is product:
                evidence.append(make_evidence("dmidecode", "%s / %s" % (proc.get("manufacturer"),
                                                                        proc.get("version")), dmi_source))
        if product is None:
            label = cpu.get("model_name") or cpu.get("vendor_id") or cpu.get("cpu_model") or (
                "ARM implementer %s part %s" % (cpu["implementer"], cpu.get("part")) if cpu.get("implementer")
                else "CPU (%s)" % (cpu.get("arch") or "unknown architecture"))
            return [unknown_component("cpu", label, evidence, model=cpu.get("model_name"), details=details)]
        components.append(make_component(product, evidence, model=_model(product, signals), details=details))
        return components
    # no CPU facts from the running system: SMBIOS processor records (offline saved dmidecode,
    # or a live host whose cpuinfo says nothing useful)
    groups = []  # [(product or None, [procs])] in first-seen order
    for proc in dmi_procs:
        found = match_signals(_dmi_signals(proc), catalog)
        key = found["id"] if found else "?" + str(proc.get("manufacturer") or proc.get("version"))
        for entry in groups:
            if entry[0] == key:
                entry[2].append(proc)
                break
        else:
            groups.append((key, found, [proc]))
    for _, found, procs in groups:
        first = procs[0]
        evidence = [make_evidence("dmidecode", "%s / %s%s" % (
            p.get("manufacturer"), p.get("version"),
            " (implementer %s part %s)" % (p["implementer"], p["part"]) if p.get("implementer") else ""),
            dmi_source) for p in procs[:4]]
        cores = [p.get("core_count") for p in procs if p.get("core_count")]
        threads = [p.get("thread_count") for p in procs if p.get("thread_count")]
        details = {"sockets": len(procs), "cores": sum(cores) if cores else None,
                   "threads": sum(threads) if threads else None,
                   "implementer": first.get("implementer"), "part": first.get("part"),
                   "cpu_family": first.get("cpu_family"), "model": first.get("model"), "source": "dmi"}
        if found is None:
            components.append(unknown_component("cpu", first.get("version") or first.get("manufacturer") or "CPU",
                                                evidence, model=first.get("version"), details=details))
        else:
            signals = _dmi_signals(first)
            components.append(make_component(found, evidence, model=_model(found, signals), details=details))
    return components
