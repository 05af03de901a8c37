"""System logging: rsyslog / syslog-ng / journald, remote forwarding, logrotate retention.

* ``rules``: rsyslog/sysklogd selector lines (``authpriv.* /var/log/secure``,
  ``authpriv.* action(type="omfile" file="/var/log/secure")``) and their
  targets; ``auth_logged`` is true when authentication messages go to a local
  file -- a selector part ``authpriv.none`` excludes them (rsyslog reads a
  selector's parts left to right, a later one overriding an earlier one).
* ``remote_targets``: every forwarding action (``@host``, ``@@host:port``,
  ``action(type="omfwd" ...)``, omrelp, syslog-ng ``network()``/``tcp()``/
  ``udp()`` destinations), with whether TLS is configured.
* ``logrotate``: effective period x rotate (or maxage) for the main log files,
  as days; a size-only policy gives ``null`` (retention cannot be derived).
"""
from __future__ import absolute_import

import posixpath
import re

from scanner.collect.baseline_util import (conf_d_files, logical_lines, running_names, service_state, systemd_conf,
                                           to_int, where)

NAME = "logging"
LIVE_ONLY = False

MAIN_LOGS = ("/var/log/secure", "/var/log/auth.log", "/var/log/messages", "/var/log/syslog", "/var/log/cron")
PERIOD_DAYS = {"daily": 1, "weekly": 7, "monthly": 30, "yearly": 365, "hourly": 1}
UNBOUNDED_DAYS = 36500   # a log that is never rotated keeps everything
SHIPPERS = ("filebeat", "fluent-bit", "fluentd", "td-agent", "nxlog", "vector", "splunkd", "logstash",
            "ossec-logcollector", "wazuh-logcollector")


def rsyslog_files(fs):
    paths = []
    if fs.isfile("/etc/rsyslog.conf"):
        paths.append("/etc/rsyslog.conf")
    paths.extend(conf_d_files(fs, "/etc/rsyslog.d"))
    return paths


def statements(text):
    """Logical lines, with RainerScript statements whose parentheses span several lines joined."""
    pending, start = [], None
    for number, line in logical_lines(text):
        if pending:
            pending.append(line)
        else:
            pending, start = [line], number
        joined = " ".join(pending)
        if joined.count("(") <= joined.count(")") or len(pending) > 50:
            yield start, joined
            pending = []
    if pending:
        yield start, " ".join(pending)


# How rsyslog creates a log file that does not exist yet (rsyslog tools/omfile.c, omfile docs "fileCreateMode",
# "$FileCreateMode", "fileOwner", "$umask"): a selector line (legacy syntax) takes the $FileCreateMode,
# $FileOwner and $FileGroup in effect at its position (reset values: 0644, the process user and group); an
# action(type="omfile") takes its own fileCreateMode/fileOwner/fileGroup, else the values of
# module(load="builtin:omfile" ...) seen before it (same defaults). The mode is then masked by the process
# umask: $umask / global(umask=...) when set, else the service's (see file_perms.rsyslog_umask).
_LEGACY_CREATE = {"$filecreatemode": "mode", "$fileowner": "owner", "$filegroup": "group"}
_CREATE_PARAMS = (("mode", r"fileCreateMode"), ("owner", r"fileOwner"), ("group", r"fileGroup"))


def _create_params(text, base):
    out = dict(base)
    for key, name in _CREATE_PARAMS:
        found = re.search(r'\b%s\s*=\s*"([^"]*)"' % name, text, re.I)
        if found:
            out[key] = found.group(1).strip()
    return out


def parse_rsyslog(ctx, paths, settings=None):
    """(rules, remote); ``settings`` (a dict) receives the process-wide ``umask`` and ``user`` when set."""
    rules, remote = [], []
    tls_global = False
    legacy = {"mode": "0644", "owner": None, "group": None}
    module = {"mode": "0644", "owner": None, "group": None}
    settings = settings if settings is not None else {}
    for path in paths:
        text = ctx.fs.read_text(path)
        if text is None:
            continue
        for number, line in statements(text):
            src = where(path, number)
            words = line.split()
            directive = words[0].lower() if words else ""
            if directive == "$resetconfigvariables":
                legacy = {"mode": "0644", "owner": None, "group": None}
            elif directive in _LEGACY_CREATE and len(words) > 1:
                legacy[_LEGACY_CREATE[directive]] = words[1]
            elif directive == "$umask" and len(words) > 1:
                settings["umask"] = words[1]
            elif directive == "$privdroptouser" and len(words) > 1:
                settings["user"] = words[1]
            elif re.match(r'module\s*\(\s*load\s*=\s*"builtin:omfile"', line, re.I):
                module = _create_params(line, module)
            elif re.match(r'global\s*\(', line, re.I):
                found = re.search(r'\bumask\s*=\s*"?([0-7]+)', line, re.I)
                if found:
                    settings["umask"] = found.group(1)
                found = re.search(r'\bprivdrop\.user\.name\s*=\s*"([^"]+)"', line, re.I)
                if found:
                    settings["user"] = found.group(1)
            if re.search(r'DefaultNetstreamDriver\s*[=\s]\s*"?gtls|StreamDriver(?:\.Name)?\s*=\s*"(gtls|ossl)"|'
                         r'\$ActionSendStreamDriverMode\s+1', line, re.I):
                tls_global = True
            for action in re.findall(r'action\s*\(([^)]*)\)', line, re.I):
                kind = re.search(r'type\s*=\s*"(\w+)"', action)
                if kind and kind.group(1).lower() in ("omfwd", "omrelp"):
                    target = re.search(r'target\s*=\s*"([^"]+)"', action)
                    port = re.search(r'port\s*=\s*"?(\d+)', action)
                    proto = re.search(r'protocol\s*=\s*"(\w+)"', action)
                    tls = bool(re.search(r'StreamDriver(Mode)?\s*=\s*"(gtls|ossl|1)"|tls\s*=\s*"on"', action, re.I))
                    remote.append({"host": target.group(1) if target else None,
                                   "port": int(port.group(1)) if port else None,
                                   "protocol": "relp" if kind.group(1).lower() == "omrelp" else
                                   (proto.group(1).lower() if proto else "udp"),
                                   "tls": tls, "source": src})
            if line.startswith("$") or line.startswith("module(") or line.startswith("input(") or \
                    line.startswith("action(") or line.startswith("template(") or line.startswith("global("):
                continue
            parts = line.split(None, 1)
            if len(parts) != 2 or "." not in parts[0]:
                continue
            selector, target = parts[0], parts[1].strip()
            if target.lower().startswith("action("):
                # RainerScript after a selector (rsyslog omfile docs): action(type="omfile" file="/var/log/x")
                # writes that file; omfwd/omrelp were taken above as remote targets
                kind = re.search(r'type\s*=\s*"(\w+)"', target, re.I)
                path = re.search(r'\bfile\s*=\s*"([^"]+)"', target, re.I)
                if kind and kind.group(1).lower() == "omfile" and path:
                    create = _create_params(target, module)
                    rules.append({"selector": selector, "target": path.group(1), "source": src,
                                  "create_mode": create["mode"], "create_owner": create["owner"],
                                  "create_group": create["group"]})
                elif kind and kind.group(1).lower() in ("omfwd", "omrelp"):
                    rules.append({"selector": selector, "target": "@" + (remote[-1]["host"] or "?")
                                  if remote else "@?", "source": src})
                continue
            if target.startswith("@"):
                body = target.lstrip("@")
                proto = "tcp" if target.startswith("@@") else "udp"
                body = re.sub(r"^\([^)]*\)", "", body)
                host, _, port = body.partition(":")
                remote.append({"host": host.strip("[]") or None, "port": to_int(port.split(";")[0]) if port else 514,
                               "protocol": proto, "tls": False, "source": src})
                rules.append({"selector": selector, "target": target, "source": src})
                continue
            if target.startswith(":omrelp:"):
                host = target[len(":omrelp:"):].split(":")[0]
                remote.append({"host": host, "port": None, "protocol": "relp", "tls": False, "source": src})
                continue
            rules.append({"selector": selector, "target": target.lstrip("-").split(";")[0], "source": src,
                          "create_mode": legacy["mode"], "create_owner": legacy["owner"],
                          "create_group": legacy["group"]})
    if tls_global:
        for item in remote:
            if item["protocol"] == "tcp":
                item["tls"] = True
    return rules, remote


def selector_covers(selector, facility):
    """Whether a syslog selector sends ``facility`` messages (later parts override earlier ones)."""
    covered = False
    for part in selector.split(";"):
        if "." not in part:
            continue
        facs, prio = part.split(".", 1)
        names = facs.split(",")
        if facility in names:
            covered = prio.strip() != "none"
        elif "*" in names and prio.strip() != "none":
            covered = True
    return covered


def parse_syslog_ng(ctx):
    remote = []
    paths = ["/etc/syslog-ng/syslog-ng.conf"] + conf_d_files(ctx.fs, "/etc/syslog-ng/conf.d")
    for path in paths:
        text = ctx.fs.read_text(path, report=False)
        if not text:
            continue
        for match in re.finditer(r'\b(network|tcp|udp|syslog)\s*\(\s*"?([\w.\-:]+)"?([^;]*)', text):
            kind, host, rest = match.groups()
            line = text.count("\n", 0, match.start()) + 1
            remote.append({"host": host, "port": to_int((re.search(r"port\((\d+)\)", rest) or [None, None])[1]),
                           "protocol": kind if kind in ("tcp", "udp") else
                           ("tcp" if "tcp" in rest else "udp"),
                           "tls": "tls(" in rest, "source": where(path, line)})
    return remote


def systemd_bool(value, default):
    """A boolean as systemd parses it (src/basic/parse-util.c parse_boolean: 1/yes/y/true/t/on and
    0/no/n/false/f/off, any case); anything else is logged and ignored, so the default stays."""
    text = (value or "").strip().lower()
    if text in ("1", "yes", "y", "true", "t", "on"):
        return True
    if text in ("0", "no", "n", "false", "f", "off"):
        return False
    return default


def journald(ctx):
    fs = ctx.fs
    values, sources, _ = systemd_conf(fs, "journald.conf", "Journal")  # systemd.syntax(7), drop-ins
    # journald.conf(5) Storage=: volatile, persistent, auto (the default), none; another value is ignored
    storage = (values.get("Storage") or "auto").strip().lower()
    if storage not in ("volatile", "persistent", "auto", "none"):
        storage = "auto"
    persistent = storage == "persistent" or (storage == "auto" and fs.isdir("/var/log/journal"))
    active = None
    names = running_names(ctx)
    if names is not None:
        active = "systemd-journald" in names or "systemd-journal" in names
    return {"storage": storage, "persistent": persistent, "active": active,
            # journald.conf(5): "By default, only forwarding to wall is enabled" -- unset is no, not unknown
            "forward_to_syslog": systemd_bool(values.get("ForwardToSyslog"), False),
            "max_retention_sec": values.get("MaxRetentionSec"), "system_max_use": values.get("SystemMaxUse"),
            "seal": systemd_bool(values.get("Seal"), True), "sources": sources}


def parse_logrotate(ctx):
    """{"default": {...}, "files": {path: {"period", "rotate", "maxage", "retention_days", "source"}}}."""
    fs = ctx.fs
    default = {"period": None, "rotate": None, "maxage": None}
    files = {}
    paths = ["/etc/logrotate.conf"] + [posixpath.join("/etc/logrotate.d", n) for n in (fs.listdir("/etc/logrotate.d") or [])
                                        if not n.startswith(".") and not n.endswith((".rpmsave", ".dpkg-old", ".rpmnew", ".dpkg-dist"))]
    if not fs.isfile("/etc/logrotate.conf"):
        return None
    for path in paths:
        text = fs.read_text(path, report=False)
        if text is None:
            continue
        block, targets, depth, in_script = None, [], 0, False
        pending = []
        for number, line in logical_lines(text, continuation=False):
            if in_script:
                if line == "endscript":
                    in_script = False
                continue
            if line in ("postrotate", "prerotate", "firstaction", "lastaction", "preremove"):
                in_script = True
                continue
            if line.endswith("{"):
                names = line[:-1].split()
                targets = [n.strip('"') for n in pending + names]
                pending = []
                block = dict(default)
                block["source"] = where(path, number)
                depth = 1
                continue
            if line == "}":
                for target in targets:
                    files[target] = block
                block, targets, depth = None, [], 0
                continue
            if line.startswith("/") and block is None:
                pending.extend(line.split())
                continue
            if line.startswith("include"):
                continue
            parts = line.split()
            holder = block if block is not None else default
            if parts[0] in PERIOD_DAYS:
                holder["period"] = parts[0]
            elif parts[0] in ("rotate", "maxage") and len(parts) > 1:
                holder[parts[0]] = to_int(parts[1])
            elif parts[0] in ("size", "maxsize") and block is not None and holder.get("period") is None:
                holder["size_only"] = True
    result = {}
    for log in MAIN_LOGS:
        block = None
        for pattern, value in files.items():
            if pattern == log or (any(c in pattern for c in "*?") and re.match(
                    "^" + re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$", log)):
                block = value
                break
        if block is None:
            continue
        period = block.get("period") or default.get("period")
        rotate = block.get("rotate") if block.get("rotate") is not None else default.get("rotate")
        maxage = block.get("maxage") if block.get("maxage") is not None else default.get("maxage")
        days = None
        if period and rotate is not None:
            days = PERIOD_DAYS[period] * (rotate + 1)
            if maxage:
                days = min(days, maxage)
        elif maxage:
            days = maxage
        result[log] = {"period": period, "rotate": rotate, "maxage": maxage, "retention_days": days,
                       "source": block.get("source")}
    return {"default": default, "files": result}


def collect(ctx):
    fs = ctx.fs
    rsyslog = service_state(ctx, "rsyslog.service", ("rsyslogd",), binaries=("/usr/sbin/rsyslogd", "/sbin/rsyslogd"))
    syslog_ng = service_state(ctx, "syslog-ng.service", ("syslog-ng",), binaries=("/usr/sbin/syslog-ng",))
    paths = rsyslog_files(fs) if rsyslog["installed"] else []
    rules, remote = parse_rsyslog(ctx, paths) if paths else ([], [])
    if syslog_ng["installed"]:
        remote.extend(parse_syslog_ng(ctx))
    # authentication events are the authpriv facility's (PAM, sudo, su, login and sshd with RHEL's
    # SyslogFacility AUTHPRIV): "*.*;authpriv.none /var/log/messages" does not log them -- only a file whose
    # selector covers authpriv counts
    auth_files = sorted(set(r["target"] for r in rules if r["target"].startswith("/")
                            and selector_covers(r["selector"], "authpriv")))
    daemon_running = None
    if rsyslog["active"] is not None or syslog_ng["active"] is not None:
        daemon_running = bool(rsyslog["active"] or syslog_ng["active"])
    daemon_enabled = None
    if rsyslog["enabled"] is not None or syslog_ng["enabled"] is not None:
        daemon_enabled = bool(rsyslog["enabled"] or syslog_ng["enabled"])
    rotate = parse_logrotate(ctx)
    written = [p for p in MAIN_LOGS if p in auth_files or any(r["target"] == p for r in rules)]
    retention = None
    if rotate is not None:
        days = []
        for log in written:
            entry = rotate["files"].get(log)
            days.append(entry["retention_days"] if entry else UNBOUNDED_DAYS)
        retention = min(days) if days and all(d is not None for d in days) else None
    elif written:
        retention = UNBOUNDED_DAYS   # no logrotate at all: nothing is ever deleted
    running = None
    names = running_names(ctx)
    if names is not None:
        running = sorted(n for n in SHIPPERS if n in names)
    return {
        "rsyslog": rsyslog, "syslog_ng": syslog_ng,
        "daemon_installed": bool(rsyslog["installed"] or syslog_ng["installed"]),
        "daemon_enabled": daemon_enabled, "daemon_running": daemon_running,
        "config_files": paths, "rules": rules[:500],
        "auth_logged": bool(auth_files), "auth_log_files": auth_files,
        "remote_targets": remote, "forwarding": bool(remote) or bool(running),
        "forwarding_tls": bool(remote) and all(r["tls"] for r in remote),
        "shippers_running": running,
        "journald": journald(ctx),
        "logrotate": rotate, "main_logs": written, "retention_days_min": retention,
    }
