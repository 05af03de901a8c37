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

import posixpath
import re
import shlex

from scanner.classify.component import evidence, make_component
from scanner.classify.software.match import (ProcView, best_match, compile_catalog, first_group)

WEIGHTS = {"process": 3, "package": 3, "crypto": 3, "probe": 0, "command": 3, "service": 2, "path": 2,
           "config": 1, "file": 1, "port": 1}
MAX_VALUE = 300
# Without a running process, a product needs one of these; a config file or a port alone is not enough.
IDENTIFYING = frozenset(["package", "service", "path", "file"])


def confidence(kinds):
    score = sum(WEIGHTS.get(k, 1) for k in set(kinds))
    if score >= 4:
        return "high"
    if score >= 3:
        return "medium"
    return "low"


def upstream_version(version):
    """'1:10.11.19-0+deb12u1' -> '10.11.19'; '1.21.5-4.oe2203' -> '1.21.5'."""
    if not version:
        return None
    v = version.split(":", 1)[1] if re.match(r"^\d+:", version) else version
    if "-" in v:
        v = v.rsplit("-", 1)[0]
    v = re.split(r"[+~]", v, 1)[0]
    return v or None


def _short(text, limit=MAX_VALUE):
    return text if len(text) <= limit else text[:limit - 3] + "..."


# -- static evidence ------------------------------------------------------------

def _package_evidence(cp, packages):
    """(evidence, upstream versions of the matching packages, server package first)."""
    found, version = [], []
    if not packages or not cp.packages:
        return found, version
    manager = packages.get("manager") or "package"
    anymatch = cp.packages_any.fullmatch if cp.packages_any is not None else (
        lambda name: any(rx.fullmatch(name) for rx in cp.packages))
    items = [i for i in packages.get("items") or [] if anymatch(i.get("name") or "")]
    for rx in cp.packages:  # the first pattern that matches gives the version (server package first)
        for item in items:
            if rx.fullmatch(item.get("name") or ""):
                ev = evidence("package", "%s %s" % (item["name"], item.get("version") or ""), manager)
                if ev not in found:
                    found.append(ev)
                v = upstream_version(item.get("version"))
                if v and v not in version:
                    version.append(v)
    return found, version


def _unit_views(services, compiled, installed=()):
    """[(unit, (product, signature))] for units whose ExecStart runs a product's executable."""
    out = []
    for unit in (services or {}).get("units") or []:
        cmd = unit.get("exec_start")
        if not cmd or unit.get("alias_of"):
            continue
        argv = cmd.split()
        if "'" in cmd or '"' in cmd:
            try:
                argv = shlex.split(cmd)
            except ValueError:
                pass
        if argv and argv[0].startswith("/"):
            view = ProcView({"name": posixpath.basename(argv[0]), "exe": argv[0], "cmdline": argv})
            best = best_match(view, compiled, installed)
            if best is not None:
                out.append((unit, best))
    return out


def _service_evidence(cp, services, unit_views):
    """(evidence, user the matching unit runs as)."""
    found, users = [], []
    services = services or {}
    for unit in services.get("units") or []:
        if unit.get("alias_of"):
            continue  # the unit it points to is listed (and matched) on its own
        if any(rx.fullmatch(unit["name"]) for rx in cp.services):
            found.append(_unit_ev(unit))
            users.append(unit.get("user"))
    for unit, best in unit_views:
        if best[0] is cp:
            ev = _unit_ev(unit, "ExecStart " + _short(unit.get("exec_start") or "", 160))
            if ev not in found and _unit_ev(unit) not in found:
                found.append(ev)
                users.append(unit.get("user"))
    for script in services.get("init_scripts") or []:
        if any(rx.fullmatch(script["name"]) for rx in cp.services):
            state = {True: "enabled", False: "disabled", None: "no rc links"}[script.get("enabled")]
            found.append(evidence("service", "init script %s (%s)" % (script["name"], state), script.get("path")))
    return found, next((u for u in users if u), None)


def _unit_ev(unit, extra=None):
    state = []
    if unit.get("enabled") is True:
        state.append("enabled")
    elif unit.get("enabled") is False:
        state.append("masked" if unit.get("masked") else "disabled")
    if unit.get("active") is True:
        state.append("active")
    elif unit.get("active") is False:
        state.append("inactive")
    value = unit["name"] + (" (%s)" % ", ".join(state) if state else "")
    if extra:
        value += ": " + extra
    return evidence("service", value, unit.get("source"))


def _alias_of_other(cp, target_name, compiled):
    """True when a symlink's target is the executable of another product."""
    for other in compiled:
        if other is cp:
            continue
        for sig in other.signatures:
            if (not sig.java and sig.exe is None and sig.args is None and sig.package is None
                    and sig.name.fullmatch(target_name)):
                return True
    return False


def _path_evidence(cp, software_paths, compiled):
    found, version = [], None
    entries = (software_paths or {}).get("found") or []
    for entry in entries:
        path, kind = entry["path"], entry.get("kind")
        link = entry.get("link")
        if link and _alias_of_other(cp, posixpath.basename(link.rstrip("/")), compiled):
            continue  # an alias of another product's program (/usr/sbin/mysqld -> mariadbd)
        if kind == "path" and cp.paths is not None and cp.paths.match(path):
            found.append(evidence("path", path, "install path"))
        elif kind == "config" and cp.config_files is not None and cp.config_files.match(path):
            found.append(evidence("config", path, "config file"))
        elif kind == "version":
            for pattern, rx in cp.version_files:
                if pattern.match(path):
                    m = rx.search(entry.get("head") or "")
                    if m:
                        found.append(evidence("file", _short(m.group(0), 120), path))
                        version = version or m.group(1)
    return found, version


# -- running instances ------------------------------------------------------------

def _home(view, cp):
    if view.java is not None:
        props = view.java["props"]
        for key in (cp.id + ".home", "catalina.home", "jboss.home.dir", "com.sun.aas.installRoot"):
            if props.get(key):
                return props[key]
        return None
    exe = view.exe
    if not exe:
        return None
    parent = posixpath.dirname(exe)
    if posixpath.basename(parent) in ("bin", "sbin"):
        parent = posixpath.dirname(parent)
    return parent


def _process_evidence(view):
    proc = view.proc
    src = "pid %s (%s)" % (proc.get("pid"), proc.get("name"))
    if proc.get("user"):
        src += ", user " + proc["user"]
    if view.java is not None:
        kind = "jar" if view.java["jar"] else "main class"
        value = "java %s %s" % (kind, view.java["main"])
        src += ": " + _short(view.cmdline_text, 240)
    else:
        value = _short(view.cmdline_text or (view.exe or proc.get("name") or ""))
        if proc.get("exe"):
            src += ", exe " + proc["exe"]
    return evidence("process", value, src)


def find_instances(processes, compiled, installed=()):
    """[(CompiledProduct, Signature, root view, [views])] for running product instances."""
    if not processes:
        return []
    views, matched = {}, {}
    for proc in processes:
        view = ProcView(proc)
        views[proc.get("pid")] = view
        best = best_match(view, compiled, installed)
        if best is not None:
            matched[proc.get("pid")] = best
    groups, order = {}, []
    for pid, (cp, sig) in matched.items():
        root = pid
        seen = set([pid])
        while True:
            ppid = views[root].proc.get("ppid")
            if ppid in matched and matched[ppid][0] is cp and ppid not in seen:
                root = ppid
                seen.add(ppid)
                continue
            break
        key = (cp.id, "pid", root)
        if cp.instance_key == "home":
            home = _home(views[root], cp)
            if home:
                key = (cp.id, "home", home)
        if key not in groups:
            groups[key] = [cp, matched[root][1], views[root], []]
            order.append(key)
        groups[key][3].append(views[pid])
        # the instance is described by its main server process: the signature listed first in the
        # catalog (ora_pmon before tnslsnr), then the lowest pid
        def rank(sig, view):
            return (cp.signatures.index(sig), view.proc.get("pid") or 0)
        if rank(matched[root][1], views[root]) < rank(groups[key][1], groups[key][2]):
            groups[key][1], groups[key][2] = matched[root][1], views[root]
    return [tuple(groups[k]) for k in order]


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
    ev = [_process_evidence(root)]
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
        "home": _home(root, cp),
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


def _static(cp, facts, unit_views, compiled):
    ev_pkg, pkg_version = _package_evidence(cp, facts.get("packages"))
    ev_svc, svc_user = _service_evidence(cp, facts.get("services"), unit_views)
    ev_path, file_version = _path_evidence(cp, facts.get("software_paths"), compiled)
    path_version = first_group(cp.version_paths, [e["value"] for e in ev_path])
    if path_version is None:
        path_version = first_group(cp.version_exe, [e["value"] for e in ev_svc])
    return {"evidence": ev_pkg + ev_svc + ev_path, "package_versions": pkg_version,
            "version_file": file_version, "path_version": path_version, "service_user": svc_user}


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


def _prefiltered(facts, compiled):
    """A shallow copy of facts whose package list and unit/script lists keep only names some
    product lists (units with an ExecStart are kept: what they run may identify a product)."""
    out = dict(facts)
    pkgs = facts.get("packages")
    if pkgs and compiled.package_any is not None:
        out["packages"] = dict(pkgs, items=[i for i in pkgs.get("items") or []
                                            if compiled.package_any.fullmatch(i.get("name") or "")])
    svcs = facts.get("services")
    if svcs and compiled.service_any is not None:
        keep = compiled.service_any.fullmatch
        out["services"] = dict(svcs, units=[u for u in svcs.get("units") or []
                                            if keep(u["name"]) or u.get("exec_start")],
                               init_scripts=[i for i in svcs.get("init_scripts") or [] if keep(i["name"])])
    return out


def classify(facts, catalog):
    compiled = compile_catalog(catalog)
    processes = facts.get("processes")
    live = processes is not None
    sockets_by_pid = {}
    for sock in facts.get("sockets") or []:
        if sock.get("pid") is not None:
            sockets_by_pid.setdefault(sock["pid"], []).append(sock)
    installed = [i.get("name") or "" for i in (facts.get("packages") or {}).get("items") or []]
    facts = _prefiltered(facts, compiled)
    unit_views = _unit_views(facts.get("services"), compiled, installed)
    instances = find_instances(processes, compiled, installed)
    running = {}
    for inst in instances:
        running.setdefault(inst[0].id, []).append(inst)
    components = []
    for cp in compiled:
        static = _static(cp, facts, unit_views, compiled)
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
