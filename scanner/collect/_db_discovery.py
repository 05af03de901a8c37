"""Where database instances really are: running processes and service units (not a collector).

A production database rarely sits at the packaging default. The server's own
command line and its service unit say where it is, the way the server reads them:

* PostgreSQL / KingbaseES / openGauss (postgres(1)): ``-D DIR`` (else the
  ``PGDATA`` environment variable) is the configuration directory;
  ``-c name=value`` / ``--name=value`` set parameters with a higher priority than
  any file (``config_file``, ``hba_file``, ``data_directory``,
  ``listen_addresses``, ``port``); ``-h ADDR`` is listen_addresses, ``-p PORT``
  the port, ``-l`` ssl=on. ``pg_ctl -D DIR`` and RHEL's
  ``Environment=PGDATA=...`` with ``ExecStart=... -D ${PGDATA}`` count the same.
* MySQL / MariaDB (mysqld --help, "Using Option Files"): ``--defaults-file=F``
  reads only F; ``--defaults-extra-file=F`` reads F after the global files;
  ``--datadir``, ``--port``, ``--bind-address``, ``--skip-networking`` on the
  command line override every option file.
* Redis (redis-server(1)): the first argument that is not an option is the
  configuration file; ``--name value`` arguments after it override it.
* DM (dmserver): ``path=/x/dm.ini`` or a bare ``/x/dm.ini`` argument; DM's
  generated service scripts (DmService<NAME>) carry ``INI_PATH=/x/dm.ini``.

Each candidate: {"engine", "pid" (live process) or None, "config_dir"/"config_file"/"data_dir",
"options" ({name: value} from the command line), "evidence": [{"kind", "value"}]}.
"""
from __future__ import absolute_import

import posixpath
import re
import shlex

from scanner.collect.baseline_util import UNIT_DIRS, systemd_syntax_lines, unit_enabled

PG_SERVERS = {"postgres": "postgresql", "postmaster": "postgresql", "kingbase": "kingbase",
              "gaussdb": "opengauss", "pg_ctl": "postgresql", "sys_ctl": "kingbase", "gs_ctl": "opengauss"}
MYSQL_SERVERS = {"mysqld": "mysql", "mariadbd": "mariadb", "mysqld_safe": "mysql", "mariadbd-safe": "mariadb"}
REDIS_SERVERS = ("redis-server",)
DM_SERVERS = ("dmserver",)
UNIT_WORDS = re.compile(r"postgres|pgsql|kingbase|gauss|mysql|mariadb|redis|dmservice|dmserver|dm_", re.I)
MAX_UNITS = 200


def _expand(value, env):
    """${VAR} and $VAR from the unit's Environment= (systemd.service(5) ExecStart= variable expansion)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), m.group(0)), value)


def _split(command):
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def from_argv(argv, env=None, evidence=None):
    """A candidate from one server command line, or None when it is not a database server we know."""
    if not argv:
        return None
    env = env or {}
    prog = posixpath.basename(argv[0])
    # ExecStart prefixes (systemd.service(5)): "-", "@", "+", "!", ":"
    while prog[:1] in "-@+!:" and prog:
        prog = prog[1:]
    args = argv[1:]
    ev = list(evidence or [])
    if prog in PG_SERVERS:
        cand = {"engine": PG_SERVERS[prog], "options": {}, "evidence": ev}
        i = 0
        while i < len(args):
            a = args[i]
            nxt = args[i + 1] if i + 1 < len(args) else None
            if a == "-D" and nxt is not None:
                cand["config_dir"] = nxt
                i += 1
            elif a.startswith("-D") and len(a) > 2:
                cand["config_dir"] = a[2:]
            elif a.startswith("--pgdata="):
                cand["config_dir"] = a.split("=", 1)[1]
            elif a == "-c" and nxt is not None and "=" in nxt:
                key, value = nxt.split("=", 1)
                cand["options"][key.strip().lower().replace("-", "_")] = value.strip().strip("'\"")
                i += 1
            elif a.startswith("--") and "=" in a and not a.startswith("--pgdata"):
                key, value = a[2:].split("=", 1)
                cand["options"][key.lower().replace("-", "_")] = value.strip("'\"")
            elif a == "-h" and nxt is not None:
                cand["options"]["listen_addresses"] = nxt
                i += 1
            elif a == "-p" and nxt is not None:
                cand["options"]["port"] = nxt
                i += 1
            elif a == "-l":
                cand["options"]["ssl"] = "on"
            elif a == "-o" and nxt is not None:  # pg_ctl -o "server options"
                inner = from_argv(["postgres"] + _split(nxt), {"PGDATA": ""}) or \
                    from_argv(["postgres", "-D", ""] + _split(nxt))
                if inner:
                    cand["options"].update(inner["options"])
                    if inner.get("config_dir"):
                        cand["config_dir"] = inner["config_dir"]
                i += 1
            i += 1
        if "config_dir" not in cand and env.get("PGDATA"):
            cand["config_dir"] = env["PGDATA"]
        if "config_dir" not in cand and "config_file" not in cand["options"]:
            return None
        return cand
    if prog in MYSQL_SERVERS:
        cand = {"engine": MYSQL_SERVERS[prog], "options": {}, "evidence": ev}
        for a in args:
            if not a.startswith("--"):
                continue
            key, _, value = a[2:].partition("=")
            key = key.lower().replace("-", "_")
            if key in ("defaults_file", "defaults_extra_file"):
                cand[key] = value
            else:
                cand["options"][key] = value if _ else "ON"
        return cand
    if prog in REDIS_SERVERS:
        cand = {"engine": "redis", "options": {}, "evidence": ev}
        i = 0
        while i < len(args):
            a = args[i]
            if a.startswith("--"):
                values = []
                while i + 1 < len(args) and not args[i + 1].startswith("--"):
                    values.append(args[i + 1])
                    i += 1
                cand["options"][a[2:].lower()] = " ".join(values)
            elif "config_file" not in cand and i == 0 and a != "-":
                cand["config_file"] = a
            i += 1
        return cand
    if prog in DM_SERVERS or prog.startswith("DmService"):
        cand = {"engine": "dm", "options": {}, "evidence": ev}
        for a in args:
            if a.lower().startswith("path="):
                cand["config_file"] = a.split("=", 1)[1]
            elif a.endswith("dm.ini"):
                cand["config_file"] = a
        return cand if "config_file" in cand else None
    return None


SERVER_NAMES = set(list(PG_SERVERS) + list(MYSQL_SERVERS) + list(REDIS_SERVERS) + list(DM_SERVERS))
# redis-server replaces its command line with "redis-server ADDR:PORT" (proc-title-template, default
# "{title} {listen-addr} {server-mode}"), so the configuration path is usually gone from it
REDIS_TITLE = re.compile(r"^(\S*redis-server)\s+(\S+):(\d+)")


def from_processes(procs, fs=None):
    """Candidates from live process records (facts.processes shape); a server's own workers are skipped.

    For a server whose command line does not say where its configuration is, the service unit that
    started it (from /proc/PID/cgroup) is asked; a server still unplaced is returned as
    {"engine", "pid", "unplaced": why} so that it is reported, not dropped."""
    out = []
    pids = dict((p.get("pid"), p) for p in procs or [])
    for proc in procs or []:
        argv = proc.get("cmdline") or []
        name = proc.get("name") or ""
        parent = pids.get(proc.get("ppid"))
        if parent is not None and parent.get("name") == name:
            continue  # a worker forked by the server itself
        ev = [{"kind": "process", "value": ("pid %s: %s" % (proc.get("pid"), " ".join(argv)))[:300]}]
        cand = None
        title = REDIS_TITLE.match(" ".join(argv))
        if not title:
            cand = from_argv(argv, proc.get("environ") or {}, ev)
        prog = posixpath.basename(argv[0]) if argv else ""
        known = name in SERVER_NAMES or prog in SERVER_NAMES or bool(title)
        if cand is None and known and fs is not None:
            unit = process_unit(proc.get("pid"))
            if unit:
                for unit_cand in from_unit(fs, unit, require_word=False):
                    unit_cand["evidence"] = ev + unit_cand["evidence"]
                    cand = unit_cand
                    break
        if cand is None and known:
            engine = "redis" if title or "redis" in name else (
                PG_SERVERS.get(name) or MYSQL_SERVERS.get(name) or ("dm" if name in DM_SERVERS else name))
            cand = {"engine": engine, "options": {}, "evidence": ev,
                    "unplaced": "the command line names no configuration and no service unit started it",
                    "port": int(title.group(3)) if title else None}
        if cand is not None:
            cand["pid"] = proc.get("pid")
            cand["user"] = proc.get("user")
            out.append(cand)
    return out


def process_unit(pid):
    """The systemd service a live process runs in (from /proc/PID/cgroup), or None."""
    try:
        with open("/proc/%s/cgroup" % pid) as fh:
            text = fh.read(16 * 1024)
    except (IOError, OSError):
        return None
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        for part in reversed(path.split("/")):
            if part.endswith(".service"):
                return part
    return None


def process_environ(pid):
    """{NAME: value} of a live process (root only), or {}."""
    try:
        with open("/proc/%s/environ" % pid, "rb") as fh:
            raw = fh.read(64 * 1024)
    except (IOError, OSError):
        return {}
    out = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.decode("utf-8", "replace").partition("=")
        if sep and key in ("PGDATA", "MYSQL_HOME"):
            out[key] = value
    return out


def unit_settings(fs, path):
    """(ExecStart command lines, Environment) of a unit file plus its drop-ins (systemd.unit(5) order)."""
    name = posixpath.basename(path)
    files = [path]
    for directory in UNIT_DIRS:
        dropdir = posixpath.join(directory, name + ".d")
        files.extend(posixpath.join(dropdir, n) for n in fs.listdir(dropdir) or [] if n.endswith(".conf"))
    env, execs = {}, []
    for unit_path in files:
        for _, section, key, value in systemd_syntax_lines(fs.read_text(unit_path, report=False)):
            if section != "Service":
                continue
            if key == "Environment":
                for item in _split(value):
                    k, sep, v = item.partition("=")
                    if sep:
                        env[k] = v
            elif key == "EnvironmentFile":
                env_path = value.lstrip("-")
                for line in (fs.read_text(env_path, report=False) or "").splitlines():
                    k, sep, v = line.strip().partition("=")
                    if sep and not k.startswith("#"):
                        env[k.strip()] = v.strip().strip("'\"")
            elif key == "ExecStart":
                if value == "":
                    execs = []  # an empty ExecStart= resets the list (drop-in override)
                else:
                    execs.append(value)
    return execs, env


def config_path(cand):
    """The file a candidate's server would read first (None when only the command line configures it)."""
    if cand.get("config_dir"):
        name = "kingbase.conf" if cand["engine"] == "kingbase" else "postgresql.conf"
        return cand["options"].get("config_file") or posixpath.join(cand["config_dir"], name)
    return cand.get("defaults_file") or cand.get("config_file") or cand["options"].get("config_file")


def from_units(fs):
    """Candidates from service units whose name names a database server."""
    out, seen = [], set()
    for directory in UNIT_DIRS:
        for name in fs.listdir(directory) or []:
            if not name.endswith(".service") or name in seen or not UNIT_WORDS.search(name):
                continue
            if name.endswith("@.service"):
                continue  # a template: its instances (name@x.service) are the units
            seen.add(name)
            if len(seen) > MAX_UNITS:
                return out
            out.extend(from_unit(fs, name))
    return out


def from_unit(fs, name, require_word=True):
    out = []
    path = None
    for directory in UNIT_DIRS:
        candidate = posixpath.join(directory, name)
        if fs.exists(candidate) or fs.readlink(candidate) is not None:
            path = candidate
            break
    if path is None or fs.readlink(path) == "/dev/null":
        return out
    execs, env = unit_settings(fs, path)
    for command in execs:
        argv = [_expand(a, env) for a in _split(command)]
        ev = [{"kind": "service", "value": ("%s: ExecStart=%s" % (path, command))[:300]}]
        cand = from_argv(argv, env, ev)
        if cand is None and argv and posixpath.basename(argv[0].lstrip("-@+!:")).startswith("DmService"):
            # DM's service script holds the instance's dm.ini
            script = fs.read_text(argv[0].lstrip("-@+!:"), report=False) or ""
            m = re.search(r"^INI_PATH=(\S+)", script, re.M)
            if m:
                cand = {"engine": "dm", "options": {}, "config_file": m.group(1).strip("'\""),
                        "evidence": ev + [{"kind": "path", "value": "%s: INI_PATH=%s" % (argv[0], m.group(1))}]}
        if cand is not None:
            cand["pid"] = None
            cand["unit"] = name
            cand["enabled"] = unit_enabled(fs, name)
            out.append(cand)
    return out
