"""Mode, owner and group of security-critical files (no filesystem walk).

Each entry gives the permission digits as ints (``user``, ``group``,
``other``, ``special`` for setuid/setgid/sticky) so rules can say "group at
most read, nothing for others" without bit arithmetic; owner and group names
come from the target's own /etc/passwd and /etc/group.
"""
from __future__ import absolute_import

import posixpath
import stat as stat_mod

from scanner.collect.baseline_util import account_names, mode_digits, parse_key_value

NAME = "file_perms"
LIVE_ONLY = False

PATHS = (
    "/etc/passwd", "/etc/passwd-", "/etc/shadow", "/etc/shadow-", "/etc/group", "/etc/group-",
    "/etc/gshadow", "/etc/gshadow-", "/etc/security/opasswd", "/etc/sudoers", "/etc/login.defs",
    "/etc/ssh/sshd_config", "/etc/crontab", "/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly",
    "/etc/cron.monthly", "/etc/cron.d", "/boot/grub2/grub.cfg", "/boot/grub/grub.cfg", "/boot/grub2/user.cfg",
    "/etc/pam.d", "/etc/security", "/etc/audit", "/etc/audit/auditd.conf", "/var/log/audit",
    "/etc/rsyslog.conf", "/var/log/messages", "/var/log/secure", "/var/log/auth.log", "/var/log/syslog",
    "/etc/selinux/config", "/etc/sysctl.conf",
)
# Kinds, so rules can select groups of paths with one membership test.
KINDS = {
    "/etc/passwd": "account-public", "/etc/passwd-": "account-public", "/etc/group": "account-public",
    "/etc/group-": "account-public", "/etc/shadow": "account-secret", "/etc/shadow-": "account-secret",
    "/etc/gshadow": "account-secret", "/etc/gshadow-": "account-secret", "/etc/security/opasswd": "account-secret",
    "/etc/crontab": "cron", "/etc/cron.hourly": "cron", "/etc/cron.daily": "cron", "/etc/cron.weekly": "cron",
    "/etc/cron.monthly": "cron", "/etc/cron.d": "cron", "/boot/grub2/grub.cfg": "bootloader",
    "/boot/grub/grub.cfg": "bootloader", "/boot/grub2/user.cfg": "bootloader",
    "/etc/ssh/sshd_config": "sshd-config", "/etc/sudoers": "sudoers",
    "/var/log/messages": "log", "/var/log/secure": "log", "/var/log/auth.log": "log", "/var/log/syslog": "log",
    "/var/log/audit": "audit-dir", "/etc/audit": "audit-config", "/etc/audit/auditd.conf": "audit-config",
}


def entry(fs, path, users, groups, kind=None):
    st = fs.stat(path)
    if st is None:
        return {"path": path, "exists": False, "kind": kind or KINDS.get(path, "config")}
    special, user, group, other = mode_digits(st.st_mode)
    return {"path": path, "exists": True, "kind": kind or KINDS.get(path, "config"),
            "type": "dir" if stat_mod.S_ISDIR(st.st_mode) else "file",
            "mode": "%04o" % stat_mod.S_IMODE(st.st_mode), "special": special, "user": user, "group": group,
            "other": other, "uid": st.st_uid, "gid": st.st_gid,
            "owner": users.get(st.st_uid, str(st.st_uid)), "group_name": groups.get(st.st_gid, str(st.st_gid))}


def audit_log_location(fs):
    """(directory of auditd.conf's log_file, log_group) -- auditd.conf(5) defaults /var/log/audit/audit.log, root."""
    values, _ = parse_key_value(fs, "/etc/audit/auditd.conf")
    values = values or {}
    log_file = values.get("log_file") or "/var/log/audit/audit.log"
    return posixpath.dirname(log_file) or "/var/log/audit", values.get("log_group") or "root"


def rsyslog_log_files(ctx, settings=None):
    """Local files rsyslog's configuration writes to (selector targets and omfile actions), in order, each
    with the first rule that names it (its create_mode/create_owner/create_group)."""
    from scanner.collect import logging as logging_mod
    paths = logging_mod.rsyslog_files(ctx.fs)
    if not paths:
        return []
    rules, _ = logging_mod.parse_rsyslog(ctx, paths, settings)
    out, seen = [], set()
    for rule in rules:
        target = rule["target"]
        if target.startswith("/") and not target.startswith("/dev/") and target not in seen:
            seen.add(target)
            out.append((target, rule))
    return out


def _octal(text):
    try:
        value = int(str(text).strip(), 8)
    except (TypeError, ValueError):
        return None
    return value if 0 <= value <= 0o7777 else None


def _live_umask(names=("rsyslogd",)):
    """Umask of the running rsyslogd (/proc/PID/status "Umask:", Linux 4.7+), or None."""
    import os
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open("/proc/%s/comm" % pid, "rb") as fh:
                if fh.read(64).decode("utf-8", "replace").strip() not in names:
                    continue
            with open("/proc/%s/status" % pid, "rb") as fh:
                for line in fh.read(8192).decode("utf-8", "replace").splitlines():
                    if line.startswith("Umask:"):
                        return line.split(":", 1)[1].strip()
        except (IOError, OSError):
            continue
    return None


def rsyslog_umask(ctx, settings):
    """(umask text, where it comes from) for files rsyslogd creates, or (None, why)."""
    if ctx.live:
        live = _live_umask()
        if live is not None:
            return live, "running rsyslogd (/proc/PID/status)"
    if _octal(settings.get("umask")) is not None:
        return settings["umask"], "$umask in the rsyslog configuration"
    from scanner.collect.baseline_util import UNIT_DIRS, ini_section, unit_file
    unit = unit_file(ctx.fs, "rsyslog.service")
    if unit is None:
        return None, None
    # the unit's UMask=, a drop-in's overriding it (systemd.unit(5): rsyslog.service.d/*.conf, later wins);
    # systemd.exec(5): "UMask= ... Defaults to 0022" for system services
    value, source = None, None
    dropins = []
    for directory in reversed(UNIT_DIRS):
        for path in ctx.fs.glob(directory + "/rsyslog.service.d/*.conf"):
            dropins.append(path)
    dropins.sort(key=posixpath.basename)
    for path in [unit] + dropins:
        for _number, line in ini_section(ctx.fs.read_text(path, report=False) or "", "Service"):
            key, _, val = line.partition("=")
            if key.strip() == "UMask" and _octal(val) is not None:
                value, source = val.strip(), path
    if value is None:
        return "0022", "systemd default for %s (no UMask=)" % unit
    return value, "UMask= in %s" % source


def created_log(fs, path, rule, umask, umask_from, settings, users, groups):
    """The file rsyslog will create at ``path`` on its first write there: mode, owner and group as rsyslog
    creates it (requested fileCreateMode masked by the process umask), marked ``exists: false``."""
    requested = _octal(rule.get("create_mode") or "0644")
    item = {"path": path, "exists": False, "kind": "log", "type": "file", "created_by": "rsyslog",
            "source": rule.get("source"), "create_mode": rule.get("create_mode") or "0644",
            "umask": umask, "umask_from": umask_from,
            # rsyslogd runs as root unless it drops privileges ($PrivDropToUser); fileOwner/fileGroup chown
            "owner": rule.get("create_owner") or settings.get("user") or "root",
            "group_name": rule.get("create_group") or "root"}
    mask = _octal(umask) if umask is not None else None
    if requested is None or mask is None:
        item["mode"] = None
        item["unknown_why"] = {"mode": {"key": "scan.reason.log_create_mode_unknown", "args": {}}}
    else:
        item["mode"] = "%04o" % (requested & ~mask & 0o7777)
    return item


def collect(ctx):
    fs = ctx.fs
    users, groups = account_names(fs)
    audit_dir, log_group = audit_log_location(fs)
    paths = [p for p in PATHS if p != "/var/log/audit"]
    files = [entry(fs, p, users, groups) for p in paths]
    # the audit log directory is where auditd.conf's log_file puts it; auditd creates it 0700, or 0750 when
    # log_group names another group that should read the logs (auditd.conf(5) log_group)
    audit = entry(fs, audit_dir, users, groups, kind="audit-dir")
    audit["log_group"] = log_group
    files.append(audit)
    # log files: the ones rsyslog's configuration names (not a fixed list); the usual names stay as before.
    # A named file that does not exist yet (a never-booted image, a facility nothing has logged to) is
    # judged as rsyslog will create it -- never left out, which would read as compliant
    settings = {}
    named = rsyslog_log_files(ctx, settings)
    umask = umask_from = None
    # a configuration left behind by a removed rsyslog (dpkg -r keeps conffiles) creates nothing
    from scanner.collect.baseline_util import find_binary
    creates = find_binary(fs, "rsyslogd") is not None
    for path, rule in named:
        known = [f for f in files if f["path"] == path]
        if known and known[0]["exists"]:
            continue
        if not known:
            item = entry(fs, path, users, groups, kind="log")
            if item["exists"] or not creates:
                files.append(item)
                continue
        if not creates:
            continue
        if umask_from is None:
            umask, umask_from = rsyslog_umask(ctx, settings)
            umask_from = umask_from or "unknown"
        item = created_log(fs, path, rule, umask, umask_from if umask is not None else None, settings, users, groups)
        if known:
            files[files.index(known[0])] = item
        else:
            files.append(item)
    for path in fs.glob("/etc/ssh/ssh_host_*_key"):
        files.append(entry(fs, path, users, groups, kind="ssh-host-key"))
    present = [f for f in files if f["exists"] or f.get("created_by")]
    return {"files": present, "missing": [f["path"] for f in files if not f["exists"]]}
