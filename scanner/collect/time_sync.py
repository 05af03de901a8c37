"""Time synchronisation: chronyd, ntpd, systemd-timesyncd -- configured servers, enabled, running."""
from __future__ import absolute_import

import re

from scanner.collect.baseline_util import logical_lines, service_state, systemd_conf

NAME = "time_sync"
LIVE_ONLY = False


def servers_from(fs, paths, depth=0):
    servers = []
    for path in paths:
        text = fs.read_text(path, report=False)
        if text is None:
            continue
        for _, line in logical_lines(text, continuation=False):
            parts = line.split()
            if parts[0] in ("server", "pool", "peer") and len(parts) > 1:
                servers.append(parts[1])
            elif parts[0] in ("sourcedir", "confdir") and len(parts) > 1:
                for sub in fs.listdir(parts[1]) or []:
                    if sub.endswith(".sources") or sub.endswith(".conf"):
                        servers.extend(servers_from(fs, [parts[1] + "/" + sub]))
            elif parts[0] in ("include", "includefile") and len(parts) > 1 and depth < 8:
                # chrony.conf(5) "include pattern": every file the glob matches, in alphabetical order;
                # ntp.conf(5) "includefile file"
                servers.extend(servers_from(fs, sorted(fs.glob(parts[1])), depth + 1))
    return servers


def timesyncd_servers(fs):
    """NTP= and FallbackNTP= as timesyncd.conf(5) reads them: each assignment adds servers, an empty one resets
    the list; FallbackNTP= is used only when no NTP= server is configured (nor supplied by the network)."""
    lists = {"NTP": [], "FallbackNTP": []}
    for key, value, _ in systemd_conf(fs, "timesyncd.conf", "Time")[2]:
        if key in lists:
            lists[key] = lists[key] + value.split() if value else []
    return lists["NTP"] + lists["FallbackNTP"]


def collect(ctx):
    fs = ctx.fs
    daemons = []
    chrony = service_state(ctx, "chronyd.service", ("chronyd",), aliases=("chrony.service",),
                           binaries=("/usr/sbin/chronyd", "/sbin/chronyd"))
    if chrony["installed"]:
        paths = [p for p in ("/etc/chrony.conf", "/etc/chrony/chrony.conf") if fs.isfile(p)]
        chrony.update({"name": "chronyd", "servers": servers_from(fs, paths), "config": paths[0] if paths else None})
        daemons.append(chrony)
    ntpd = service_state(ctx, "ntpd.service", ("ntpd",), aliases=("ntp.service", "ntpsec.service"),
                         binaries=("/usr/sbin/ntpd",))
    if ntpd["installed"]:
        paths = [p for p in ("/etc/ntp.conf", "/etc/ntpsec/ntp.conf") if fs.isfile(p)]
        ntpd.update({"name": "ntpd", "servers": servers_from(fs, paths), "config": paths[0] if paths else None})
        daemons.append(ntpd)
    tsd = service_state(ctx, "systemd-timesyncd.service", ("systemd-timesyncd",),
                        binaries=("/lib/systemd/systemd-timesyncd", "/usr/lib/systemd/systemd-timesyncd"))
    if tsd["installed"]:
        tsd.update({"name": "systemd-timesyncd", "servers": timesyncd_servers(fs),
                    "config": "/etc/systemd/timesyncd.conf"})
        daemons.append(tsd)
    enabled = any(d["enabled"] for d in daemons)
    active = None
    if ctx.live:
        active = any(d["active"] for d in daemons)
    servers = []
    for d in daemons:
        if d["enabled"] or d["active"]:
            servers.extend(s for s in d["servers"] if s not in servers)
    return {"daemons": daemons, "enabled": enabled, "active": active,
            "synchronised": active if ctx.live else enabled, "servers": servers,
            "servers_configured": bool(servers) or any(d["name"] == "systemd-timesyncd" and (d["enabled"] or d["active"])
                                                       for d in daemons)}
