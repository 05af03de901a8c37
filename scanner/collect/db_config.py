"""Database configuration: listen addresses, TLS, audit and the data directory.

Reads the standard config files of PostgreSQL, MySQL/MariaDB, Redis, DM (dm.ini),
KingbaseES and openGauss. One instance per config file found:

{"engine", "product_id", "config_file", "config_files", "port", "listen": [{address, port}],
 "listen_all", "data_dir", "data_dir_mode", "data_dir_owner", "data_dir_group",
 "tls": bool|null, "tls_evidence", "audit": bool|null, "audit_evidence", "audit_capable",
 "settings": {...the settings read...}}

Unset settings take the engine's documented default (named in the evidence), so an
absent ``ssl`` line in postgresql.conf means TLS off, not unknown.
"""
from __future__ import absolute_import

import posixpath
import re

NAME = "db_config"
LIVE_ONLY = False

PG_CONFS = ("/etc/postgresql/*/main/postgresql.conf", "/var/lib/pgsql/data/postgresql.conf",
            "/var/lib/pgsql/*/data/postgresql.conf", "/var/lib/postgresql/data/postgresql.conf",
            "/var/lib/postgresql/*/main/postgresql.conf")
KINGBASE_CONFS = ("/opt/Kingbase/ES/V8/data/kingbase.conf", "/opt/Kingbase/ES/V9/data/kingbase.conf",
                  "/home/kingbase/data/kingbase.conf", "/opt/kingbase/data/kingbase.conf")
OPENGAUSS_CONFS = ("/opt/opengauss/data/postgresql.conf", "/var/lib/opengauss/data/postgresql.conf",
                   "/opt/huawei/install/data/dn/postgresql.conf", "/gaussdb/data/*/postgresql.conf",
                   "/opt/gaussdb/data/postgresql.conf")
MYSQL_MAIN = ("/etc/my.cnf", "/etc/mysql/my.cnf")
MYSQL_SECTIONS = ("mysqld", "mariadb", "server", "mariadbd")
REDIS_CONFS = ("/etc/redis/redis.conf", "/etc/redis.conf", "/etc/redis/*.conf", "/usr/local/etc/redis.conf")
DM_INIS = ("/dm8/data/*/dm.ini", "/opt/dmdbms/data/*/dm.ini", "/home/dmdba/dmdbms/data/*/dm.ini",
           "/opt/dm8/data/*/dm.ini", "/dmdata/*/dm.ini")
ALL_INTERFACES = ("*", "0.0.0.0", "::", "", "0:0:0:0:0:0:0:0")
MAX_INCLUDES = 30


def _glob(fs, pattern):
    from scanner.collect._paths import glob_paths
    return glob_paths(fs, pattern)


def _users(fs):
    users, groups = {}, {}
    for path, target in (("/etc/passwd", users), ("/etc/group", groups)):
        for line in (fs.read_text(path, report=False) or "").splitlines():
            f = line.split(":")
            if len(f) > 2 and f[2].isdigit():
                target[int(f[2])] = f[0]
    return users, groups


def _data_dir_facts(ctx, path, inst, names):
    inst["data_dir"] = path
    inst["data_dir_mode"] = inst["data_dir_owner"] = inst["data_dir_group"] = None
    if not path:
        return
    st = ctx.fs.stat(path)
    if st is None:
        if not ctx.fs.exists(path):
            ctx.error(path, "data directory named in %s does not exist" % inst["config_file"])
        else:
            ctx.error(path, "cannot stat the data directory (run as root)")
        return
    inst["data_dir_mode"] = "%04o" % (st.st_mode & 0o7777)
    users, groups = names
    inst["data_dir_owner"] = users.get(st.st_uid, str(st.st_uid))
    inst["data_dir_group"] = groups.get(st.st_gid, str(st.st_gid))


def _listen(addresses, port):
    listen = [{"address": a, "port": port} for a in addresses]
    return listen, any(a in ALL_INTERFACES for a in addresses)


def _on(value):
    return str(value).strip().strip("'\"").lower() in ("on", "true", "yes", "1")


# ---------------------------------------------------------------- PostgreSQL family
_PG_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(?:=\s*|\s+)(.*?)\s*$")


def parse_pg_conf(text):
    """{name: value} of one postgresql.conf text (no includes)."""
    return dict((k, v) for k, v, _ in _pg_lines(text))


def _pg_lines(text):
    """(name, value, lineno) per setting line; quoted values with '' escapes, trailing comments dropped."""
    for number, raw in enumerate((text or "").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _PG_LINE.match(line)
        if not m:
            continue
        key, value = m.group(1).lower(), m.group(2)
        if value.startswith("'"):
            out, i = [], 1
            while i < len(value):
                if value[i] == "'" and value[i + 1:i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                if value[i] == "'":
                    break
                out.append(value[i])
                i += 1
            value = "".join(out)
        else:
            value = value.split("#", 1)[0].strip()
        yield key, value, number


def read_pg_conf(fs, path, settings, sources, files, problems, depth=0):
    """Read a postgresql.conf the way the server does (config.sgml "Managing Configuration File Contents"):
    ``include 'f'`` (a missing file is an error: the server does not start), ``include_if_exists``,
    ``include_dir 'd'`` (its *.conf not starting with '.', in file-name order); relative paths are relative
    to the including file's directory; a later setting overrides an earlier one. False when unreadable."""
    text = fs.read_text(path)
    if text is None or depth > 10 or len(files) >= MAX_INCLUDES:
        return False
    files.append(path)
    base = posixpath.dirname(path)
    for key, value, number in _pg_lines(text):
        if key in ("include", "include_if_exists", "include_dir"):
            target = value if value.startswith("/") else posixpath.join(base, value)
            if key == "include_dir":
                for name in fs.listdir(target) or []:
                    if name.endswith(".conf") and not name.startswith("."):
                        read_pg_conf(fs, posixpath.join(target, name), settings, sources, files, problems, depth + 1)
            elif not read_pg_conf(fs, target, settings, sources, files, problems, depth + 1) and key == "include":
                problems.append("%s:%d: include %s cannot be read (the server refuses to start)" % (path, number, target))
            continue
        settings[key] = value
        sources[key] = "%s:%d" % (path, number)
    return True


def parse_pg_hba(text, fs=None, path=None, depth=0, files=None):
    """pg_hba.conf records: [{line, type, database, user, address, method, remote, file}] (remote: a host*
    line). PostgreSQL 16 ``include``/``include_if_exists``/``include_dir`` lines are followed in place when a
    file layer is given (client-auth.sgml); records are matched first to last, so their order is kept."""
    out = []
    files = files if files is not None else []
    if path:
        files.append(path)
    for number, raw in enumerate((text or "").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        f = line.split()
        kind = f[0].lower()
        if kind in ("include", "include_if_exists", "include_dir"):
            if fs is None or len(f) < 2 or depth > 10:
                continue
            target = f[1].strip("\"'")
            if not target.startswith("/") and path:
                target = posixpath.join(posixpath.dirname(path), target)
            targets = [target]
            if kind == "include_dir":
                targets = [posixpath.join(target, n) for n in fs.listdir(target) or []
                           if n.endswith(".conf") and not n.startswith(".")]
            for inc in targets:
                inc_text = fs.read_text(inc)
                if inc_text is not None:
                    out.extend(parse_pg_hba(inc_text, fs, inc, depth + 1, files))
            continue
        where_ = {"line": number, "file": path} if path else {"line": number}
        if kind == "local" and len(f) >= 4:
            out.append(dict(where_, type=kind, database=f[1], user=f[2], address=None,
                            method=f[3].lower(), remote=False))
        elif kind.startswith("host") and len(f) >= 5:
            addr, rest = f[3], f[4:]
            if "/" not in addr and rest and re.match(r"^\d+\.\d+\.\d+\.\d+$", rest[0] or ""):
                addr, rest = "%s/%s" % (addr, rest[0]), rest[1:]  # address + netmask columns
            if rest:
                out.append(dict(where_, type=kind, database=f[1], user=f[2], address=addr,
                                method=rest[0].lower(), remote=True))
    return out


PG_DEFAULTS = {
    "postgresql": {"product_id": "postgresql", "listen": "localhost", "port": "5432", "ssl": "off"},
    "kingbase": {"product_id": "kingbase", "listen": "*", "port": "54321", "ssl": "off"},
    "opengauss": {"product_id": "opengauss", "listen": "localhost", "port": "5432", "ssl": "on"},
}


def _pg_instance(ctx, engine, path, names, config_dir=None, options=None):
    """One PostgreSQL-family instance. ``path``: its postgresql.conf; ``config_dir``: the -D directory;
    ``options``: command-line parameters (they override every file). Order, as the server applies it:
    postgresql.conf with its includes, then postgresql.auto.conf (ALTER SYSTEM) in the data directory,
    then the command line. hba_file defaults to the -D directory's pg_hba.conf."""
    fs = ctx.fs
    options = dict(options or {})
    conf_name = "kingbase.conf" if engine == "kingbase" else "postgresql.conf"
    if path is None:
        path = options.get("config_file") or posixpath.join(config_dir, conf_name)
    config_dir = config_dir or posixpath.dirname(path)
    s, sources, files, problems = {}, {}, [], []
    d = PG_DEFAULTS[engine]
    inst = {"engine": engine, "product_id": d["product_id"], "config_file": path, "config_files": files}
    if not read_pg_conf(fs, path, s, sources, files, problems):
        return _unreadable(ctx, inst, path, "%s cannot be read" % path)
    data_dir = options.get("data_directory") or s.get("data_directory") or config_dir
    auto = posixpath.join(data_dir, "postgresql.auto.conf")
    if fs.isfile(auto):
        read_pg_conf(fs, auto, s, sources, files, problems)
    for key, value in options.items():
        s[key] = value
        sources[key] = "command line"
    for problem in problems:
        ctx.error(path, problem)
    port = int(s.get("port", d["port"])) if str(s.get("port", d["port"])).isdigit() else None
    addrs = [a.strip() for a in s.get("listen_addresses", d["listen"]).split(",") if a.strip()] or [""]
    inst["port"] = port
    inst["listen"], inst["listen_all"] = _listen(addrs, port)
    inst["listen_source"] = "configuration (listen_addresses %s)" % sources.get("listen_addresses", "default")
    ssl = s.get("ssl", d["ssl"])
    inst["tls"] = _on(ssl)
    inst["tls_evidence"] = "ssl = %s%s" % (ssl, "" if "ssl" in s else " (default)")
    preload = s.get("shared_preload_libraries", "")
    if engine == "opengauss":
        enabled = s.get("audit_enabled", "on")
        inst["audit"] = _on(enabled)
        inst["audit_evidence"] = "audit_enabled = %s%s" % (enabled, "" if "audit_enabled" in s else " (default)")
    elif engine == "kingbase" and re.search(r"audlog|audit", preload, re.I):
        inst["audit"] = True
        inst["audit_evidence"] = "shared_preload_libraries = '%s'" % preload
    elif "pgaudit" in preload:
        inst["audit"] = True
        inst["audit_evidence"] = "shared_preload_libraries = '%s'" % preload
    else:
        conn = _on(s.get("log_connections", "off")) and _on(s.get("log_disconnections", "off"))
        stmt = s.get("log_statement", "none").lower()
        inst["audit"] = bool(conn and stmt in ("ddl", "mod", "all"))
        inst["audit_evidence"] = "no audit extension in shared_preload_libraries; log_connections=%s, " \
                                 "log_disconnections=%s, log_statement=%s" % (
                                     s.get("log_connections", "off"), s.get("log_disconnections", "off"), stmt)
    inst["audit_capable"] = True
    _data_dir_facts(ctx, data_dir, inst, names)
    hba_name = "sys_hba.conf" if engine == "kingbase" and not s.get("hba_file") else "pg_hba.conf"
    hba_path = s.get("hba_file") or posixpath.join(config_dir, hba_name)
    if not hba_path.startswith("/"):
        hba_path = posixpath.join(data_dir, hba_path)
    hba_text = fs.read_text(hba_path)
    inst["hba_file"] = hba_path
    inst["hba"] = parse_pg_hba(hba_text, fs, hba_path) if hba_text is not None else None
    if hba_text is None:
        ctx.error(hba_path, "%s instance %s: %s cannot be read; client authentication is unknown (the server "
                  "does not start without it)" % (engine, path, posixpath.basename(hba_path)))
    # trust: no password at all -- on a local record any OS user connects as any role, the superuser too
    # (client-auth.sgml "Trust Authentication"; CIS PostgreSQL "login via local UNIX domain socket")
    trusting = ["%s:%s %s" % (r.get("file") or hba_path, r["line"], r["type"]) for r in inst["hba"] or []
                if r["method"] == "trust"]
    inst["auth_disabled"] = bool(trusting) if inst["hba"] is not None else None
    inst["auth_evidence"] = ("trust in " + ", ".join(trusting[:10])) if trusting else \
        ("no trust record" if inst["hba"] is not None else None)
    inst["settings"] = dict((k, s[k]) for k in ("listen_addresses", "port", "ssl", "ssl_min_protocol_version",
                                               "shared_preload_libraries", "log_connections", "log_disconnections",
                                               "log_statement", "password_encryption", "data_directory",
                                               "audit_enabled") if k in s)
    inst["sources"] = dict((k, sources[k]) for k in inst["settings"] if k in sources)
    return inst


def _unreadable(ctx, inst, path, why):
    """An instance that exists (a process, a unit names it) but whose configuration cannot be read: every
    fact the rules read is null, so each rule gives ``error`` naming it -- never a pass."""
    ctx.error(path, "%s instance: %s; its settings are unknown" % (inst["engine"], why))
    inst.update({"error": why, "port": None, "listen": None, "listen_all": None, "tls": None, "tls_evidence": None,
                 "audit": None, "audit_evidence": None, "audit_capable": None, "data_dir": None,
                 "data_dir_mode": None, "data_dir_owner": None, "data_dir_group": None, "hba_file": path,
                 "hba": None, "settings": None, "auth_disabled": None, "auth_evidence": None})
    return inst


# ---------------------------------------------------------------- MySQL / MariaDB
def _is_mariadb(fs, files):
    return any("mariadb" in f for f in files) or any(
        fs.exists(p) for p in ("/etc/mysql/mariadb.cnf", "/etc/mysql/mariadb.conf.d", "/usr/sbin/mariadbd",
                               "/usr/libexec/mariadbd"))


def _mysql_read(ctx, path, sections, files, depth=0):
    text = ctx.fs.read_text(path)
    if text is None or depth > 4 or len(files) >= MAX_INCLUDES:
        return
    files.append(path)
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("!includedir"):
            d = line.split(None, 1)[1].strip() if len(line.split(None, 1)) > 1 else ""
            for name in ctx.fs.listdir(d) or []:
                if name.endswith(".cnf"):
                    _mysql_read(ctx, posixpath.join(d, name), sections, files, depth + 1)
            continue
        if line.startswith("!include"):
            parts = line.split(None, 1)
            if len(parts) > 1:
                _mysql_read(ctx, parts[1].strip(), sections, files, depth + 1)
            continue
        if line.startswith("["):
            current = line.strip("[] ").lower()
            continue
        if current is None:
            continue
        key, _, value = line.partition("=")
        key = key.strip().lower().replace("-", "_")
        value = value.split("#", 1)[0].strip().strip("\"'")
        base = current.split("-", 1)[0] if current.startswith(("mysqld-", "mariadb-")) else current
        if base in MYSQL_SECTIONS:
            if key in ("plugin_load_add",) and key in sections:
                value = sections[key] + ";" + value
            sections[key] = value if _ else "ON"


# Option files a server reads with no --defaults-file, in order (later settings win): MySQL 8 and
# MariaDB on Linux read /etc/my.cnf then /etc/mysql/my.cnf (then $MYSQL_HOME/my.cnf, --defaults-extra-file,
# ~/.my.cnf); conf.d directories only through !includedir lines in those files ("Using Option Files").
def _mysql_instance(ctx, names, defaults_file=None, defaults_extra_file=None, options=None, env=None):
    fs = ctx.fs
    options = dict(options or {})
    s, files = {}, []
    if defaults_file:
        # --defaults-file: only this file is read (it must exist, or mysqld exits)
        if fs.read_text(defaults_file) is None:
            inst = {"engine": "mariadb" if _is_mariadb(fs, []) else "mysql", "config_file": defaults_file,
                    "config_files": [defaults_file]}
            inst["product_id"] = inst["engine"]
            return _unreadable(ctx, inst, defaults_file, "--defaults-file %s cannot be read" % defaults_file)
        _mysql_read(ctx, defaults_file, s, files)
        main = defaults_file
    else:
        main = None
        paths = list(MYSQL_MAIN)
        if (env or {}).get("MYSQL_HOME"):
            paths.append(posixpath.join(env["MYSQL_HOME"], "my.cnf"))
        if defaults_extra_file:
            paths.append(defaults_extra_file)
        for cand in paths:
            if fs.isfile(cand) and cand not in files:
                main = main or cand
                _mysql_read(ctx, cand, s, files)
        if main is None and not options:
            return None
    for key, value in options.items():
        s[key] = value  # the command line overrides every option file
    mariadb = _is_mariadb(ctx.fs, files)
    if not any(k in s for k in ("datadir", "bind_address", "port", "socket", "ssl_cert", "plugin_load_add",
                                 "server_audit_logging", "require_secure_transport")) and \
            not (defaults_file or options) and not any(ctx.fs.exists(p) for p in ("/usr/sbin/mysqld", "/usr/sbin/mariadbd", "/usr/libexec/mysqld")):
        return None  # a client-only my.cnf: no server here
    inst = {"engine": "mariadb" if mariadb else "mysql", "product_id": "mariadb" if mariadb else "mysql",
            "config_file": main or "command line", "config_files": files}
    port = int(s["port"]) if s.get("port", "").isdigit() else 3306
    bind = s.get("bind_address")
    addrs = [a.strip() for a in bind.split(",")] if bind else ["*"]
    inst["port"] = port
    inst["listen"], inst["listen_all"] = _listen(addrs, port)
    if _on(s.get("skip_networking", "off")):  # no TCP listener at all
        inst["listen"], inst["listen_all"] = [], False
    data_dir = s.get("datadir") or "/var/lib/mysql"
    if s.get("ssl_cert") or _on(s.get("require_secure_transport", "off")):
        inst["tls"], inst["tls_evidence"] = True, "ssl_cert = %s, require_secure_transport = %s" % (
            s.get("ssl_cert"), s.get("require_secure_transport", "OFF"))
    elif not mariadb and ctx.fs.isfile(posixpath.join(data_dir, "server-cert.pem")):
        inst["tls"], inst["tls_evidence"] = True, "auto-generated %s/server-cert.pem (MySQL >= 5.7)" % data_dir
    else:
        inst["tls"], inst["tls_evidence"] = False, "no ssl_cert configured and no server-cert.pem in %s" % data_dir
    plugins = s.get("plugin_load_add", "") + ";" + s.get("plugin_load", "")
    if "server_audit" in plugins and _on(s.get("server_audit_logging", "off")):
        inst["audit"], inst["audit_evidence"] = True, "server_audit plugin loaded, server_audit_logging = ON"
    elif "audit_log" in plugins:
        inst["audit"], inst["audit_evidence"] = True, "audit_log plugin loaded"
    else:
        inst["audit"] = False
        inst["audit_evidence"] = "no audit plugin (server_audit with server_audit_logging=ON, or audit_log); " \
                                 "general_log is not an audit trail"
    inst["audit_capable"] = True
    _data_dir_facts(ctx, data_dir, inst, names)
    inst["settings"] = dict((k, s[k]) for k in ("bind_address", "port", "datadir", "ssl_cert", "ssl_key",
                                               "require_secure_transport", "tls_version", "plugin_load_add",
                                               "server_audit_logging", "local_infile", "skip_networking",
                                               "skip_grant_tables") if k in s)
    # skip-grant-tables: the server does not check privileges -- anyone connects as anyone, no password
    grant = s.get("skip_grant_tables")
    inst["auth_disabled"] = grant is not None and (grant == "" or _on(grant))
    inst["auth_evidence"] = "skip-grant-tables = %s" % grant if grant is not None else \
        "grant tables checked (no skip-grant-tables)"
    return inst


# ---------------------------------------------------------------- Redis
def _redis_instance(ctx, path, names, options=None, discovered=False):
    """redis.conf (with ``include`` files read in place, a later directive winning) and then the command
    line's ``--name value`` arguments, which redis-server appends to the configuration (redis-server(1))."""
    text = ctx.fs.read_text(path) if path else ""
    if text is None:
        if not discovered:
            return None
        inst = {"engine": "redis", "product_id": "redis", "config_file": path, "config_files": [path]}
        return _unreadable(ctx, inst, path, "configuration file %s cannot be read" % path)
    lines = []
    for raw in text.splitlines():
        if not raw or raw[0] == "#":
            continue  # a comment (most of a shipped redis.conf's ~2,300 lines) or a blank line
        parts = raw.strip().split(None, 1)
        if parts and parts[0].lower() == "include" and len(parts) > 1:
            lines.extend((ctx.fs.read_text(parts[1].strip().strip("\"'")) or "").splitlines())
        else:
            lines.append(raw)
    lines.extend("%s %s" % (k, v) for k, v in sorted((options or {}).items()))
    s = {}
    users, renamed = [], {}
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        key = parts[0].lower()
        value = parts[1].strip() if len(parts) > 1 else ""
        if key == "user":
            users.append(value)
        elif key == "rename-command":
            args = value.split(None, 1)
            renamed[args[0].upper()] = args[1].strip() if len(args) > 1 else ""
        s[key] = value
    if "port" not in s and "bind" not in s and "dir" not in s and not discovered:
        return None  # not a server config (e.g. sentinel fragments)
    inst = {"engine": "redis", "product_id": "redis", "config_file": path or "command line",
            "config_files": [path] if path else []}
    port = int(s["port"]) if s.get("port", "").isdigit() else 6379
    addrs = [a.lstrip("-") for a in s["bind"].split()] if s.get("bind") else ["*"]
    inst["port"] = port
    inst["listen"], inst["listen_all"] = _listen(addrs, port)
    tls_port = s.get("tls-port", "0")
    inst["tls"] = tls_port not in ("0", "")
    inst["tls_evidence"] = "tls-port %s, port %s" % (tls_port, s.get("port", "6379 (default)"))
    inst["audit"] = None
    inst["audit_evidence"] = "Redis has no audit facility"
    inst["audit_capable"] = False
    data_dir = s.get("dir", "/var/lib/redis").strip("\"'")
    if not data_dir.startswith("/"):
        data_dir = "/var/lib/redis"
    _data_dir_facts(ctx, data_dir, inst, names)
    inst["settings"] = dict((k, s[k]) for k in ("bind", "port", "tls-port", "protected-mode", "dir")
                            if k in s)
    default_user = [u for u in users if u.split()[:1] == ["default"]]
    password = s.get("requirepass", "").strip("\"'")
    inst["settings"]["requirepass_set"] = bool(password)
    inst["settings"]["auth_configured"] = bool(password) or bool(s.get("aclfile")) or bool(
        default_user and "nopass" not in default_user[-1] and re.search(r"(^|\s)(>|#)", default_user[-1]))
    # protected mode (redis.conf, Redis >= 3.2, on by default): with no explicit bind and no password the
    # server accepts only 127.0.0.1, ::1 and the Unix socket, whatever it listens on. (Redis 7 extends it
    # to explicit binds too; without the version that case stays "exposed".)
    protected = s.get("protected-mode", "yes").strip("\"'").lower() != "no"
    inst["settings"]["local_only"] = bool(protected and not s.get("bind") and not inst["settings"]["auth_configured"])
    inst["settings"]["config_command_disabled"] = "CONFIG" in renamed or bool(
        default_user and re.search(r"-config\b|-@admin|-@dangerous", default_user[-1], re.I))
    return inst


# ---------------------------------------------------------------- DM (Dameng)
def _dm_instance(ctx, path, names, discovered=False):
    text = ctx.fs.read_text(path)
    if text is None:
        if not discovered:
            return None
        inst = {"engine": "dm", "product_id": "dm", "config_file": path, "config_files": [path]}
        return _unreadable(ctx, inst, path, "dm.ini %s cannot be read" % path)
    s = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if "=" in line:
            k, v = line.split("=", 1)
            s[k.strip().upper()] = v.strip()
    inst = {"engine": "dm", "product_id": "dm", "config_file": path, "config_files": [path]}
    port = int(s["PORT_NUM"]) if s.get("PORT_NUM", "").isdigit() else 5236
    inst["port"] = port
    inst["listen"], inst["listen_all"] = _listen(["*"], port)  # dmserver binds every interface
    enc = s.get("ENABLE_ENCRYPT", "0")
    inst["tls"] = enc not in ("0", "")
    inst["tls_evidence"] = "ENABLE_ENCRYPT = %s%s" % (enc, "" if "ENABLE_ENCRYPT" in s else " (default)")
    audit = s.get("ENABLE_AUDIT", "0")
    inst["audit"] = audit not in ("0", "")
    inst["audit_evidence"] = "ENABLE_AUDIT = %s%s" % (audit, "" if "ENABLE_AUDIT" in s else " (default)")
    inst["audit_capable"] = True
    data_dir = s.get("SYSTEM_PATH") or posixpath.dirname(path)
    _data_dir_facts(ctx, data_dir, inst, names)
    inst["settings"] = dict((k, s[k]) for k in ("PORT_NUM", "ENABLE_ENCRYPT", "ENABLE_AUDIT", "SYSTEM_PATH",
                                               "INSTANCE_NAME") if k in s)
    return inst


def _place(candidates, unit_candidates, ctx):
    """A running server whose command line lost its configuration path (redis-server's title) is matched
    to the one configuration that serves its port; otherwise it stays an instance with an error."""
    out = []
    ports = {}  # each configuration's port, read once (a unit and the fixed path name the same file)
    for cand in candidates:
        if not cand.get("unplaced"):
            out.append(cand)
            continue
        same = []
        for other in unit_candidates + _fixed_candidates(ctx.fs, cand["engine"]):
            if other["engine"] != cand["engine"] or cand.get("port") is None:
                continue
            key = (other["engine"], (other.get("options") or {}).get("port"), other.get("config_file"))
            if key not in ports:
                ports[key] = _candidate_port(ctx, other)
            inst_port = ports[key]
            if inst_port == cand["port"]:
                same.append(other)
        if len(same) == 1:
            placed = dict(same[0], pid=cand["pid"], user=cand.get("user"), unplaced=None)
            placed["evidence"] = cand["evidence"] + same[0]["evidence"]
            out.append(placed)
        else:
            out.append(cand)
    return out


def _fixed_candidates(fs, engine):
    if engine != "redis":
        return []
    out = []
    for pattern in REDIS_CONFS:
        for path in _glob(fs, pattern):
            out.append({"engine": "redis", "options": {}, "config_file": path,
                        "evidence": [{"kind": "path", "value": path}]})
    return out


def _candidate_port(ctx, cand):
    if cand["engine"] != "redis":
        return None
    port = cand["options"].get("port")
    if port is None and cand.get("config_file"):
        for raw in (ctx.fs.read_text(cand["config_file"], report=False) or "").splitlines():
            if not raw or raw[0] == "#":
                continue
            parts = raw.split()
            if len(parts) == 2 and parts[0].lower() == "port":
                port = parts[1]
    port = port if port is not None else "6379"
    return int(port) if str(port).isdigit() else None


def _instance_from(ctx, cand, names):
    engine = cand["engine"]
    if cand.get("unplaced"):
        what = "%s server pid %s" % (engine, cand["pid"])
        inst = {"engine": engine, "product_id": engine, "config_file": what, "config_files": []}
        return _unreadable(ctx, inst, what, cand["unplaced"])
    if engine in PG_DEFAULTS:
        return _pg_instance(ctx, engine, None, names, config_dir=cand.get("config_dir"), options=cand["options"]) \
            if cand.get("config_dir") else _pg_instance(ctx, engine, cand["options"]["config_file"], names,
                                                        options=cand["options"])
    if engine in ("mysql", "mariadb"):
        return _mysql_instance(ctx, names, cand.get("defaults_file"), cand.get("defaults_extra_file"),
                               cand["options"], cand.get("env"))
    if engine == "redis":
        return _redis_instance(ctx, cand.get("config_file"), names, cand["options"], discovered=True)
    if engine == "dm":
        return _dm_instance(ctx, cand["config_file"], names, discovered=True)
    return None


def _live_sockets(ctx, inst, pid, procs, sockets):
    """Live: the addresses the server process (or a child) really listens on -- ground truth over the file."""
    family = set([pid])
    changed = True
    while changed:
        changed = False
        for proc in procs:
            if proc.get("ppid") in family and proc.get("pid") not in family:
                family.add(proc["pid"])
                changed = True
    mine = [sk for sk in sockets if sk.get("pid") in family and sk.get("proto", "").startswith("tcp")]
    inst["listen_configured"] = inst.get("listen")
    inst["listen"] = [{"address": sk["address"], "port": sk["port"]} for sk in mine]
    inst["listen_all"] = any(sk["address"] in ALL_INTERFACES for sk in mine)
    inst["listen_source"] = "sockets of pid %s" % pid


def collect(ctx):
    from scanner.collect import _db_discovery
    fs = ctx.fs
    names = _users(fs)
    instances = []
    procs = sockets = None
    if ctx.live:
        from scanner.collect import processes, sockets as sockets_mod
        # the processes/sockets collectors ran just before in a full scan: reuse their snapshot
        procs = getattr(ctx, "processes_seen", None)
        if procs is None:
            procs = processes.collect(ctx) or []
        sockets = getattr(ctx, "sockets_seen", None)
        if sockets is None:
            sockets = sockets_mod.collect(ctx) or []
    candidates = _db_discovery.from_processes(procs or [], fs)
    for cand in candidates:
        if cand["engine"] in PG_DEFAULTS and not cand.get("config_dir") and "config_file" not in cand["options"]:
            cand["config_dir"] = _db_discovery.process_environ(cand["pid"]).get("PGDATA")
        if cand["engine"] in ("mysql", "mariadb"):
            cand["env"] = _db_discovery.process_environ(cand["pid"])
    unit_candidates = _db_discovery.from_units(fs)
    candidates = _place(candidates, unit_candidates, ctx) + unit_candidates
    by_config = {}
    for cand in candidates:
        conf = _db_discovery.config_path(cand)
        if cand.get("unit") and cand.get("enabled") is not True and conf and not fs.exists(conf):
            continue  # a unit shipped with a package, neither enabled nor running, for a config never made
        inst = _instance_from(ctx, cand, names)
        if inst is None:
            continue
        key = (inst["engine"], fs.host_path(inst["config_file"]) if inst["config_file"].startswith("/")
               else inst["config_file"])
        if cand.get("unplaced") and ctx.live:
            inst["pid"] = cand["pid"]
        known = by_config.get(key)
        if known is not None:
            known["discovered_from"].extend(cand["evidence"])
            if known.get("pid") is None and cand.get("pid") is not None:
                known["pid"] = cand["pid"]
            continue
        inst["discovered_from"] = list(cand["evidence"])
        inst["pid"] = cand.get("pid")
        by_config[key] = inst
        instances.append(inst)
    for engine, patterns in (("postgresql", PG_CONFS), ("kingbase", KINGBASE_CONFS), ("opengauss", OPENGAUSS_CONFS)):
        for pattern in patterns:
            for path in _glob(fs, pattern):
                _add_fixed(fs, by_config, instances, engine, path, lambda: _pg_instance(ctx, engine, path, names))
    if not any(i["engine"] in ("mysql", "mariadb") and i.get("pid") for i in instances):
        inst = _mysql_instance(ctx, names)
        if inst:
            _add_fixed(fs, by_config, instances, inst["engine"], inst["config_file"], lambda: inst)
    seen = set()
    for pattern in REDIS_CONFS:
        for path in _glob(fs, pattern):
            if path in seen or "sentinel" in posixpath.basename(path):
                continue
            seen.add(path)
            _add_fixed(fs, by_config, instances, "redis", path, lambda: _redis_instance(ctx, path, names))
    for pattern in DM_INIS:
        for path in _glob(fs, pattern):
            _add_fixed(fs, by_config, instances, "dm", path, lambda: _dm_instance(ctx, path, names))
    if ctx.live:
        for inst in instances:
            if inst.get("pid") is not None:
                _live_sockets(ctx, inst, inst["pid"], procs, sockets)
    return {"instances": instances}


def _add_fixed(fs, by_config, instances, engine, path, build):
    """A configuration at a packaging default path, unless a process or unit already led to it."""
    key = (engine, fs.host_path(path))
    if key in by_config:
        by_config[key]["discovered_from"].append({"kind": "path", "value": path})
        return
    inst = build()
    if inst:
        inst.setdefault("discovered_from", [{"kind": "path", "value": path}])
        inst.setdefault("pid", None)
        by_config[key] = inst
        instances.append(inst)
