"""Kernel parameters as the system applies them at boot, and live values kept apart.

Boot value (what persists across a reboot) -- the nested tree ``sysctl.net.ipv4.ip_forward``:

* systemd hosts: ``systemd-sysctl.service`` (sysctl.d(5)) reads ``*.conf`` from
  /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d (and
  /lib/sysctl.d on split-usr builds). A file name found in an earlier directory
  hides the same name in later ones; a file linked to /dev/null (or empty) masks
  it. The surviving files are applied in lexical order of their *names*, so a
  later file wins, and a later line wins within a file. /etc/sysctl.conf is NOT
  read by systemd-sysctl -- only through the ``99-sysctl.conf -> ../sysctl.conf``
  link that distributions ship in /etc/sysctl.d or /usr/lib/sysctl.d.
  A glob key (``net.ipv4.conf.*.rp_filter = 2``) sets every matching key, except
  keys that have an explicit assignment anywhere, and keys excluded by a
  ``-key`` line without ``=`` (sysctl.d(5), systemd >= 249).
* hosts without systemd: the init script runs ``sysctl --system`` (procps-ng
  sysctl(8), "SYSTEM FILE PRECEDENCE"): the same directory list plus
  /lib/sysctl.d, same-name shadowing, lexical order of names, and then
  /etc/sysctl.conf itself last.
* masked systemd-sysctl.service: nothing is applied; kernel defaults persist.

Both parse a line as ``key = value`` with whitespace around key and value
ignored; ``#`` and ``;`` start comment lines; a leading ``-`` only says a failed
write is ignored. In a key, if the first separator is ``/`` the name is a path
and ``.``/``/`` are interchanged to get the dotted name (sysctl.d(5)).

Keys no applied file sets keep the kernel's default. When an applied file cannot
be read, every boot value is unknown (null) with the reason -- never a guess.

Also: ``live`` ({dotted key: value} from /proc/sys, only on a live host),
``live_differs`` (keys whose running value is not the boot value),
``conflicts`` ({key: [{value, location}, ...]} for a key set to different values
by different lines of the applied files, every location listed in applied
order), ``files`` (applied, in order), ``not_applied`` (files present but not
read at boot, with why) and ``sources`` ({key: location | "kernel default"}).
"""
from __future__ import absolute_import

import fnmatch
import posixpath

from scanner.collect.baseline_util import to_int, where

NAME = "sysctl"
LIVE_ONLY = False

SYSTEMD_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")
PROCPS_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")
SYSCTL_CONF = "/etc/sysctl.conf"
SYSTEMD_SYSCTL = ("/usr/lib/systemd/systemd-sysctl", "/lib/systemd/systemd-sysctl")
MAX_CONFLICTS = 200

KERNEL_DEFAULTS = {
    "net.ipv4.ip_forward": 0, "net.ipv4.conf.all.accept_redirects": 1, "net.ipv4.conf.default.accept_redirects": 1,
    "net.ipv4.conf.all.secure_redirects": 1, "net.ipv4.conf.all.send_redirects": 1,
    "net.ipv4.conf.default.send_redirects": 1, "net.ipv4.conf.all.accept_source_route": 0,
    "net.ipv4.conf.default.accept_source_route": 1, "net.ipv4.conf.all.rp_filter": 0,
    "net.ipv4.conf.default.rp_filter": 0, "net.ipv4.conf.all.log_martians": 0, "net.ipv4.tcp_syncookies": 1,
    "net.ipv4.icmp_echo_ignore_broadcasts": 1, "net.ipv4.icmp_ignore_bogus_error_responses": 1,
    "net.ipv6.conf.all.accept_redirects": 1, "net.ipv6.conf.all.accept_ra": 1, "net.ipv6.conf.all.forwarding": 0,
    "kernel.randomize_va_space": 2, "kernel.kptr_restrict": 0, "kernel.dmesg_restrict": 0,
    "kernel.yama.ptrace_scope": 0, "fs.suid_dumpable": 0, "fs.protected_hardlinks": 0,
    "fs.protected_symlinks": 0, "kernel.core_pattern": "core", "kernel.sysrq": 16,
}
KEYS = tuple(sorted(KERNEL_DEFAULTS))
GLOB_CHARS = "*?["


def normalize_key(raw):
    """Dotted sysctl name: a key whose first separator is '/' is a path; swap '.' and '/' (sysctl.d(5))."""
    key = raw.strip()
    slash, dot = key.find("/"), key.find(".")
    if slash != -1 and (dot == -1 or slash < dot):
        key = "".join("." if c == "/" else "/" if c == "." else c for c in key.strip("/"))
    return key


def normalize_value(raw):
    value = raw.strip()
    number = to_int(value)
    return number if number is not None else value


def _glob_matches(pattern, key):
    """A glob applies per path component (systemd globs /proc/sys/<path>): '*' never crosses a separator."""
    pparts, kparts = pattern.split("."), key.split(".")
    return len(pparts) == len(kparts) and all(fnmatch.fnmatchcase(k, p) for p, k in zip(pparts, kparts))


def uses_systemd_sysctl(fs):
    """(order name, masked): systemd-sysctl when the target boots systemd with its sysctl helper."""
    helper = any(fs.exists(p) for p in SYSTEMD_SYSCTL)
    if not helper:
        return "procps", False
    for directory in ("/etc/systemd/system", "/run/systemd/system"):
        if fs.readlink(posixpath.join(directory, "systemd-sysctl.service")) == "/dev/null":
            return "systemd-sysctl", True
    return "systemd-sysctl", False


def config_files(fs, order="systemd-sysctl"):
    """([applied paths in order], [{"path", "why"} present but not applied])."""
    chosen, skipped = {}, []
    dirs = SYSTEMD_DIRS if order == "systemd-sysctl" else PROCPS_DIRS
    for directory in dirs:
        for name in fs.listdir(directory) or []:
            path = posixpath.join(directory, name)
            if not name.endswith(".conf"):
                continue
            if name in chosen:
                if fs.host_path(path) != fs.host_path(chosen[name]):
                    skipped.append({"path": path, "why": "shadowed by %s" % chosen[name]})
                continue
            chosen[name] = path
    paths = [chosen[n] for n in sorted(chosen)]
    if order == "procps":
        if fs.isfile(SYSCTL_CONF):
            paths.append(SYSCTL_CONF)
    elif fs.isfile(SYSCTL_CONF):
        linked = any(fs.host_path(p) == fs.host_path(SYSCTL_CONF) for p in paths)
        if not linked:
            skipped.append({"path": SYSCTL_CONF, "why": "systemd-sysctl reads only sysctl.d directories and no "
                                                       "*.conf link there points to this file"})
    return paths, skipped


def parse_file(fs, path):
    """[(kind, key, value, location)] with kind in set|glob|exclude; None when unreadable."""
    if fs.readlink(path) == "/dev/null":
        return []  # masked
    text = fs.read_text(path)
    if text is None:
        return None
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        location = where(path, number)
        if "=" not in line:
            if line.startswith("-"):  # "-key" alone: keep key out of every glob
                out.append(("exclude", normalize_key(line[1:]), None, location))
            continue
        key, value = line.split("=", 1)
        key = normalize_key(key.strip().lstrip("-"))
        kind = "glob" if any(c in key for c in GLOB_CHARS) else "set"
        out.append((kind, key, normalize_value(value), location))
    return out


def boot_values(fs):
    """The computed boot-time state (see module docstring)."""
    order, masked = uses_systemd_sysctl(fs)
    paths, skipped = config_files(fs, order)
    if masked:
        skipped = [{"path": p, "why": "systemd-sysctl.service is masked"} for p in paths] + skipped
        paths = []
    explicit, globs, excluded, unreadable = {}, [], set(), []
    for path in paths:
        entries = parse_file(fs, path)
        if entries is None:
            unreadable.append(path)
            continue
        for kind, key, value, location in entries:
            if kind == "set":
                explicit.setdefault(key, []).append((value, location))
            elif kind == "glob":
                globs.append((key, value, location))
            elif order == "systemd-sysctl":
                excluded.add(key)

    def assignments(key):
        if key in explicit:
            return explicit[key]
        if key in excluded:
            return []
        return [(value, location) for pattern, value, location in globs if _glob_matches(pattern, key)]

    values, sources = {}, {}
    for key in KEYS:
        found = assignments(key)
        if unreadable:
            values[key], sources[key] = None, "unknown: %s could not be read" % ", ".join(unreadable)
        elif found:
            values[key], sources[key] = found[-1]
        else:
            values[key], sources[key] = KERNEL_DEFAULTS[key], "kernel default"
    conflicts = {}
    for key in sorted(set(explicit) | set(KEYS)):
        found = assignments(key)
        if len(set(repr(v) for v, _ in found)) > 1 and len(conflicts) < MAX_CONFLICTS:
            conflicts[key] = [{"value": v, "location": loc} for v, loc in found]
    return {"order": order, "masked": masked, "files": paths, "not_applied": skipped,
            "values": values, "sources": sources, "conflicts": conflicts, "unreadable": unreadable}


def live_values(fs):
    out = {}
    for key in KEYS:
        raw = fs.read_first_line("/proc/sys/" + key.replace(".", "/"))
        if raw is not None:
            out[key] = normalize_value(raw)
    return out


def effective(ctx):
    """{key: (value, source)}: the boot value and where it comes from (used by coredump)."""
    state = getattr(ctx, "_baseline_sysctl_state", None)
    if state is None:
        state = boot_values(ctx.fs)
        ctx._baseline_sysctl_state = state
    return dict((k, (state["values"][k], state["sources"][k])) for k in KEYS)


def collect(ctx):
    fs = ctx.fs
    effective(ctx)
    state = ctx._baseline_sysctl_state
    for path in state["unreadable"]:
        ctx.error(path, "applied at boot but unreadable: boot-time kernel parameters cannot be established")
    order_text = {"systemd-sysctl": "systemd-sysctl (sysctl.d(5))", "procps": "sysctl --system (procps)"}
    tree = {"sources": state["sources"], "conflicts": state["conflicts"], "files": state["files"],
            "not_applied": state["not_applied"], "order": state["order"], "masked": state["masked"],
            "source": "boot-time configuration applied by %s" % order_text[state["order"]]}
    for key, value in sorted(state["values"].items()):
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    if ctx.live and fs.isdir("/proc/sys"):
        live = live_values(fs)
        tree["live"] = live
        tree["live_differs"] = dict((k, {"boot": state["values"][k], "live": v}) for k, v in sorted(live.items())
                                    if state["values"].get(k) is not None and v != state["values"][k])
    return tree
