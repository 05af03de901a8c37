"""Service units and init scripts.

* systemd unit files (.service, .socket) in /etc/systemd/system, /run/systemd/system,
  /usr/lib/systemd/system and /lib/systemd/system (first one wins, as in systemd);
  ``enabled`` is True when a ``*.wants``/``*.requires`` symlink in /etc/systemd/system
  names the unit, False when it is masked or has an [Install] section but no link
  (on a never-booted image -- no /etc/machine-id -- the presets applied at first boot decide),
  None for static units; ``active`` comes from systemctl on a live host booted with
  systemd and is None otherwise (offline, or no systemd running).
* SysV init scripts in /etc/init.d or /etc/rc.d/init.d; ``enabled`` is True with an
  S link in rc2-5.d, False with K links only, None with no links.
"""
from __future__ import absolute_import

import posixpath

from scanner.collect.baseline_util import first_boot, has_systemd, preset_says, unit_installable

NAME = "services"
LIVE_ONLY = False

UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
UNIT_SUFFIXES = (".service", ".socket")
INIT_DIRS = ("/etc/init.d", "/etc/rc.d/init.d")
RC_PARENTS = ("/etc", "/etc/rc.d")
SKIP_INIT = ("README", "functions", "skeleton", "rc", "rcS", "halt", "killall", "netconsole")


def _unit_user(text):
    if "User=" not in text:
        return None  # most units: no line to look for
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("User="):
            return line[5:].strip() or None
    return None


def _exec_start(text):
    if "ExecStart=" not in text:
        return None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("ExecStart="):
            value = line[len("ExecStart="):].lstrip("-@+!:")
            return value[:400] or None
    return None


def preset_enabled(fs, name):
    return preset_says(fs, name)[0] == "enable"


def enabled_units(fs):
    """Unit names that are wanted/required by some target in /etc/systemd/system."""
    names = set()
    base = "/etc/systemd/system"
    for entry in fs.listdir(base) or []:
        if entry.endswith(".wants") or entry.endswith(".requires"):
            names.update(fs.listdir(base + "/" + entry) or [])
    return names


def active_units(ctx):
    """name -> active bool from systemctl, or None when systemd is not running."""
    if not ctx.live or not ctx.fs.isdir("/run/systemd/system"):
        return None
    out = ctx.run(["systemctl", "list-units", "--all", "--type=service,socket", "--no-legend",
                   "--plain", "--no-pager"], timeout=10)
    if out is None:
        return None
    states = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            states[parts[0]] = parts[2] == "active"
    return states


def collect_units(ctx):
    fs = ctx.fs
    wanted = enabled_units(fs)
    active = active_units(ctx)
    boot_presets = not ctx.live and has_systemd(fs) and first_boot(fs)
    units, seen = [], set()
    for directory in UNIT_DIRS:
        for name in fs.listdir(directory) or []:
            if not name.endswith(UNIT_SUFFIXES) or name in seen:
                continue
            seen.add(name)
            path = directory + "/" + name
            link = fs.readlink(path)
            masked = link == "/dev/null"
            text = None if masked else fs.read_text(path, max_bytes=64 * 1024)
            if masked:
                enabled = False
            elif name in wanted:
                enabled = True
            elif text is not None and "[Install]" in text:
                # a never-booted image: systemd's first boot applies the presets (systemd.preset(5))
                enabled = preset_enabled(fs, name) if boot_presets and unit_installable(fs, name) else False
            else:
                enabled = None
            unit = {"name": name, "enabled": enabled,
                    "active": active.get(name, False) if active is not None else None,
                    "source": path, "exec_start": _exec_start(text) if text else None,
                    "user": _unit_user(text) if text else None}
            if masked:
                unit["masked"] = True
            elif link and posixpath.basename(link) != name and posixpath.basename(link).endswith(UNIT_SUFFIXES):
                unit["alias_of"] = posixpath.basename(link)  # e.g. mysql.service -> mariadb.service
            units.append(unit)
    # instances of templates enabled through wants/ links (redis-server@main.service)
    for name in sorted(wanted):
        if "@" in name and name not in seen and name.endswith(UNIT_SUFFIXES):
            template = name.split("@", 1)[0] + "@" + name[name.rfind("."):]
            src = next((u["source"] for u in units if u["name"] == template), None)
            units.append({"name": name, "enabled": True,
                          "active": active.get(name, False) if active is not None else None,
                          "source": src, "exec_start": None})
            seen.add(name)
    units.sort(key=lambda u: u["name"])
    return units


def collect_init_scripts(ctx):
    fs = ctx.fs
    scripts = []
    for directory in INIT_DIRS:
        names = fs.listdir(directory)
        if not names:
            continue
        links = {}
        for parent in RC_PARENTS:
            for level in "2345":
                for entry in fs.listdir("%s/rc%s.d" % (parent, level)) or []:
                    if len(entry) > 3 and entry[0] in "SK" and entry[1:3].isdigit():
                        links.setdefault(entry[3:], set()).add(entry[0])
        for name in names:
            if name.startswith(".") or name in SKIP_INIT or name.endswith((".dpkg-dist", ".rpmsave")):
                continue
            kinds = links.get(name)
            enabled = None if not kinds else ("S" in kinds)
            scripts.append({"name": name, "path": posixpath.join(directory, name), "enabled": enabled})
        break  # /etc/init.d is often a link to /etc/rc.d/init.d
    return scripts


def collect(ctx):
    return {"units": collect_units(ctx), "init_scripts": collect_init_scripts(ctx)}
