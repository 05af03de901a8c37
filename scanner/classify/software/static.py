"""Static evidence of software products: packages, service units / init scripts, install paths,
config and version files (what an offline root shows as well as a live host)."""
from __future__ import absolute_import

import posixpath
import re
import shlex

from scanner.classify.component import evidence
from scanner.classify.software.match import ProcView, best_match, first_group

MAX_VALUE = 300


def _short(text, limit=MAX_VALUE):
    return text if len(text) <= limit else text[:limit - 3] + "..."


# -- static evidence ------------------------------------------------------------

def upstream_version(version):
    """'1:10.11.19-0+deb12u1' -> '10.11.19'; '1.21.5-4.oe2203' -> '1.21.5'."""
    if not version:
        return None
    v = version.split(":", 1)[1] if re.match(r"^\d+:", version) else version
    if "-" in v:
        v = v.rsplit("-", 1)[0]
    v = re.split(r"[+~]", v, 1)[0]
    return v or None


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


def _service_evidence(cp, services, unit_views, compiled=None):
    """(evidence, user the matching unit runs as). A unit name the catalog-wide alternation of every
    product's service patterns (``compiled.service_any``) rejects matches no product's pattern; the
    answer per name is kept on ``compiled`` for the other products."""
    found, users = [], []
    services = services or {}
    any_product = getattr(compiled, "service_any", None)
    known = compiled.__dict__.setdefault("unit_name_ok", {}) if any_product is not None else None
    if known is not None and len(known) > 20000:  # a long-lived process (the aggregator) sees many hosts
        known.clear()
    for unit in services.get("units") or []:
        if unit.get("alias_of"):
            continue  # the unit it points to is listed (and matched) on its own
        if known is not None:
            ok = known.get(unit["name"])
            if ok is None:
                ok = known[unit["name"]] = bool(any_product.fullmatch(unit["name"]))
            if not ok:
                continue
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
    return any(other is not cp for other in _name_owners(target_name, compiled))


def _name_owners(name, compiled):
    """The products with a plain name signature (no exe, args or package condition) matching ``name``;
    kept on ``compiled`` per name (every product asks about the same links)."""
    known = compiled.__dict__.setdefault("name_owners", {})
    owners = known.get(name)
    if owners is None:
        if len(known) > 20000:  # a long-lived process (the aggregator) sees many hosts
            known.clear()
        owners = known[name] = [other for other in compiled if any(
            not sig.java and sig.exe is None and sig.args is None and sig.package is None
            and sig.name.fullmatch(name) for sig in other.signatures)]
    return owners


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

def static_evidence(cp, facts, unit_views, compiled):
    ev_pkg, pkg_version = _package_evidence(cp, facts.get("packages"))
    ev_svc, svc_user = _service_evidence(cp, facts.get("services"), unit_views, compiled)
    ev_path, file_version = _path_evidence(cp, facts.get("software_paths"), compiled)
    path_version = first_group(cp.version_paths, [e["value"] for e in ev_path])
    if path_version is None:
        path_version = first_group(cp.version_exe, [e["value"] for e in ev_svc])
    return {"evidence": ev_pkg + ev_svc + ev_path, "package_versions": pkg_version,
            "version_file": file_version, "path_version": path_version, "service_user": svc_user}


def prefiltered(facts, compiled):
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


