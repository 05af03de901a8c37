"""Running instances of software products: processes matched by executable or JVM main class,
grouped per instance (process tree, or install home for ``instance_key: home``)."""
from __future__ import absolute_import

import posixpath

from scanner.classify.component import evidence
from scanner.classify.software.match import ProcView, best_match
from scanner.classify.software.static import _short


def home_of(view, cp):
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


def process_evidence(view):
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
            home = home_of(views[root], cp)
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


