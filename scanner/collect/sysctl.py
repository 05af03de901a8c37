"""Effective kernel parameters relevant to the baseline.

Live: read from /proc/sys. Offline: the files ``sysctl --system`` and
systemd-sysctl apply -- *.conf from /usr/lib/sysctl.d, /lib/sysctl.d,
/usr/local/lib/sysctl.d, /run/sysctl.d and /etc/sysctl.d (a file in an
earlier directory of that list overrides the same name in a later one: /etc
beats /run beats /usr/lib), applied in file-name order, then /etc/sysctl.conf
-- with the kernel default for keys no file sets.

Values are nested by the dotted name, so a rule reads
``sysctl.net.ipv4.ip_forward``; ``sources`` says where each came from.
"""
from __future__ import absolute_import

import posixpath

from scanner.collect.baseline_util import logical_lines, to_int, where

NAME = "sysctl"
LIVE_ONLY = False

DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")
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


def config_files(fs):
    chosen = {}
    for directory in DIRS:
        for name in fs.listdir(directory) or []:
            if name.endswith(".conf") and name not in chosen:
                chosen[name] = posixpath.join(directory, name)
    paths = [chosen[n] for n in sorted(chosen)]
    if fs.isfile("/etc/sysctl.conf"):
        paths.append("/etc/sysctl.conf")
    return paths


def effective(ctx):
    """{key: (value, source)} for KEYS."""
    fs = ctx.fs
    out = {}
    if ctx.live and fs.isdir("/proc/sys"):
        for key in KEYS:
            raw = fs.read_first_line("/proc/sys/" + key.replace(".", "/"))
            if raw is not None:
                value = to_int(raw)
                out[key] = (value if value is not None else raw, "/proc/sys")
        return out
    seen = {}
    for path in config_files(fs):
        text = fs.read_text(path)
        for number, line in logical_lines(text or "", continuation=False, comment_chars="#;"):
            if "=" not in line:
                continue
            key, value = [x.strip() for x in line.split("=", 1)]
            key = key.lstrip("-").replace("/", ".")
            number_value = to_int(value)
            seen[key] = (number_value if number_value is not None else value, where(path, number))
    for key in KEYS:
        out[key] = seen.get(key, (KERNEL_DEFAULTS[key], "kernel default"))
    return out


def collect(ctx):
    values = effective(ctx)
    ctx._baseline_sysctl = values
    tree = {"sources": {}, "source": "live /proc/sys" if ctx.live else "configuration files"}
    for key, (value, source) in sorted(values.items()):
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        tree["sources"][key] = source
    return tree
