"""Small parsing helpers shared by the baseline collectors (not a collector itself).

Everything here is pure text handling or goes through the root-aware file
layer; nothing raises on bad input.
"""
from __future__ import absolute_import

import posixpath
import re

# Unit directories in systemd's search order (admin overrides first).
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")


def strip_comment(line, chars="#"):
    """Remove a trailing comment that starts a line or follows whitespace."""
    out = []
    prev = " "
    for ch in line:
        if ch in chars and prev in " \t":
            break
        out.append(ch)
        prev = ch
    return "".join(out).strip()


def logical_lines(text, continuation=True, comment_chars="#"):
    """Yield (lineno, line) for non-empty, non-comment lines; backslash joins lines."""
    buf, start = [], None
    for number, raw in enumerate((text or "").splitlines(), 1):
        line = raw.rstrip()
        if continuation and line.endswith("\\"):
            if start is None:
                start = number
            buf.append(line[:-1])
            continue
        if buf:
            buf.append(line)
            line, number_out = " ".join(buf), start
            buf, start = [], None
        else:
            number_out = number
        stripped = line.strip()
        if not stripped or stripped[0] in comment_chars:
            continue
        yield number_out, stripped


def to_int(value):
    """int from a decimal string (or None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if re.match(r"^[+-]?\d+$", text):
        return int(text)
    return None


def where(path, line):
    return "%s:%d" % (path, line)


def conf_d_files(fs, directory, suffix=".conf"):
    """Sorted target paths of ``directory/*suffix``."""
    names = fs.listdir(directory) or []
    return [posixpath.join(directory, n) for n in names if n.endswith(suffix) and not n.startswith(".")]


def parse_key_value(fs, path, sep="=", lower=True, text=None):
    """Parse ``key = value`` lines. Returns ({key: value}, {key: "path:line"}) or (None, None)."""
    if text is None:
        text = fs.read_text(path)
    if text is None:
        return None, None
    values, sources = {}, {}
    for number, line in logical_lines(text, continuation=False):
        if sep is None:
            parts = line.split(None, 1)
            if not parts:
                continue
            key = parts[0]
            value = parts[1].strip() if len(parts) > 1 else ""
        else:
            if sep not in line:
                continue
            key, value = line.split(sep, 1)
            key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if lower:
            key = key.lower()
        values[key] = value
        sources[key] = where(path, number)
    return values, sources


def ini_section(text, section):
    """Lines (lineno, line) of one ``[section]`` of a systemd-style ini file."""
    current = None
    for number, line in logical_lines(text or "", continuation=False, comment_chars="#;"):
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            continue
        if current == section:
            yield number, line


def unit_file(fs, unit):
    """Target path of a unit's file (first in search order) or None."""
    for directory in UNIT_DIRS:
        path = posixpath.join(directory, unit)
        if fs.exists(path) or fs.lstat(path) is not None:
            return path
    return None


def _wanted_units(fs):
    """(names linked from any *.wants/*.requires directory, rc S-link names, any rc dir seen); cached per scan."""
    cached = getattr(fs, "_baseline_wanted", None)
    if cached is not None:
        return cached
    wanted = set()
    for base in ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"):
        for entry in fs.listdir(base) or []:
            if entry.endswith(".wants") or entry.endswith(".requires"):
                wanted.update(fs.listdir(posixpath.join(base, entry)) or [])
    rc_started, rc_found = set(), False
    for level in ("2", "3", "5"):
        for rcdir in ("/etc/rc%s.d" % level, "/etc/rc.d/rc%s.d" % level):
            entries = fs.listdir(rcdir)
            if entries is None:
                continue
            rc_found = True
            rc_started.update(e[3:] for e in entries if e.startswith("S"))
    cached = (wanted, rc_started, rc_found)
    fs._baseline_wanted = cached
    return cached


PRESET_DIRS = ("/etc/systemd/system-preset", "/run/systemd/system-preset", "/usr/local/lib/systemd/system-preset",
               "/usr/lib/systemd/system-preset", "/lib/systemd/system-preset")
SYSTEMD_BINARIES = ("/usr/lib/systemd/systemd", "/lib/systemd/systemd")


def has_systemd(fs):
    return any(fs.exists(p) for p in SYSTEMD_BINARIES)


def first_boot(fs):
    """True for an image prepared for its first boot: machine-id(5) -- an empty or "uninitialized"
    /etc/machine-id makes systemd treat the boot as the first one and run "systemctl preset-all", so the
    presets decide what starts. (A root with no machine-id file at all is not taken as that signal: it
    is as often a partial tree or a container image that never boots systemd.)"""
    text = fs.read_text("/etc/machine-id", report=False)
    return text is not None and text.strip() in ("", "uninitialized")


def preset_says(fs, unit):
    """("enable"|"disable", where) for a unit per systemd.preset(5): *.preset files from the preset
    directories (same name: earlier directory wins) in lexical order of names, the FIRST matching line
    wins; a unit no line matches is enabled."""
    cached = getattr(fs, "_baseline_presets", None)
    if cached is None:
        chosen = {}
        for directory in PRESET_DIRS:
            for name in fs.listdir(directory) or []:
                if name.endswith(".preset") and name not in chosen:
                    chosen[name] = posixpath.join(directory, name)
        cached = []
        for name in sorted(chosen):
            for number, line in logical_lines(fs.read_text(chosen[name], report=False) or "", continuation=False,
                                              comment_chars="#;"):
                parts = line.split()
                if len(parts) >= 2 and parts[0] in ("enable", "disable"):
                    cached.append((parts[0], parts[1], where(chosen[name], number)))
        fs._baseline_presets = cached
    import fnmatch
    for action, pattern, location in cached:
        if fnmatch.fnmatchcase(unit, pattern):
            return action, location
    return "enable", "systemd.preset(5) default (no preset line matches)"


def unit_installable(fs, unit):
    """True when the unit file has an [Install] section with WantedBy=/RequiredBy= (presets act only on those)."""
    path = unit_file(fs, unit)
    text = fs.read_text(path, report=False) if path else None
    if not text:
        return False
    return any(section == "Install" and key in ("WantedBy", "RequiredBy") and value
               for _, section, key, value in systemd_syntax_lines(text))


def unit_enabled(fs, unit, aliases=()):
    """Whether a systemd unit (or a SysV script of that name) is enabled on the target.

    True when a ``*.wants``/``*.requires`` link for it exists (admin links under
    /etc/systemd/system, static ones under /usr/lib/systemd/system) or an S-link
    in rc2/3/5.d; False when it is masked or no link exists on a systemd system
    (decidable offline: systemd starts nothing else); on a never-booted image the
    presets systemd applies at its first boot decide. None only when the target
    has neither systemd nor SysV runlevel directories (unknown).
    """
    names = (unit,) + tuple(aliases)
    etc = "/etc/systemd/system"
    for name in names:
        if fs.readlink(posixpath.join(etc, name)) == "/dev/null":
            return False
    wanted, rc_started, rc_found = _wanted_units(fs)
    if any(name in wanted for name in names):
        return True
    if unit.rsplit(".", 1)[0] in rc_started:
        return True
    systemd = has_systemd(fs) or fs.isdir(etc)
    if systemd and first_boot(fs) and unit_installable(fs, unit):
        return preset_says(fs, unit)[0] == "enable"
    if systemd or rc_found:
        return False
    return None


def running_names(ctx):
    """Set of process names (comm and exe basename) on the live host, else None. Cached per context."""
    if not ctx.live:
        return None
    cached = getattr(ctx, "_baseline_proc_names", None)
    if cached is not None:
        return cached
    import os
    names = set()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open("/proc/%s/comm" % pid, "rb") as fh:
                comm = fh.read(64).decode("utf-8", "replace").strip()
        except (IOError, OSError):
            continue
        names.add(comm)
        if len(comm) < 15:
            continue
        # comm is cut at 15 characters: take the full name from the command line
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as fh:
                first = fh.read(256).split(b"\0", 1)[0].decode("utf-8", "replace")
        except (IOError, OSError):
            continue
        if first:
            names.add(posixpath.basename(first.split()[0]))
    ctx._baseline_proc_names = names
    return names


def service_state(ctx, unit, process_names, aliases=(), binaries=()):
    """{"installed", "enabled", "active"} for a daemon; active is None offline."""
    fs = ctx.fs
    installed = any(fs.exists(b) for b in binaries) if binaries else None
    if unit_file(fs, unit) is not None:
        installed = True
    enabled = unit_enabled(fs, unit, aliases)
    active = None
    running = running_names(ctx)
    if running is not None:
        active = any(n in running for n in process_names)
    return {"installed": bool(installed), "enabled": enabled, "active": active}


def find_binary(fs, name, dirs=("/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin")):
    for d in dirs:
        path = posixpath.join(d, name)
        if fs.isfile(path):
            return path
    return None


def mode_digits(mode):
    """Permission digits of a st_mode as ints: (special, user, group, other)."""
    return (mode >> 9) & 7, (mode >> 6) & 7, (mode >> 3) & 7, mode & 7


def account_names(fs):
    """({uid: name}, {gid: name}) read from the target's passwd/group (not the scanning host's)."""
    users, groups = {}, {}
    for path, table in (("/etc/passwd", users), ("/etc/group", groups)):
        text = fs.read_text(path, report=False) or ""
        for line in text.splitlines():
            parts = line.split(":")
            if len(parts) >= 3 and parts[2].isdigit():
                table.setdefault(int(parts[2]), parts[0])
    # id 0 is root whatever the image holds (the kernel's and every libc's superuser; base-passwd/setup
    # name it root): an image without /etc/group still has group 0 = root
    users.setdefault(0, "root")
    groups.setdefault(0, "root")
    return users, groups


# systemd's own configuration files (journald.conf, coredump.conf, timesyncd.conf ...): the main file
# is the first of /etc/systemd, /run/systemd, /usr/local/lib/systemd, /usr/lib/systemd that has it;
# then drop-ins NAME.conf.d/*.conf from those directories (a name in an earlier directory hides the
# same name later; a /dev/null link masks), applied in lexical order of names, a later assignment
# overriding an earlier one (systemd-system.conf(5)/journald.conf(5) "CONFIGURATION DIRECTORIES AND
# PRECEDENCE"). Lines follow systemd.syntax(7): "#" or ";" starts a comment line, a trailing
# backslash continues the line, "[Section]" headers, and whitespace around "=" is ignored
# ("Storage = none" is Storage=none).
SYSTEMD_CONF_DIRS = ("/etc/systemd", "/run/systemd", "/usr/local/lib/systemd", "/usr/lib/systemd")


def systemd_conf_files(fs, name):
    """Paths in the order systemd applies them for NAME.conf (e.g. "journald.conf")."""
    paths = []
    for directory in SYSTEMD_CONF_DIRS:
        main = posixpath.join(directory, name)
        if fs.isfile(main):
            paths.append(main)
            break
    chosen = {}
    for directory in SYSTEMD_CONF_DIRS:
        dropdir = posixpath.join(directory, name + ".d")
        for entry in fs.listdir(dropdir) or []:
            if entry.endswith(".conf") and entry not in chosen:
                chosen[entry] = posixpath.join(dropdir, entry)
    for entry in sorted(chosen):
        if fs.readlink(chosen[entry]) != "/dev/null":
            paths.append(chosen[entry])
    return paths


def systemd_syntax_lines(text):
    """Yield (lineno, section, key, value) per systemd.syntax(7)."""
    section, buf, start = None, [], None
    for number, raw in enumerate((text or "").splitlines(), 1):
        line = raw.strip()
        if buf and line[:1] in ("#", ";"):
            continue  # comment lines inside a continuation are dropped
        if line.endswith("\\"):
            if start is None:
                start = number
            buf.append(line[:-1])
            continue
        if buf:
            line, number = " ".join(buf + [line]).strip(), start
            buf, start = [], None
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        yield number, section, key.strip(), value.strip()


def systemd_conf(fs, name, section):
    """({key: value}, {key: "path:line"}, [(key, value, "path:line")]) of one section, later wins."""
    values, sources, assignments = {}, {}, []
    for path in systemd_conf_files(fs, name):
        for number, sect, key, value in systemd_syntax_lines(fs.read_text(path, report=False)):
            if sect != section:
                continue
            values[key], sources[key] = value, where(path, number)
            assignments.append((key, value, where(path, number)))
    return values, sources, assignments
