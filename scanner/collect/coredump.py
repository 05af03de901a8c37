"""Core dumps: hard core limit (limits.conf), fs.suid_dumpable, systemd-coredump storage."""
from __future__ import absolute_import

from scanner.collect.baseline_util import conf_d_files, logical_lines, systemd_conf, to_int, where

NAME = "coredump"
LIVE_ONLY = False


def hard_core_limit(fs):
    limit, source = None, None
    for path in ["/etc/security/limits.conf"] + conf_d_files(fs, "/etc/security/limits.d"):
        for number, line in logical_lines(fs.read_text(path, report=False) or "", continuation=False):
            parts = line.split()
            if len(parts) >= 4 and parts[0] == "*" and parts[1] in ("hard", "-") and parts[2] == "core":
                limit, source = parts[3], where(path, number)
    return limit, source


def sysctl_value(ctx, key):
    from scanner.collect import sysctl
    values = getattr(ctx, "_baseline_sysctl", None)
    if values is None:
        values = sysctl.effective(ctx)
        ctx._baseline_sysctl = values
    return values.get(key, (None, None))


def collect(ctx):
    fs = ctx.fs
    limit, limit_source = hard_core_limit(fs)
    # coredump.conf(5): Storage= defaults to "external"; "Storage = none" parses as systemd.syntax(7) says
    values, sources, _ = systemd_conf(fs, "coredump.conf", "Coredump")
    storage, storage_source = "external", "systemd default"
    if "Storage" in values:
        storage, storage_source = values["Storage"].lower(), sources["Storage"]
    suid, suid_source = sysctl_value(ctx, "fs.suid_dumpable")
    pattern, _ = sysctl_value(ctx, "kernel.core_pattern")
    hard = to_int(limit) if limit not in (None, "unlimited", "infinity") else None
    return {"hard_core_limit": limit, "hard_core_source": limit_source,
            "hard_core_zero": hard == 0,
            "suid_dumpable": to_int(suid), "suid_dumpable_source": suid_source,
            "core_pattern": pattern,
            "systemd_coredump": bool(pattern and "systemd-coredump" in str(pattern)),
            "storage": storage, "storage_source": storage_source,
            "disabled": hard == 0 and to_int(suid) == 0}
