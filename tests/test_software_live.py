"""Live inventory of this machine, and programs that only mention a product are not that product."""
import os
import socket
import subprocess
import sys

import pytest

from fixtures.software import products as table
from scanner.catalog import default_catalog
from scanner.classify import software
from scanner.collect import collect_facts
from scanner.context import Context

pytestmark = pytest.mark.live

MACHINE = {  # product id -> (server executable name, dpkg package that carries its version)
    "postgresql": ("postgres", "postgresql-15"),
    "mariadb": ("mariadbd", "mariadb-server"),
    "redis": ("redis-server", "redis-server"),
    "rabbitmq": ("beam.smp", "rabbitmq-server"),
    "mosquitto": ("mosquitto", "mosquitto"),
    "nats": ("nats-server", "nats-server"),
}


def running(name):
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/comm" % pid) as fh:
                    if fh.read().strip() == name:
                        return True
            except IOError:
                pass
    return False


def dpkg_upstream(package):
    out = subprocess.check_output(["dpkg-query", "-W", "-f", "${Version}", package]).decode()
    out = out.split(":", 1)[-1]
    return out.rsplit("-", 1)[0].split("~")[0].split("+")[0]


@pytest.fixture(scope="module")
def machine_report():
    from scanner.pipeline import inventory_report
    return inventory_report(root="/")


@pytest.mark.parametrize("pid", sorted(MACHINE))
def test_this_machine_lists_its_servers_with_versions(pid, machine_report):
    exe, package = MACHINE[pid]
    if not running(exe):
        msg = "%s is not running on this machine" % exe
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    comps = [c for c in machine_report["inventory"]["components"] if c["product_id"] == pid]
    assert len(comps) == 1
    comp = comps[0]
    assert comp["version"] == dpkg_upstream(package)
    kinds = set(e["kind"] for e in comp["evidence"])
    assert set(["process", "port", "package", "service"]) <= kinds
    assert comp["confidence"] == "high"
    assert comp["details"]["running"] is True and comp["details"]["listen"]
    assert comp["origin"] == "foreign" and comp["substitutes"]


def test_machine_postgres_details(machine_report):
    if not running("postgres"):
        pytest.skip("postgres is not running")
    pg = [c for c in machine_report["inventory"]["components"] if c["product_id"] == "postgresql"][0]
    assert pg["details"]["data_dir"].startswith("/var/lib/postgresql/")
    assert pg["details"]["user"] == "postgres"
    assert {"address": "127.0.0.1", "port": 5432} in pg["details"]["listen"]
    assert len(pg["details"]["pids"]) > 1  # background workers are part of the one instance


def test_machine_openssl_sm_support_is_probed(machine_report):
    ssl = [c for c in machine_report["inventory"]["components"] if c["product_id"] == "openssl"][0]
    out = subprocess.check_output(["openssl", "list", "-digest-algorithms"]).decode()
    assert ssl["details"]["sm3"] is ("SM3" in out)
    assert ssl["version"] == subprocess.check_output(["openssl", "version"]).decode().split()[1]
    assert any(e["kind"] == "probe" for e in ssl["evidence"])


# ---------------------------------------------------------------- negatives
MENTIONS = [
    ("/usr/bin/grep", ["grep", "-r", "dmserver", "/var/log"]),
    ("/usr/bin/vim", ["vim", "/u01/oracle/user_projects/domains/base_domain/WEB-INF/weblogic.xml"]),
    ("/usr/bin/less", ["less", "/opt/dmdbms/log/dm_DMSERVER_202311.log"]),
    ("/usr/bin/tail", ["tail", "-F", "/home/admin/oceanbase/log/observer.log", "/opt/TLQ8/bin/tlqd"]),
    ("/bin/bash", ["/bin/bash", "/root/bin/backup_dm.sh", "/opt/dmdbms/bin/dmserver", "kingbase"]),
    ("/bin/bash", ["bash", "-c", "/opt/dmdbms/bin/dmserver /opt/dmdbms/data/DAMENG/dm.ini -noconsole"]),
    ("/usr/bin/ssh", ["ssh", "oracle@db1", "tnslsnr", "LISTENER"]),
    (table.JAVA, [table.JAVA, "-jar", "/opt/tools/logviewer.jar", "weblogic.Server",
                  "org.apache.catalina.startup.Bootstrap", "/opt/tweb8/logs/server.log"]),
    ("/usr/bin/python3", ["python3", "/opt/scripts/check_redis.py", "redis-server", "mongod"]),
]


def test_programs_that_mention_products_are_not_products(tmp_path):
    holder = table.build_holder(str(tmp_path))
    if holder is None:
        pytest.skip("no C compiler (cc) to build the process stand-in")
    launched = table.Launched()
    pids = []
    try:
        for exe, argv in MENTIONS:
            proc, _port = launched.start(holder, str(tmp_path), exe, argv, None)
            pids.append(proc.pid)
        table.wait_exec(launched.procs)
        facts = collect_facts(Context("/", live=True), only=["processes", "sockets"])
    finally:
        launched.stop()
    seen = set(p["pid"] for p in facts["processes"])
    assert set(pids) <= seen  # they really ran
    comps = software.classify(facts, default_catalog())
    for comp in comps:
        assert not set(comp["details"].get("pids") or []) & set(pids), comp["product_id"]


LISTENER = ("import socket, sys, time\n"
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(5); print('ready', flush=True)\n"
            "time.sleep(60)\n")


@pytest.mark.parametrize("port", [1521, 2881, 5236])
def test_unrelated_program_on_a_product_port_is_not_that_product(port):
    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        pytest.skip("port %d is in use" % port)
    finally:
        probe.close()
    proc = subprocess.Popen([sys.executable, "-c", LISTENER, str(port)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        facts = collect_facts(Context("/", live=True), only=["processes", "sockets"])
    finally:
        proc.kill()
        proc.wait()
    held = [s for s in facts["sockets"] if s["port"] == port]
    assert held and held[0]["pid"] == proc.pid  # the socket and its owner were seen
    comps = software.classify(facts, default_catalog())
    for comp in comps:
        assert port not in [l["port"] for l in comp["details"].get("listen") or []]
        assert proc.pid not in (comp["details"].get("pids") or [])
    assert not [c for c in comps if c["product_id"] in ("oracle-db", "oceanbase", "dm")]
