"""Software classifier: databases, middleware, message queues, web servers, caches, crypto libraries.

Evidence from every software fact is combined into ONE component per product
instance:

* running instances come from processes (executable name / JVM main class,
  never a word in some other program's arguments); child processes of an
  instance and -- for products with ``instance_key: home`` -- processes run
  from the same install home belong to it; listening sockets held by its
  processes confirm it (a port alone never identifies anything);
* static evidence -- packages, service units and init scripts (by name, or by
  an ExecStart that matches a process signature), install paths, config files,
  version files -- is attached to every running instance of the product, or
  makes one "installed" component when nothing runs.

Each component lists all its evidence, a confidence (high/medium/low) and the
version from the most reliable source that shows one.
"""
from __future__ import absolute_import

from scanner.classify.component import evidence, make_component
from scanner.classify.software.instances import find_instances, home_of, process_evidence
from scanner.classify.software.match import compile_catalog, first_group
from scanner.classify.software.static import _unit_views, prefiltered, static_evidence

WEIGHTS = {"process": 3, "package": 3, "crypto": 3, "probe": 0, "command": 3, "service": 2, "path": 2,
           "config": 1, "file": 1, "port": 1}
# Without a running process, a product needs one of these; a config file or a port alone is not enough.
IDENTIFYING = frozenset(["package", "service", "path", "file"])


def confidence(kinds):
    score = sum(WEIGHTS.get(k, 1) for k in set(kinds))
    if score >= 4:
        return "high"
    if score >= 3:
        return "medium"
    return "low"


def _pick_version(static, proc_version=None):
    """(version, source): version file, else the package that agrees with the running process
    (postgresql-15 vs postgresql-16 installed side by side), else the process, else the install path."""
    if static["version_file"]:
        return static["version_file"], "version file"
    pkgs = static["package_versions"]
    if pkgs:
        if proc_version is None:
            return pkgs[0], "package"
        for v in pkgs:
            if v == proc_version or v.startswith(proc_version + "."):
                return v, "package"
    if proc_version:
        return proc_version, "process"
    if static["path_version"]:
        return static["path_version"], "install path"
    return None, None


def _instance_component(cp, sig, root, members, sockets_by_pid, static, live):
    pids = sorted(set(v.proc.get("pid") for v in members))
    ev = [process_evidence(root)]
    listen = []
    for pid in pids:
        for sock in sockets_by_pid.get(pid, []):
            item = {"address": sock.get("address"), "port": sock.get("port"), "proto": sock.get("proto")}
            if item in listen:
                continue
            listen.append(item)
            note = "held by pid %s" % pid
            if sock.get("port") in cp.ports:
                note += "; the product's default port"
            ev.append(evidence("port", "%s %s:%s" % (sock.get("proto"), sock.get("address"), sock.get("port")), note))
    texts = [root.exe or "", root.cmdline_text]
    proc_version = first_group(cp.version_cmdline, [root.cmdline_text]) or first_group(cp.version_exe, texts)
    version, version_source = _pick_version(static, proc_version)
    args = root.args_text if root.java is None else " ".join(root.java["args"] + root.java["options"])
    data_dir = first_group(cp.detail_data_dir, [args])
    config = first_group(cp.detail_config, [args])
    details = {
        "running": True,
        "listen": [{"address": l["address"], "port": l["port"]} for l in listen],
        "data_dir": data_dir,
        "config_files": [config] if config else [c["value"] for c in static["evidence"] if c["kind"] == "config"],
        "pid": root.proc.get("pid"),
        "pids": pids,
        "user": root.proc.get("user"),
        "exe": root.proc.get("exe"),
        "home": home_of(root, cp),
        "version_source": version_source,
    }
    if root.java is not None:
        details["main"] = root.java["main"]
    all_ev = ev + static["evidence"]
    if len(pids) > 1:  # last: the table shows the first few pieces of evidence
        all_ev.append(evidence("process", "%d processes in this instance" % len(pids),
                               "pids " + ", ".join(str(p) for p in pids[:20])))
    return make_component(cp.product, all_ev, version=version, model=sig.model,
                          confidence=confidence(e["kind"] for e in all_ev), details=details)


def _installed_component(cp, static, live):
    version, source = _pick_version(static)
    configs = [e["value"] for e in static["evidence"] if e["kind"] == "config"]
    details = {"running": False if live else None, "listen": [],
               "data_dir": first_group(cp.detail_data_dir, configs),
               "config_files": configs, "pid": None, "user": static["service_user"],
               "version_source": source}
    return make_component(cp.product, static["evidence"], version=version,
                          confidence=confidence(e["kind"] for e in static["evidence"]), details=details)


def _crypto_component(cp, facts, static):
    libs = facts.get("crypto_libs") or {}
    entry = libs.get(cp.crypto_lib) if cp.crypto_lib else None
    order = {"command": 0, "probe": 1, "path": 2, "file": 3}
    ev = sorted(entry.get("evidence") or [], key=lambda e: order.get(e["kind"], 9)) if entry else []
    ev += [e for e in static["evidence"] if e not in ev]
    if not ev:
        return None
    version = (entry or {}).get("version") or (static["package_versions"] or [None])[0]
    details = {
        "path": (entry or {}).get("path"),
        "libraries": (entry or {}).get("libraries") or [],
        "sm2": (entry or {}).get("sm2"), "sm3": (entry or {}).get("sm3"), "sm4": (entry or {}).get("sm4"),
        "version_source": "tool" if (entry or {}).get("version") else ("package" if version else None),
    }
    kinds = ["crypto" if e["kind"] in ("command",) else e["kind"] for e in ev]
    return make_component(cp.product, ev, version=version, confidence=confidence(kinds), details=details)


def classify(facts, catalog):
    compiled = compile_catalog(catalog)
    processes = facts.get("processes")
    live = processes is not None
    sockets_by_pid = {}
    for sock in facts.get("sockets") or []:
        if sock.get("pid") is not None:
            sockets_by_pid.setdefault(sock["pid"], []).append(sock)
    installed = [i.get("name") or "" for i in (facts.get("packages") or {}).get("items") or []]
    facts = prefiltered(facts, compiled)
    unit_views = _unit_views(facts.get("services"), compiled, installed)
    instances = find_instances(processes, compiled, installed)
    running = {}
    for inst in instances:
        running.setdefault(inst[0].id, []).append(inst)
    components = []
    for cp in compiled:
        static = static_evidence(cp, facts, unit_views, compiled)
        if cp.crypto_lib:
            comp = _crypto_component(cp, facts, static)
            if comp is not None:
                components.append(comp)
            continue
        if cp.id in running:
            for _cp, sig, root, members in running[cp.id]:
                components.append(_instance_component(cp, sig, root, members, sockets_by_pid, static, live))
        elif IDENTIFYING & set(e["kind"] for e in static["evidence"]):
            components.append(_installed_component(cp, static, live))
    return components
