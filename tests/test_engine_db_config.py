"""Database configuration facts from fixture roots, and the data-security rules over them."""
import os
import textwrap

from scanner.context import Context

PASSWD = "root:x:0:0:root:/root:/bin/bash\npostgres:x:%d:%d::/var/lib/postgresql:/bin/bash\n" % (
    os.getuid(), os.getgid())


def collect_db(root):
    from scanner.collect import db_config
    ctx = Context(root=root, live=False)
    ctx.set_collector("db_config")
    return db_config.collect(ctx), ctx.errors


def by_engine(facts):
    return dict((i["engine"], i) for i in facts["instances"])


def test_postgresql_debian_layout_defaults_and_settings(make_root):
    root = make_root({
        "/etc/passwd": PASSWD,
        "/etc/postgresql/15/main/postgresql.conf": textwrap.dedent("""\
            data_directory = '/var/lib/postgresql/15/main'   # use data in another directory
            #listen_addresses = 'localhost'
            port = 5433
            shared_preload_libraries = 'pgaudit'
            ssl = on
            ssl = off          # the last one wins
            """),
        "/etc/postgresql/15/main/pg_hba.conf": "local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n",
        "/var/lib/postgresql/15/main/PG_VERSION": "15\n",
    })
    os.chmod(os.path.join(root, "var/lib/postgresql/15/main"), 0o700)
    facts, errors = collect_db(root)
    pg = by_engine(facts)["postgresql"]
    assert pg["listen"] == [{"address": "localhost", "port": 5433}] and pg["listen_all"] is False
    assert pg["tls"] is False and pg["tls_evidence"] == "ssl = off"
    assert pg["audit"] is True and "pgaudit" in pg["audit_evidence"]
    assert pg["data_dir"] == "/var/lib/postgresql/15/main" and pg["data_dir_mode"] == "0700"
    assert pg["data_dir_owner"] == "postgres"
    assert errors == []


def test_mariadb_redis_dm_kingbase(make_root):
    root = make_root({
        "/etc/passwd": PASSWD,
        "/usr/sbin/mariadbd": "",
        "/etc/my.cnf": "[client-server]\n!includedir /etc/my.cnf.d\n",
        "/etc/my.cnf.d/server.cnf": textwrap.dedent("""\
            [mysqld]
            datadir=/var/lib/mysql
            bind-address = 0.0.0.0
            plugin-load-add = server_audit.so
            server_audit_logging = ON
            [client]
            ssl-cert = /not/for/the/server.pem
            """),
        "/var/lib/mysql/ibdata1": "",
        "/etc/redis/redis.conf": "port 6379\n# bind 127.0.0.1\nprotected-mode no\ndir /var/lib/redis\n",
        "/var/lib/redis/dump.rdb": "",
        "/dm8/data/DAMENG/dm.ini": "INSTANCE_NAME = DMSERVER\nPORT_NUM = 5236  #port\nENABLE_AUDIT = 2\n",
        "/opt/Kingbase/ES/V8/data/kingbase.conf": "port = 54321\nssl = on\n",
        "/opt/Kingbase/ES/V8/data/sys_hba.conf": "local all all scram-sha-256\nhost all all 0.0.0.0/0 scram-sha-256\n",
    })
    os.chmod(os.path.join(root, "var/lib/mysql"), 0o755)
    facts, errors = collect_db(root)
    inst = by_engine(facts)
    maria = inst["mariadb"]
    assert maria["listen_all"] is True and maria["audit"] is True
    assert maria["tls"] is False  # the [client] ssl-cert is not the server's
    assert maria["data_dir_mode"] == "0755"
    redis = inst["redis"]
    assert redis["listen_all"] is True and redis["settings"]["requirepass_set"] is False
    assert redis["audit_capable"] is False and redis["audit"] is None
    dm = inst["dm"]
    assert (dm["port"], dm["audit"], dm["tls"]) == (5236, True, False)
    assert dm["tls_evidence"] == "ENABLE_ENCRYPT = 0 (default)" and dm["data_dir"] == "/dm8/data/DAMENG"
    kb = inst["kingbase"]
    assert kb["listen_all"] is True and kb["tls"] is True and kb["audit"] is False
    assert errors == []


def test_missing_data_dir_is_reported_not_guessed(make_root):
    root = make_root({"/etc/postgresql/15/main/postgresql.conf": "data_directory = '/srv/pg'\n"})
    facts, errors = collect_db(root)
    pg = by_engine(facts)["postgresql"]
    assert pg["data_dir_mode"] is None
    assert errors and errors[0]["path"] == "/srv/pg" and "does not exist" in errors[0]["message"]


def test_client_only_mysql_config_is_not_a_server(make_root):
    root = make_root({"/etc/mysql/my.cnf": "[client]\nport = 3306\n"})
    assert collect_db(root)[0] == {"instances": []}


def _scan(root):
    from scanner.pipeline import scan_report
    report = scan_report(root=root, profile="data-security")
    return report, dict((r["rule_id"], r) for r in report["results"])


def test_data_security_profile_default_vs_hardened(make_root, tmp_path):
    default = make_root({
        "/etc/os-release": 'ID=debian\nVERSION_ID="12"\nNAME="Debian GNU/Linux"\n',
        "/etc/passwd": PASSWD,
        "/etc/redis/redis.conf": "port 6379\nprotected-mode no\ndir /var/lib/redis\n",
        "/var/lib/redis/dump.rdb": "",
        "/dm8/data/DAMENG/dm.ini": "PORT_NUM = 5236\n",
    }, root=tmp_path / "default")
    os.chmod(os.path.join(default, "var/lib/redis"), 0o755)
    report, res = _scan(default)
    assert res["data-security.db.exposed"]["status"] in ("fail", "error")  # no firewall facts offline: never pass
    assert res["data-security.cache.unauthenticated-exposed"]["status"] == "fail"
    assert res["data-security.db.tls"]["status"] == "fail"
    assert res["data-security.db.audit"]["status"] == "fail"
    assert [i["key"] for i in res["data-security.db.audit"]["items"]] == ["/dm8/data/DAMENG/dm.ini"]
    assert res["data-security.db.data-dir-permissions"]["status"] == "fail"

    hardened = make_root({
        "/etc/os-release": 'ID=debian\nVERSION_ID="12"\nNAME="Debian GNU/Linux"\n',
        "/etc/passwd": PASSWD,
        "/etc/redis/redis.conf": "bind 127.0.0.1 -::1\nport 0\ntls-port 6379\nrequirepass s3cret\ndir /var/lib/redis\n",
        "/var/lib/redis/dump.rdb": "",
        "/dm8/data/DAMENG/dm.ini": "PORT_NUM = 5236\nENABLE_ENCRYPT = 1\nENABLE_AUDIT = 1\n",
    }, root=tmp_path / "hardened")
    os.chmod(os.path.join(hardened, "var/lib/redis"), 0o750)
    os.chmod(os.path.join(hardened, "dm8/data/DAMENG"), 0o700)
    report, res = _scan(hardened)
    assert res["data-security.cache.unauthenticated-exposed"]["status"] == "pass"
    assert res["data-security.db.tls"]["status"] == "pass"
    assert res["data-security.db.audit"]["status"] == "pass"
    assert res["data-security.db.data-dir-permissions"]["status"] == "pass"
    # DM listens on every interface: without a filtering firewall it stays a finding (or unknown offline)
    dm_item = [i for i in res["data-security.db.exposed"]["items"] if "dm.ini" in i["key"]][0]
    assert dm_item["status"] != "pass"


def test_redis_auth_and_config_command(make_root):
    root = make_root({
        "/etc/redis/redis.conf": "port 6379\nrequirepass \"\"\n",
        "/etc/redis/acl.conf": "port 6380\nuser default on #9f86d08188 ~* &* +@all -@admin\n",
        "/etc/redis/renamed.conf": "port 6381\nrequirepass s3cret\nrename-command CONFIG \"\"\n",
        "/etc/redis/nopass.conf": "port 6382\nuser default on nopass ~* +@all\n",
    })
    facts, _ = collect_db(root)
    got = dict((i["config_file"].rsplit("/", 1)[1], (i["settings"]["auth_configured"],
                                                     i["settings"]["config_command_disabled"]))
               for i in facts["instances"])
    assert got == {"redis.conf": (False, False),  # an empty requirepass is no password
                   "acl.conf": (True, True), "renamed.conf": (True, True), "nopass.conf": (False, False)}


def test_pg_hba_records(make_root):
    root = make_root({
        "/var/lib/pgsql/data/postgresql.conf": "port = 5432\n",
        "/var/lib/pgsql/data/pg_hba.conf": (
            "# comment\nlocal all all trust\n"
            "host all all 10.1.0.0 255.255.0.0 md5   # netmask form\n"
            "hostssl all all 0.0.0.0/0 trust\n"),
    })
    facts, _ = collect_db(root)
    pg = by_engine(facts)["postgresql"]
    assert pg["hba_file"] == "/var/lib/pgsql/data/pg_hba.conf"
    assert [(h["line"], h["type"], h["address"], h["method"], h["remote"]) for h in pg["hba"]] == [
        (2, "local", None, "trust", False), (3, "host", "10.1.0.0/255.255.0.0", "md5", True),
        (4, "hostssl", "0.0.0.0/0", "trust", True)]
    from scanner.pipeline import scan_report
    res = [r for r in scan_report(root=root, profile="data-security")["results"]
           if r["rule_id"] == "data-security.db.network-auth"][0]
    assert res["status"] == "fail"
    inner = res["items"][0]["items"]
    assert [(i["key"], i["status"]) for i in inner] == [("3", "pass"), ("4", "fail")]
