"""Linux audit: auditd installed/enabled/running, the rules in force, immutability, auditd.conf.

Live, the loaded rules come from ``auditctl -l`` and the kernel status from
``auditctl -s`` (``enabled 2`` = immutable). Offline, the rules are the ones
auditd.service loads at boot: with ``augenrules --load`` /etc/audit/rules.d/*.rules
(or audit.rules when that directory has none); with ``auditctl -R FILE`` only
that file -- rules.d is then never read (see rules_loader).

``categories`` names what the rules cover (identity files, sudoers, logins,
sessions, privileged commands, time, network config, MAC policy, DAC changes,
deletions, kernel modules, mounts); rules scoped to one user do not count.
"""
from __future__ import absolute_import

import posixpath
import re

from scanner.collect.baseline_util import (UNIT_DIRS, conf_d_files, find_binary, parse_key_value, service_state,
                                           systemd_syntax_lines, unit_file)

NAME = "audit"
LIVE_ONLY = False

# What auditd uses for a keyword auditd.conf does not set (or when there is no auditd.conf): its compiled-in
# values from clear_config() in audit-userspace src/auditd-config.c -- not the values of the auditd.conf that
# distributions ship (rotate / suspend there): max_log_size 0 and max_log_size_action SZ_IGNORE, num_logs 0,
# space_left_action, admin_space_left_action and disk_full_action FA_IGNORE, disk_error_action FA_SYSLOG,
# log_group 0, write_logs 1 (log_format is LF_RAW before audit 3.0, LF_ENRICHED since).
AUDITD_DEFAULTS = {"write_logs": "yes", "log_format": "enriched", "max_log_file": "0", "num_logs": "0",
                   "max_log_file_action": "ignore", "space_left_action": "ignore",
                   "admin_space_left_action": "ignore", "disk_full_action": "ignore",
                   "disk_error_action": "syslog", "log_group": "root"}

# auditd.conf(5): the values each action keyword accepts. auditd's config parser rejects anything else
# ("Option ... not found") and the daemon does not start -- such a value is invalid, not "not ignore".
ACTION_VALUES = {
    "max_log_file_action": ("ignore", "syslog", "suspend", "rotate", "keep_logs"),
    "space_left_action": ("ignore", "syslog", "rotate", "email", "exec", "suspend", "single", "halt"),
    "admin_space_left_action": ("ignore", "syslog", "rotate", "email", "exec", "suspend", "single", "halt"),
    "disk_full_action": ("ignore", "syslog", "rotate", "exec", "suspend", "single", "halt"),
    "disk_error_action": ("ignore", "syslog", "exec", "suspend", "single", "halt"),
}

CATEGORY_PATTERNS = {
    "identity": None,  # all four identity files, checked below
    "sudoers": [r"/etc/sudoers"],
    "login": [r"/var/log/lastlog", r"/var/run/faillock", r"/run/faillock", r"/var/log/faillog", r"/var/log/tallylog"],
    "session": [r"/var/run/utmp", r"/run/utmp", r"/var/log/wtmp", r"/var/log/btmp"],
    "privileged": [r"-F\s+perm=x.*auid>=\d+", r"execve.*-F\s+euid=0", r"execve.*-F\s+auid>=\d+",
                   r"-F\s+path=\S+/(su|sudo|passwd|chage|gpasswd|newgrp|mount|umount|pkexec)\b.*perm=x"],
    "time": [r"adjtimex", r"settimeofday", r"clock_settime", r"/etc/localtime"],
    "network": [r"sethostname", r"setdomainname", r"/etc/hosts\b", r"/etc/sysconfig/network", r"/etc/network"],
    "mac": [r"/etc/selinux", r"/usr/share/selinux", r"/etc/apparmor"],
    "dac": [r"\bchmod\b", r"\bfchmod", r"\bchown\b", r"\bfchown", r"\blchown", r"setxattr"],
    "delete": [r"\bunlink", r"\brename"],
    "modules": [r"init_module", r"delete_module", r"/sbin/insmod", r"/sbin/modprobe", r"/sbin/rmmod",
                r"/usr/bin/kmod"],
    "mounts": [r"-S\s+mount\b", r"\bmount\b.*-k"],
}
IDENTITY_FILES = ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow")


def categories(rules):
    text = "\n".join(r for r in rules if not re.search(r"-F\s+auid=\d+\b", r))
    found = []
    for name, patterns in sorted(CATEGORY_PATTERNS.items()):
        if name == "identity":
            if all(re.search(re.escape(f) + r"(\s|$)", text, re.M) for f in IDENTITY_FILES):
                found.append(name)
            continue
        if any(re.search(p, text) for p in patterns):
            found.append(name)
    return found


def rules_loader(fs):
    """How auditd.service loads the rules at boot: ("augenrules", None) -- RHEL 8/9, Debian: ExecStartPost=
    augenrules --load, which compiles /etc/audit/rules.d/*.rules --, ("auditctl", FILE) -- RHEL 7 style
    ExecStartPost=auditctl -R FILE, which reads only that file (rules.d is then ignored) --, or (None, None)
    when no unit says (SysV init: the old behaviour, rules.d when it has rules, else audit.rules)."""
    path = unit_file(fs, "auditd.service")
    if path is None:
        return None, None
    files = [path] + [posixpath.join(d, "auditd.service.d", n) for d in UNIT_DIRS
                      for n in fs.listdir(posixpath.join(d, "auditd.service.d")) or [] if n.endswith(".conf")]
    loader = (None, None)
    for unit_path in files:
        for _, section, key, value in systemd_syntax_lines(fs.read_text(unit_path, report=False)):
            if section != "Service" or key not in ("ExecStartPost", "ExecStart"):
                continue
            if key == "ExecStartPost" and value == "":
                loader = (None, None)  # an empty assignment resets the list (a drop-in)
                continue
            words = value.lstrip("-@+!:").split()
            prog = posixpath.basename(words[0]) if words else ""
            if prog == "augenrules" and "--load" in words:
                loader = ("augenrules", None)
            elif prog == "auditctl" and "-R" in words and words.index("-R") + 1 < len(words):
                loader = ("auditctl", words[words.index("-R") + 1])
    return loader


def rules_from_files(ctx):
    fs = ctx.fs
    loader, loaded_file = rules_loader(fs)
    if loader == "auditctl":
        paths = [loaded_file] if fs.isfile(loaded_file) else []
    else:
        paths = conf_d_files(fs, "/etc/audit/rules.d", suffix=".rules")
        if not paths and fs.isfile("/etc/audit/audit.rules"):
            paths = ["/etc/audit/audit.rules"]
    rules, enable_flag = [], None
    for path in paths:
        text = fs.read_text(path) or ""
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if re.match(r"^-e\s+\d", line):
                enable_flag = int(line.split()[1])
                continue
            if line.startswith("-D") or line.startswith("-b") or line.startswith("-f") or \
                    line.startswith("-r") or line.startswith("--backlog") or line.startswith("-i"):
                continue
            rules.append(line)
    return rules, enable_flag, paths


def remote_plugin(ctx):
    for path in ("/etc/audit/plugins.d/au-remote.conf", "/etc/audisp/plugins.d/au-remote.conf"):
        values, _ = parse_key_value(ctx.fs, path)
        if values and values.get("active", "").lower() == "yes":
            remote, _ = parse_key_value(ctx.fs, "/etc/audit/audisp-remote.conf")
            if not remote:
                remote, _ = parse_key_value(ctx.fs, "/etc/audisp/audisp-remote.conf")
            server = (remote or {}).get("remote_server", "")
            return [{"plugin": path, "remote_server": server or None}]
    return []


def collect(ctx):
    fs = ctx.fs
    binary = find_binary(fs, "auditd")
    service = service_state(ctx, "auditd.service", ("auditd",), binaries=("/sbin/auditd", "/usr/sbin/auditd"))
    facts = {"installed": binary is not None, "service": service, "rules": [], "rule_count": 0,
             "rules_source": None, "enabled_flag": None, "immutable": False, "categories": [],
             "conf": None, "remote": [], "rule_files": []}
    if binary is None and not fs.isdir("/etc/audit"):
        return facts
    rules, enable_flag, paths = rules_from_files(ctx)
    facts["rule_files"] = paths
    facts["rules_loader"] = " ".join(x for x in rules_loader(fs) if x) or None
    source = "rules files"
    if ctx.live and service.get("active"):
        auditctl = find_binary(fs, "auditctl")
        listed = ctx.run([auditctl, "-l"]) if auditctl else None
        if listed is not None:
            rules = [line.strip() for line in listed.splitlines()
                     if line.strip() and line.strip() != "No rules"]
            source = "auditctl -l"
            status = ctx.run([auditctl, "-s"]) or ""
            match = re.search(r"^enabled\s+(\d)", status, re.M)
            enable_flag = int(match.group(1)) if match else enable_flag
    facts.update({"rules": rules[:2000], "rule_count": len(rules), "rules_source": source,
                  "enabled_flag": enable_flag, "immutable": enable_flag == 2, "categories": categories(rules)})
    conf, sources = parse_key_value(fs, "/etc/audit/auditd.conf")
    if conf is not None:
        effective = dict(AUDITD_DEFAULTS)
        effective.update({k: v.lower() for k, v in conf.items()})
        effective["sources"] = sources
        invalid = []
        for key, allowed in sorted(ACTION_VALUES.items()):
            word = (effective.get(key) or "").split(" ", 1)[0]
            if word not in allowed:
                invalid.append({"keyword": key, "value": effective.get(key), "location": sources.get(key),
                                "allowed": list(allowed)})
                ctx.error(sources.get(key) or "/etc/audit/auditd.conf",
                          "%s = %s is not one of %s: auditd rejects the file and does not start"
                          % (key, effective.get(key), ", ".join(allowed)))
        effective["invalid"] = invalid
        facts["conf"] = effective
    elif binary is not None:
        ctx.error("/etc/audit/auditd.conf", "auditd is installed but auditd.conf is missing or unreadable;"
                  " auditd's built-in defaults assumed")
        facts["conf"] = dict(AUDITD_DEFAULTS, sources={})
    facts["remote"] = remote_plugin(ctx)
    facts["boot_audit"], facts["boot_audit_source"] = boot_audit(ctx)
    return facts


def boot_audit(ctx):
    """Whether the kernel starts auditing at boot (audit=1): live /proc/cmdline, offline /etc/default/grub."""
    if ctx.live:
        cmdline = ctx.fs.read_text("/proc/cmdline", report=False)
        if cmdline is not None:
            return bool(re.search(r"(^|\s)audit=1(\s|$)", cmdline)), "/proc/cmdline"
    values, sources = parse_key_value(ctx.fs, "/etc/default/grub")
    if values is None:
        return None, None
    line = " ".join([values.get("grub_cmdline_linux", ""), values.get("grub_cmdline_linux_default", "")])
    return bool(re.search(r"(^|\s)audit=1(\s|$)", line)), sources.get("grub_cmdline_linux") or "/etc/default/grub"
