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


def rsyslog_log_files(ctx):
    """Local files rsyslog's configuration writes to (selector targets and omfile actions), in order."""
    from scanner.collect import logging as logging_mod
    paths = logging_mod.rsyslog_files(ctx.fs)
    if not paths:
        return []
    rules, _ = logging_mod.parse_rsyslog(ctx, paths)
    out = []
    for rule in rules:
        target = rule["target"]
        if target.startswith("/") and not target.startswith("/dev/") and target not in out:
            out.append(target)
    return out


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
    # log files: the ones rsyslog's configuration names (not a fixed list); the usual names stay as before
    for path in rsyslog_log_files(ctx):
        if not any(f["path"] == path for f in files):
            files.append(entry(fs, path, users, groups, kind="log"))
    for path in fs.glob("/etc/ssh/ssh_host_*_key"):
        files.append(entry(fs, path, users, groups, kind="ssh-host-key"))
    present = [f for f in files if f["exists"]]
    return {"files": present, "missing": [f["path"] for f in files if not f["exists"]]}
