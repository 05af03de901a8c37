"""Mandatory access control: SELinux (config and live state) and AppArmor.

``mode`` summarises the strongest MAC in force: ``enforcing`` (SELinux
enforcing, or AppArmor enabled with at least one enforcing profile),
``permissive`` (SELinux permissive / AppArmor complain only) or ``disabled``.
Live state (/sys/fs/selinux/enforce, /sys/kernel/security/apparmor) wins over
configuration; offline the configuration and the kernel command line in
/etc/default/grub decide.
"""
from __future__ import absolute_import

import re

from scanner.collect.baseline_util import parse_key_value, unit_enabled

NAME = "mac"
LIVE_ONLY = False


def cmdline(ctx):
    if ctx.live:
        return ctx.fs.read_text("/proc/cmdline", report=False) or ""
    values, _ = parse_key_value(ctx.fs, "/etc/default/grub")
    values = values or {}
    return " ".join([values.get("grub_cmdline_linux", ""), values.get("grub_cmdline_linux_default", "")])


def selinux(ctx, cmd):
    fs = ctx.fs
    values, sources = parse_key_value(fs, "/etc/selinux/config")
    config_mode = (values or {}).get("selinux", "").lower() or None
    policy = (values or {}).get("selinuxtype") or None
    runtime = None
    if ctx.live and fs.isdir("/sys/fs/selinux"):
        enforce = fs.read_first_line("/sys/fs/selinux/enforce")
        runtime = {"1": "enforcing", "0": "permissive"}.get(enforce)
    elif ctx.live:
        runtime = "disabled"
    disabled_by_cmdline = bool(re.search(r"(^|\s)selinux=0(\s|$)", cmd))
    if ctx.live:
        mode = runtime
    else:
        mode = config_mode
        if mode == "enforcing" and re.search(r"(^|\s)enforcing=0(\s|$)", cmd):
            mode = "permissive"
    if disabled_by_cmdline:
        mode = "disabled"
    return {"config_mode": config_mode, "policy": policy, "runtime_mode": runtime,
            "disabled_by_cmdline": disabled_by_cmdline, "mode": mode or "disabled",
            "config_source": (sources or {}).get("selinux")}


def apparmor(ctx, cmd):
    fs = ctx.fs
    profile_files = [n for n in (fs.listdir("/etc/apparmor.d") or [])
                     if not n.startswith(".") and fs.isfile("/etc/apparmor.d/" + n)]
    enabled, enforce, complain = None, None, None
    if ctx.live:
        flag = fs.read_first_line("/sys/module/apparmor/parameters/enabled")
        enabled = flag == "Y"
        profiles = fs.read_text("/sys/kernel/security/apparmor/profiles", report=False)
        if profiles is not None:
            enforce = len(re.findall(r"\(enforce\)", profiles))
            complain = len(re.findall(r"\(complain\)", profiles))
    else:
        service = unit_enabled(fs, "apparmor.service")
        enabled = bool(service) and bool(profile_files) and not re.search(r"(^|\s)apparmor=0(\s|$)", cmd)
        if enabled:
            enforce = 0
            complain = 0
            for name in profile_files:
                head = fs.read_text("/etc/apparmor.d/" + name, max_bytes=64 * 1024, report=False) or ""
                if re.search(r"flags\s*=\s*\([^)]*complain", head):
                    complain += 1
                elif re.search(r"^\s*(profile\s+\S+|/\S+)\s.*\{", head, re.M):
                    enforce += 1
    return {"enabled": enabled, "profiles_enforce": enforce, "profiles_complain": complain,
            "profile_files": len(profile_files)}


def collect(ctx):
    cmd = cmdline(ctx)
    se = selinux(ctx, cmd)
    aa = apparmor(ctx, cmd)
    if se["mode"] == "enforcing" or (aa["enabled"] and (aa["profiles_enforce"] or 0) > 0):
        mode, kind = "enforcing", "selinux" if se["mode"] == "enforcing" else "apparmor"
    elif se["mode"] == "permissive" or (aa["enabled"] and (aa["profiles_complain"] or 0) > 0):
        mode, kind = "permissive", "selinux" if se["mode"] == "permissive" else "apparmor"
    else:
        mode, kind = "disabled", None
    return {"selinux": se, "apparmor": aa, "mode": mode, "kind": kind}
