"""Real database servers started the way production ones are (non-default data directory / configuration,
listening on every address, no authentication), found by a live scan from their processes and sockets:
the data-security profile fails them with the instance named; reconfigured safely, it passes (issue 13)."""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

PG_BIN = "/usr/lib/postgresql/15/bin"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starts servers as their service users (needs root)")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("server exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("server did not listen on %d" % port)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def as_user(user):
    entry = pwd.getpwnam(user)

    def demote():
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    return demote


def owned_tempdir(user):
    path = tempfile.mkdtemp(prefix="xcscan-db-")
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def scan():
    from scanner.pipeline import scan_report
    report = scan_report(root="/", profile="data-security", live=True)
    return dict((r["rule_id"], r) for r in report["results"]), report


def item(result, part):
    found = [i for i in result["items"] if part in i["key"]]
    assert found, (part, [i["key"] for i in result["items"]], result["reason"])
    return found[0]


def firewall_filters(report):
    return bool((report["facts"].get("firewall") or {}).get("filtering"))


def have(*names):
    return all(shutil.which(n) or os.path.exists(n) for n in names)


@pytest.mark.skipif(not have(PG_BIN + "/postgres", PG_BIN + "/initdb"), reason="needs PostgreSQL server binaries")
def test_postgresql_with_moved_data_dir_listening_everywhere_with_trust():
    base = owned_tempdir("postgres")
    data = os.path.join(base, "data")
    proc = None
    try:
        subprocess.run([PG_BIN + "/initdb", "-D", data, "--auth=trust", "-U", "postgres"], check=True,
                       preexec_fn=as_user("postgres"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
        port = free_port()

        def start():
            return subprocess.Popen([PG_BIN + "/postgres", "-D", data, "-k", base, "-p", str(port)],
                                    preexec_fn=as_user("postgres"), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        with open(os.path.join(data, "postgresql.conf"), "a") as fh:
            fh.write("listen_addresses = '*'\n")
        proc = start()
        wait_listening(port, proc)
        res, report = scan()
        conf = os.path.join(data, "postgresql.conf")
        inst = [i for i in report["facts"]["db_config"]["instances"] if i["config_file"] == conf][0]
        assert inst["pid"] == proc.pid and inst["listen_source"] == "sockets of pid %d" % proc.pid
        assert inst["listen_all"] is True and {"address": "0.0.0.0", "port": port} in inst["listen"]
        assert item(res["data-security.db.network-auth"], os.path.join(data, "pg_hba.conf"))["status"] == "fail"
        assert item(res["data-security.db.auth-disabled"], conf)["status"] == "fail"
        if not firewall_filters(report):
            assert item(res["data-security.db.exposed"], conf)["status"] == "fail"
        # reconfigured safely: loopback only, peer locally, scram over TCP
        stop(proc)
        with open(os.path.join(data, "postgresql.conf"), "a") as fh:
            fh.write("listen_addresses = 'localhost'\n")
        with open(os.path.join(data, "pg_hba.conf"), "w") as fh:
            fh.write("local all all peer\nhost all all 127.0.0.1/32 scram-sha-256\n")
        proc = start()
        wait_listening(port, proc)
        res, report = scan()
        for rid in ("data-security.db.network-auth", "data-security.db.auth-disabled", "data-security.db.exposed",
                    "data-security.db.data-dir-permissions"):
            key = os.path.join(data, "pg_hba.conf") if rid.endswith("network-auth") else conf
            if rid.endswith("data-dir-permissions"):
                key = data
            assert item(res[rid], key)["status"] == "pass", (rid, item(res[rid], key))
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(not have("/usr/sbin/mariadbd", "mariadb-install-db"), reason="needs MariaDB server")
def test_mariadb_with_defaults_file_listening_everywhere_without_grant_tables():
    base = owned_tempdir("mysql")
    data = os.path.join(base, "data")
    cnf = os.path.join(base, "my.cnf")
    port = free_port()
    proc = None

    def write_cnf(extra):
        with open(cnf, "w") as fh:
            fh.write("[mysqld]\ndatadir=%s\nsocket=%s/mysqld.sock\npid-file=%s/mysqld.pid\nport=%d\n"
                     "user=mysql\nskip-log-bin\n%s" % (data, base, base, port, extra))
        os.chmod(cnf, 0o644)

    def start():
        return subprocess.Popen(["/usr/sbin/mariadbd", "--defaults-file=" + cnf], preexec_fn=as_user("mysql"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        write_cnf("bind-address=0.0.0.0\nskip-grant-tables\n")
        subprocess.run(["mariadb-install-db", "--defaults-file=" + cnf, "--user=mysql", "--skip-test-db"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
        os.chmod(data, 0o750)
        proc = start()
        wait_listening(port, proc)
        res, report = scan()
        inst = [i for i in report["facts"]["db_config"]["instances"] if i["config_file"] == cnf][0]
        assert inst["pid"] == proc.pid and inst["listen_all"] is True and inst["auth_disabled"] is True
        assert item(res["data-security.db.auth-disabled"], cnf)["status"] == "fail"
        if not firewall_filters(report):
            assert item(res["data-security.db.exposed"], cnf)["status"] == "fail"
        stop(proc)
        write_cnf("bind-address=127.0.0.1\n")
        proc = start()
        wait_listening(port, proc)
        res, report = scan()
        assert item(res["data-security.db.auth-disabled"], cnf)["status"] == "pass"
        assert item(res["data-security.db.exposed"], cnf)["status"] == "pass"
        assert item(res["data-security.db.data-dir-permissions"], data)["status"] == "pass"
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(not have("redis-server"), reason="needs redis-server")
def test_redis_with_config_argument_listening_everywhere_without_password():
    base = owned_tempdir("redis")
    conf = os.path.join(base, "cache.conf")
    port = free_port()
    proc = None

    def start(extra):
        with open(conf, "w") as fh:
            fh.write("port %d\ndir %s\ndaemonize no\nsave \"\"\n%s" % (port, base, extra))
        os.chmod(conf, 0o640)
        os.chown(conf, pwd.getpwnam("redis").pw_uid, pwd.getpwnam("redis").pw_gid)
        return subprocess.Popen([shutil.which("redis-server"), conf], preexec_fn=as_user("redis"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # set-proc-title no keeps the command line (and its configuration path) as it was started
        proc = start("bind * -::*\nprotected-mode no\nset-proc-title no\n")
        wait_listening(port, proc)
        res, report = scan()
        inst = [i for i in report["facts"]["db_config"]["instances"] if i["config_file"] == conf][0]
        assert inst["pid"] == proc.pid and inst["listen_all"] is True
        assert item(res["data-security.cache.unauthenticated-exposed"], conf)["status"] == "fail"
        assert item(res["data-security.cache.no-auth"], conf)["status"] == "fail"
        stop(proc)
        proc = start("bind 127.0.0.1\nrequirepass s3cret-for-the-test\nset-proc-title no\n")
        wait_listening(port, proc)
        res, report = scan()
        assert item(res["data-security.cache.unauthenticated-exposed"], conf)["status"] == "pass"
        assert item(res["data-security.cache.no-auth"], conf)["status"] == "pass"
        # the default title ("redis-server *:PORT") drops the path: with no unit and no configuration
        # serving that port the instance is an error naming the process -- never a pass, never dropped
        stop(proc)
        proc = start("bind * -::*\nprotected-mode no\n")
        wait_listening(port, proc)
        res, report = scan()
        named = item(res["data-security.cache.no-auth"], "redis server pid %d" % proc.pid)
        assert named["status"] == "error"
        inst = [i for i in report["facts"]["db_config"]["instances"] if i.get("pid") == proc.pid][0]
        assert inst["listen_all"] is True  # the sockets still say where it listens
        if not firewall_filters(report):
            assert item(res["data-security.cache.unauthenticated-exposed"],
                        "redis server pid %d" % proc.pid)["status"] in ("fail", "error")
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(base, ignore_errors=True)


def outward_address():
    """A non-loopback address of this host (None when it has none)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 9))  # no packet is sent for a UDP connect
        address = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if address.startswith("127.") else address


@pytest.mark.skipif(not have("redis-server") or outward_address() is None, reason="needs redis-server and a NIC")
def test_redis_protected_mode_is_what_redis_itself_enforces():
    """No bind, no password, protected-mode on (the default): the collector says local_only and the rule
    passes -- and the real server refuses a client from a non-loopback address, as redis.conf says."""
    from scanner.collect import db_config
    from scanner.context import Context
    base = owned_tempdir("redis")
    conf = os.path.join(base, "p.conf")
    port = free_port()
    with open(conf, "w") as fh:
        fh.write("port %d\ndir %s\ndaemonize no\nsave \"\"\nset-proc-title no\n" % (port, base))
    proc = subprocess.Popen([shutil.which("redis-server"), conf], preexec_fn=as_user("redis"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        client = socket.create_connection((outward_address(), port), timeout=5)
        client.sendall(b"PING\r\n")
        reply = client.recv(512)
        client.close()
        assert reply.startswith(b"-DENIED"), reply
        ctx = Context(root="/", live=True)
        ctx.set_collector("db_config")
        inst = [i for i in db_config.collect(ctx)["instances"] if i["config_file"] == conf][0]
        assert inst["listen_all"] is True and inst["settings"]["local_only"] is True
        res, _ = scan()
        assert item(res["data-security.cache.unauthenticated-exposed"], conf)["status"] == "pass"
        assert item(res["data-security.cache.no-auth"], conf)["status"] == "fail"  # still no password at all
    finally:
        stop(proc)
        shutil.rmtree(base, ignore_errors=True)
