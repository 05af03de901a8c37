"""Validation of planned sshd and PAM configurations before anything is written.

sshd: every file sshd would read (sshd_config and, recursively, what its Include lines match,
with the planned contents) must be readable, every line a known keyword with an argument, every
Match followed by criteria — what `sshd -t` rejects as "Bad configuration option" or "missing
argument". A live host additionally runs `sshd -t` after writing (apply.py), before any reload.

PAM: every planned /etc/pam.d file keeps its syntax (type, control, module), keeps at least one
line of every type it had, and names only modules present on disk (a '-' line may be absent).
"""
from __future__ import absolute_import

import os
import re

from scanner.remediate.planner import SSHD_CONFIG

MAX_DEPTH = 16
PAM_TYPES = ("auth", "account", "password", "session")
PAM_MODULE_DIRS = ("/usr/lib64/security", "/lib64/security", "/usr/lib/security", "/lib/security",
                   "/usr/lib/x86_64-linux-gnu/security", "/lib/x86_64-linux-gnu/security",
                   "/usr/lib/aarch64-linux-gnu/security", "/lib/aarch64-linux-gnu/security",
                   "/usr/lib/loongarch64-linux-gnu/security", "/usr/lib/mips64el-linux-gnuabi64/security")
_KEYWORDS = None


def keywords():
    global _KEYWORDS
    if _KEYWORDS is None:
        from scanner.yamlio import load_yaml_file
        _KEYWORDS = frozenset(load_yaml_file(os.path.join(os.path.dirname(__file__), "sshd_keywords.yaml")))
    return _KEYWORDS


def sshd_binary(root):
    for path in ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"):
        host = path if root == "/" else os.path.join(root, path.lstrip("/"))
        if os.access(host, os.X_OK) and os.path.isfile(host):
            return host
    return None


def sshd_problems(overlay):
    """Problems of the planned sshd configuration: ["file:line: message"]."""
    problems = []
    _sshd_file(overlay, SSHD_CONFIG, 0, problems)
    return problems


def _sshd_file(ov, path, depth, problems):
    if depth > MAX_DEPTH:
        problems.append("%s: Include nested deeper than %d levels" % (path, MAX_DEPTH))
        return
    real = ov.resolve(path)
    st = ov.get(real)
    if st.kind != "file":
        problems.append("%s: %s" % (path, "is a directory, not a configuration file" if st.kind == "dir"
                                    else "cannot be read"))
        return
    for n, line in enumerate(st.text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z][A-Za-z0-9]*)(?:[ \t]*=[ \t]*|[ \t]+)?(.*)$", text)
        if not m:
            problems.append("%s:%d: cannot parse %r" % (path, n, text))
            continue
        keyword, args = m.group(1).lower(), m.group(2).strip()
        if keyword not in keywords():
            problems.append("%s:%d: bad configuration option %r" % (path, n, m.group(1)))
            continue
        if not args:
            problems.append("%s:%d: %s needs an argument" % (path, n, m.group(1)))
            continue
        if keyword == "include":
            for pattern in args.split():
                if not pattern.startswith("/"):
                    pattern = "/etc/ssh/" + pattern
                for inc in ov.glob(pattern):
                    _sshd_file(ov, inc, depth + 1, problems)


def pam_problems(overlay, paths):
    """Problems the plan would add to the PAM files among ``paths`` (a module missing before the fix
    is not the fix's doing; a stack left without a type, a broken line or a missing module is)."""
    problems = []
    for path in paths:
        if not (path.startswith("/etc/pam.d/") or path.startswith("/etc/authselect/")) or \
                path.endswith("authselect.conf"):
            continue
        before, after = overlay.original.get(path), overlay.current.get(path)
        if after is None or after.kind != "file":
            continue
        old_text = before.text() if before is not None and before.kind == "file" else ""
        old_problems = []
        had = _pam_types(old_text, old_problems, path, overlay)
        new_problems = []
        have = _pam_types(after.text(), new_problems, path, overlay)
        known = set(_unlocated(p) for p in old_problems)
        problems += [p for p in new_problems if _unlocated(p) not in known]
        for kind in sorted(had - have):
            problems.append("%s: no %s line left" % (path, kind))
    return problems


def _unlocated(problem):
    return re.sub(r":\d+:", ":", problem)


def _pam_types(text, problems, path, overlay=None):
    types = set()
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("@include"):
            types.add("@include")
            continue
        m = re.match(r"^(-?)([A-Za-z]+)\s+(\[[^\]]*\]|\S+)\s+(\S+)", s)
        if not m or m.group(2).lower() not in PAM_TYPES:
            if problems is not None:
                problems.append("%s:%d: not a PAM line: %r" % (path, n, s))
            continue
        types.add(m.group(2).lower())
        module = m.group(4)
        if problems is not None and overlay is not None and not m.group(1) and m.group(3) not in (
                "include", "substack") and not _module_exists(overlay, module):
            problems.append("%s:%d: module %s is not installed" % (path, n, module))
    return types


def _module_exists(ov, module):
    if module.startswith("/"):
        return ov.get(ov.resolve(module)).kind == "file"
    return any(ov.get(d + "/" + module).kind in ("file", "link") for d in PAM_MODULE_DIRS)
