"""Every software product is recognised from a realistic offline root and from a live process."""
import os
import subprocess

import pytest

from fixtures.software import products as table
from scanner.catalog import default_catalog
from scanner.classify import software
from scanner.collect import collect_facts
from scanner.context import Context

OFFLINE_COLLECTORS = ["packages", "services", "software_paths", "crypto_libs"]
SOFTWARE_CATEGORIES = ("database", "middleware", "message-queue", "web-server", "cache", "crypto")


def classify_root(root):
    ctx = Context(root=root, live=False)
    facts = collect_facts(ctx, only=OFFLINE_COLLECTORS + ["processes", "sockets"])
    return facts, software.classify(facts, default_catalog())


def by_id(components, pid):
    return [c for c in components if c["product_id"] == pid]


def test_table_covers_every_software_product():
    catalog = default_catalog()
    wanted = set(p["id"] for p in catalog.products.values()
                 if p["category"] in SOFTWARE_CATEGORIES and p["category"] != "crypto")
    assert wanted - set(s["id"] for s in table.P if s["offline"]) == set()
    assert wanted - set(s["id"] for s in table.P if s["live"] or s["java"]) == set()


OFFLINE = [s for s in table.P if s["offline"]]


@pytest.mark.parametrize("spec", OFFLINE, ids=[s["label"] for s in OFFLINE])
def test_offline_root_identifies_product(spec, make_root):
    root = make_root(spec["offline"])
    facts, comps = classify_root(root)
    assert facts["processes"] is None and facts["collection"]["processes"]["status"] == "not_collected"
    found = by_id(comps, spec["id"])
    assert len(found) == 1, [c["product_id"] for c in comps]
    comp = found[0]
    kinds = set(e["kind"] for e in comp["evidence"])
    files = spec["offline"]
    if any(p.startswith("/usr/lib/systemd/system/") for p in files):
        assert "service" in kinds
    if "/var/lib/dpkg/status" in files:
        assert "package" in kinds
    assert "path" in kinds or "package" in kinds
    assert comp["details"]["running"] is None  # not known offline, never "not running"
    if spec["offline_version"]:
        assert comp["version"] == spec["offline_version"]
    # nothing else is invented from the same root
    others = [c["product_id"] for c in comps if c["product_id"] != spec["id"] and c["category"] != "crypto"]
    assert others == []
    strong = kinds & set(["package", "service", "path"])
    if len(strong) >= 2:
        assert comp["confidence"] == "high"
    if len(kinds) == 1:
        assert comp["confidence"] != "high"  # one kind of static evidence is never conclusive


def test_offline_mariadb_alias_is_not_mysql(make_root):
    spec = [s for s in table.P if s["id"] == "mariadb"][0]
    root = make_root(spec["offline"])
    _facts, comps = classify_root(root)
    assert [c["product_id"] for c in comps] == ["mariadb"]


def test_offline_symlinked_binary_of_the_same_product_counts(make_root):
    """Debian's /usr/bin/redis-server is a link to redis-check-rdb: still Redis's install path."""
    root = make_root({"/usr/bin/redis-check-rdb": b"\x7fELF", "/usr/bin/redis-server": ("symlink", "redis-check-rdb")})
    _facts, comps = classify_root(root)
    assert [(c["product_id"], c["evidence"][0]["value"]) for c in comps] == [("redis", "/usr/bin/redis-server")]


def test_offline_config_file_alone_is_not_a_product(make_root):
    root = make_root({"/etc/redis/redis.conf": "port 6379\n", "/etc/mongod.conf": "net: {}\n"})
    _facts, comps = classify_root(root)
    assert comps == []


def test_offline_disabled_unit_and_sysv_script(make_root):
    root = make_root(table.offline(unit=("nginx.service", "nginx", "/usr/sbin/nginx"), enabled=False,
                                   files={"/etc/init.d/memcached": "#!/bin/sh\n",
                                          "/etc/rc3.d/K01memcached": ("symlink", "../init.d/memcached")}))
    facts, comps = classify_root(root)
    unit = [u for u in facts["services"]["units"] if u["name"] == "nginx.service"][0]
    assert unit["enabled"] is False and unit["active"] is None
    assert facts["services"]["init_scripts"] == [
        {"name": "memcached", "path": "/etc/init.d/memcached", "enabled": False}]
    nginx = by_id(comps, "nginx")[0]
    assert nginx["confidence"] == "low"
    assert "nginx.service (disabled)" in [e["value"] for e in nginx["evidence"]]
    assert by_id(comps, "memcached")[0]["evidence"][0]["value"] == "init script memcached (disabled)"


# ---------------------------------------------------------------- live
LIVE = [s for s in table.P if s["live"] or s["java"]]


@pytest.fixture(scope="module")
def live_inventory(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("live"))
    holder = table.build_holder(base)
    if holder is None:
        pytest.skip("no C compiler (cc) to build the process stand-in")
    launched = table.Launched()
    ports = {}
    try:
        for spec in LIVE:
            if spec["java"]:
                argv = [table.JAVA] + spec["java"]
                proc, port = launched.start(holder, base, table.JAVA, argv, spec["port"])
            else:
                proc, port = launched.start(holder, base, table.exe_for(spec), spec["live"], spec["port"])
            ports[spec["label"]] = (proc.pid, port)
            for exe, argv, xport in spec["extra"]:
                xproc, xbound = launched.start(holder, base, exe, argv, xport)
                ports[spec["label"] + "+extra"] = (xproc.pid, xbound)
        table.wait_exec(launched.procs)
        ctx = Context(root="/", live=True)
        facts = collect_facts(ctx, only=["processes", "sockets", "packages", "services"])
        comps = software.classify(facts, default_catalog())
        yield {"facts": facts, "components": comps, "ports": ports, "base": base}
    finally:
        launched.stop()


@pytest.mark.live
@pytest.mark.parametrize("spec", LIVE, ids=[s["label"] for s in LIVE])
def test_live_process_identifies_product(spec, live_inventory):
    pid, port = live_inventory["ports"][spec["label"]]
    mine = [c for c in live_inventory["components"]
            if c["product_id"] == spec["id"] and pid in c["details"].get("pids", [])]
    assert len(mine) == 1, [(c["product_id"], c["details"].get("pids")) for c in live_inventory["components"]]
    comp = mine[0]
    kinds = [e["kind"] for e in comp["evidence"]]
    assert kinds[0] == "process"
    assert comp["details"]["running"] is True
    assert comp["details"]["pid"] == pid
    if port:
        assert {"address": "127.0.0.1", "port": port} in comp["details"]["listen"]
        assert "port" in kinds
        assert comp["confidence"] == "high"  # a port held by the identified process confirms it
    if spec["version"]:
        assert comp["version"] == spec["version"]
    if spec["model"]:
        assert comp["model"] == spec["model"]
    for label, (xpid, xport) in live_inventory["ports"].items():
        if label == spec["label"] + "+extra":  # e.g. the Oracle listener joins its database home
            assert xpid in comp["details"]["pids"]
            assert {"address": "127.0.0.1", "port": xport} in comp["details"]["listen"]


@pytest.mark.live
def test_live_database_details(live_inventory):
    comps = live_inventory["components"]
    pid, port = live_inventory["ports"]["dm"]
    dm = [c for c in comps if c["product_id"] == "dm" and c["details"]["pid"] == pid][0]
    assert dm["details"]["config_files"] == ["/opt/dmdbms/data/DAMENG/dm.ini"]
    assert dm["details"]["data_dir"] == "/opt/dmdbms/data/DAMENG"
    assert dm["details"]["user"] == os.environ.get("USER", dm["details"]["user"])
    pid, port = live_inventory["ports"]["mysql"]
    my = [c for c in comps if c["product_id"] == "mysql" and c["details"]["pid"] == pid][0]
    assert my["details"]["data_dir"] == "/data/mysql"
    assert my["details"]["listen"] == [{"address": "127.0.0.1", "port": port}]


@pytest.mark.parametrize("package,expected", [("mariadb-server-10.3", "mariadb"), ("MariaDB-server", "mariadb"),
                                              ("mysql-community-server", "mysql"), (None, "mysql")])
def test_mysqld_process_of_mariadb_package_is_mariadb(package, expected):
    """Older MariaDB releases (Kylin V10, Debian 10) still run a binary called mysqld."""
    facts = {"processes": [{"pid": 900, "ppid": 1, "name": "mysqld", "exe": "/usr/libexec/mysqld",
                            "cmdline": ["/usr/libexec/mysqld", "--basedir=/usr"], "user": "mysql"}],
             "sockets": [{"proto": "tcp", "address": "0.0.0.0", "port": 3306, "pid": 900}],
             "packages": {"manager": "rpm", "items": [{"name": package, "version": "3:10.3.39-1.p01.ky10",
                                                       "arch": "x86_64"}] if package else []}}
    comps = software.classify(facts, default_catalog())
    assert [c["product_id"] for c in comps] == [expected]
    if package and expected == "mariadb":
        assert comps[0]["version"] == "10.3.39"


def test_bad_signature_is_a_clear_catalog_error(tmp_path):
    from scanner.catalog import load_catalog
    from scanner.classify.software.match import compile_catalog
    from scanner.errors import DataError
    (tmp_path / "database.yaml").write_text(
        "category: database\nproducts:\n  - id: dm\n    name: {zh: 达梦, en: DM}\n"
        "    vendor: {zh: 达梦, en: Dameng}\n    origin: domestic\n"
        "    match:\n      processes:\n        - {name: 'dmserver('}\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        compile_catalog(load_catalog(str(tmp_path)))
    text = str(err.value) + str(getattr(err.value, "path", ""))
    assert "product dm" in text and "database.yaml" in text and "invalid software signature" in text


PY37_CLASSIFY = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from scanner.catalog import Catalog
from scanner.classify import software
doc = json.load(sys.stdin)
comps = software.classify(doc["facts"], Catalog(doc["products"]))
print(json.dumps([[c["product_id"], c["version"], c["confidence"], c["details"].get("pids")] for c in comps]))
"""


def test_software_classification_runs_on_python37(live_inventory):
    """Kylin V10 / UOS 20 / openEuler 20.03 run the agent on Python 3.7: same answer there."""
    import json
    from test_py37 import find_python37
    PY37 = find_python37()
    if PY37 is None:
        pytest.skip("no Python 3.7 here")
    facts = live_inventory["facts"]
    doc = {"facts": facts, "products": default_catalog().products}
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([PY37, "-c", PY37_CLASSIFY, repo], input=json.dumps(doc).encode(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert out.returncode == 0, out.stderr.decode()
    here = [[c["product_id"], c["version"], c["confidence"], c["details"].get("pids")]
            for c in software.classify(facts, default_catalog())]
    assert json.loads(out.stdout.decode()) == here
    assert len(here) >= len(LIVE)


def test_two_instances_of_one_install_are_two_components():
    def dm(pid, ini, port):
        return {"pid": pid, "ppid": 1, "name": "dmserver", "exe": "/opt/dmdbms/bin/dmserver", "user": "dmdba",
                "cmdline": ["/opt/dmdbms/bin/dmserver", "path=" + ini, "-noconsole"]}
    facts = {"processes": [dm(100, "/data/DMA/dm.ini", 5236), dm(200, "/data/DMB/dm.ini", 5237),
                           {"pid": 300, "ppid": 1, "name": "bash", "exe": "/usr/bin/bash", "cmdline": ["bash"]}],
             "sockets": [{"proto": "tcp", "address": "0.0.0.0", "port": 5236, "pid": 100},
                         {"proto": "tcp", "address": "0.0.0.0", "port": 5237, "pid": 200}],
             "software_paths": {"found": [{"path": "/opt/dmdbms/bin/dmserver", "kind": "path", "type": "file"}]}}
    comps = software.classify(facts, default_catalog())
    assert [(c["product_id"], c["details"]["pid"], c["details"]["config_files"], c["details"]["listen"][0]["port"])
            for c in comps] == [("dm", 100, ["/data/DMA/dm.ini"], 5236), ("dm", 200, ["/data/DMB/dm.ini"], 5237)]
    assert all("/opt/dmdbms/bin/dmserver" in [e["value"] for e in c["evidence"]] for c in comps)


def test_version_follows_the_running_major_when_two_are_installed():
    def pg(pid, major):
        return {"pid": pid, "ppid": 1, "name": "postgres", "exe": "/usr/lib/postgresql/%d/bin/postgres" % major,
                "user": "postgres", "cmdline": ["/usr/lib/postgresql/%d/bin/postgres" % major, "-D",
                                                "/var/lib/postgresql/%d/main" % major]}
    facts = {"processes": [pg(10, 15), pg(20, 16)],
             "packages": {"manager": "dpkg", "items": [
                 {"name": "postgresql-15", "version": "15.20-0+deb12u1", "arch": "amd64"},
                 {"name": "postgresql-16", "version": "16.4-1.pgdg120+1", "arch": "amd64"}]}}
    comps = software.classify(facts, default_catalog())
    assert [(c["details"]["pid"], c["version"], c["details"]["version_source"]) for c in comps] == [
        (10, "15.20", "package"), (20, "16.4", "package")]
    facts["packages"]["items"].pop()  # 16 runs from a tarball: its own major, not the 15 package
    comps = software.classify(facts, default_catalog())
    assert [(c["version"], c["details"]["version_source"]) for c in comps] == [("15.20", "package"),
                                                                               ("16", "process")]


def test_instance_described_by_its_main_process():
    home = "/u01/app/oracle/product/19.3.0/dbhome_1"
    facts = {"processes": [
        {"pid": 50, "ppid": 1, "name": "tnslsnr", "exe": home + "/bin/tnslsnr", "cmdline": [home + "/bin/tnslsnr", "LISTENER", "-inherit"]},
        {"pid": 90, "ppid": 1, "name": "ora_pmon_orcl", "exe": home + "/bin/oracle", "cmdline": ["ora_pmon_ORCL"]}],
        "sockets": [{"proto": "tcp", "address": "0.0.0.0", "port": 1521, "pid": 50}]}
    comps = software.classify(facts, default_catalog())
    assert len(comps) == 1
    assert (comps[0]["details"]["pid"], comps[0]["model"], comps[0]["version"]) == (90, None, "19.3.0")
    assert comps[0]["details"]["pids"] == [50, 90] and comps[0]["details"]["listen"][0]["port"] == 1521
