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
    settings = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _PG_LINE.match(line)
        if not m:
            continue
        key, value = m.group(1).lower(), m.group(2)
        if value.startswith("'"):
            end = value.find("'", 1)
            value = value[1:end] if end > 0 else value[1:]
        else:
            value = value.split("#", 1)[0].strip()
        settings[key] = value  # the last occurrence wins, as in PostgreSQL
    return settings


def parse_pg_hba(text):
    """pg_hba.conf records: [{line, type, database, user, address, method, remote}] (remote: a host* line)."""
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("include"):
            continue
        f = line.split()
        kind = f[0].lower()
        if kind == "local" and len(f) >= 4:
            out.append({"line": number, "type": kind, "database": f[1], "user": f[2], "address": None,
                        "method": f[3].lower(), "remote": False})
        elif kind.startswith("host") and len(f) >= 5:
            addr, rest = f[3], f[4:]
            if "/" not in addr and rest and re.match(r"^\d+\.\d+\.\d+\.\d+$", rest[0] or ""):
                addr, rest = "%s/%s" % (addr, rest[0]), rest[1:]  # address + netmask columns
            if rest:
                out.append({"line": number, "type": kind, "database": f[1], "user": f[2], "address": addr,
                            "method": rest[0].lower(), "remote": True})
    return out


PG_DEFAULTS = {
    "postgresql": {"product_id": "postgresql", "listen": "localhost", "port": "5432", "ssl": "off"},
    "kingbase": {"product_id": "kingbase", "listen": "*", "port": "54321", "ssl": "off"},
    "opengauss": {"product_id": "opengauss", "listen": "localhost", "port": "5432", "ssl": "on"},
}


def _pg_instance(ctx, engine, path, names):
    text = ctx.fs.read_text(path)
    if text is None:
        return None
    s = parse_pg_conf(text)
    d = PG_DEFAULTS[engine]
    inst = {"engine": engine, "product_id": d["product_id"], "config_file": path, "config_files": [path]}
    port = int(s.get("port", d["port"])) if str(s.get("port", d["port"])).isdigit() else None
    addrs = [a.strip() for a in s.get("listen_addresses", d["listen"]).split(",") if a.strip()] or [""]
    inst["port"] = port
    inst["listen"], inst["listen_all"] = _listen(addrs, port)
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
    data_dir = s.get("data_directory") or posixpath.dirname(path)
    _data_dir_facts(ctx, data_dir, inst, names)
    hba_name = "sys_hba.conf" if engine == "kingbase" and not s.get("hba_file") else "pg_hba.conf"
    hba_path = s.get("hba_file") or posixpath.join(posixpath.dirname(path), hba_name)
    hba_text = ctx.fs.read_text(hba_path)
    inst["hba_file"] = hba_path if hba_text is not None else None
    inst["hba"] = parse_pg_hba(hba_text) if hba_text is not None else None
    inst["settings"] = dict((k, s[k]) for k in ("listen_addresses", "port", "ssl", "ssl_min_protocol_version",
                                               "shared_preload_libraries", "log_connections", "log_disconnections",
                                               "log_statement", "password_encryption", "data_directory",
                                               "audit_enabled") if k in s)
    return inst


# ---------------------------------------------------------------- MySQL / MariaDB
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


def _mysql_instance(ctx, names):
    main = None
    for cand in MYSQL_MAIN:
        if ctx.fs.isfile(cand):
            main = cand
            break
    if main is None:
        return None
    s, files = {}, []
    _mysql_read(ctx, main, s, files)
    for d in ("/etc/my.cnf.d", "/etc/mysql/conf.d", "/etc/mysql/mysql.conf.d", "/etc/mysql/mariadb.conf.d"):
        for name in ctx.fs.listdir(d) or []:
            p = posixpath.join(d, name)
            if name.endswith(".cnf") and p not in files:
                _mysql_read(ctx, p, s, files)
    mariadb = any("mariadb" in f for f in files) or any(
        ctx.fs.exists(p) for p in ("/etc/mysql/mariadb.cnf", "/etc/mysql/mariadb.conf.d", "/usr/sbin/mariadbd",
                                   "/usr/libexec/mariadbd"))
    if not any(k in s for k in ("datadir", "bind_address", "port", "socket", "ssl_cert", "plugin_load_add",
                                 "server_audit_logging", "require_secure_transport")) and \
            not any(ctx.fs.exists(p) for p in ("/usr/sbin/mysqld", "/usr/sbin/mariadbd", "/usr/libexec/mysqld")):
        return None  # a client-only my.cnf: no server here
    inst = {"engine": "mariadb" if mariadb else "mysql", "product_id": "mariadb" if mariadb else "mysql",
            "config_file": main, "config_files": files}
    port = int(s["port"]) if s.get("port", "").isdigit() else 3306
    bind = s.get("bind_address")
    addrs = [a.strip() for a in bind.split(",")] if bind else ["*"]
    inst["port"] = port
    inst["listen"], inst["listen_all"] = _listen(addrs, port)
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
                                               "server_audit_logging", "local_infile") if k in s)
    return inst


# ---------------------------------------------------------------- Redis
def _redis_instance(ctx, path, names):
    text = ctx.fs.read_text(path)
    if text is None:
        return None
    s = {}
    users, renamed = [], {}
    for raw in text.splitlines():
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
    if "port" not in s and "bind" not in s and "dir" not in s:
        return None  # not a server config (e.g. sentinel fragments)
    inst = {"engine": "redis", "product_id": "redis", "config_file": path, "config_files": [path]}
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
    inst["settings"]["config_command_disabled"] = "CONFIG" in renamed or bool(
        default_user and re.search(r"-config\b|-@admin|-@dangerous", default_user[-1], re.I))
    return inst


# ---------------------------------------------------------------- DM (Dameng)
def _dm_instance(ctx, path, names):
    text = ctx.fs.read_text(path)
    if text is None:
        return None
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


def collect(ctx):
    fs = ctx.fs
    names = _users(fs)
    instances = []
    for engine, patterns in (("postgresql", PG_CONFS), ("kingbase", KINGBASE_CONFS), ("opengauss", OPENGAUSS_CONFS)):
        for pattern in patterns:
            for path in _glob(fs, pattern):
                inst = _pg_instance(ctx, engine, path, names)
                if inst:
                    instances.append(inst)
    inst = _mysql_instance(ctx, names)
    if inst:
        instances.append(inst)
    seen = set()
    for pattern in REDIS_CONFS:
        for path in _glob(fs, pattern):
            if path in seen or "sentinel" in posixpath.basename(path):
                continue
            seen.add(path)
            inst = _redis_instance(ctx, path, names)
            if inst:
                instances.append(inst)
    for pattern in DM_INIS:
        for path in _glob(fs, pattern):
            inst = _dm_instance(ctx, path, names)
            if inst:
                instances.append(inst)
    return {"instances": instances}
