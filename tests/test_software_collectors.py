"""Software collectors: packages (dpkg, rpm sqlite / Berkeley DB), services, paths, processes, sockets, crypto."""
import os
import shutil
import subprocess
import sys

import pytest

from scanner.collect import collect_facts, crypto_libs, packages, processes, services, sockets, software_paths
from scanner.context import Context

HERE = os.path.dirname(os.path.abspath(__file__))
RPMDB = os.path.join(HERE, "fixtures", "software", "rpmdb")
RPM_EXPECTED = [
    {"name": "mysql-community-server", "version": "8.0.36-1.el8", "arch": "x86_64"},
    {"name": "nginx", "version": "1.21.5-4.oe2203", "arch": "x86_64"},
    {"name": "openssl", "version": "1.1.1f-15.oe2203", "arch": "x86_64"},
    {"name": "tongsuo", "version": "8.4.0-1", "arch": "x86_64"},
]


def run(collector, root, live=False):
    ctx = Context(root=root, live=live)
    ctx.set_collector(collector.NAME)
    return collector.collect(ctx), ctx.errors


def rpm_root(tmp_path, fmt, directory="/var/lib/rpm"):
    root = tmp_path / "root"
    dest = root / directory.lstrip("/")
    dest.mkdir(parents=True)
    name = {"sqlite": "rpmdb.sqlite", "bdb": "Packages"}[fmt]
    shutil.copy(os.path.join(RPMDB, fmt, name), str(dest / name))
    return str(root)


# ---------------------------------------------------------------- packages
def test_dpkg_status_only_installed_entries(make_root):
    root = make_root({"/var/lib/dpkg/status": (
        "Package: nginx\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.22.1-9\n"
        "Description: web\n multi-line\n Version: 9.9 (not a field)\n\n"
        "Package: old-thing\nStatus: deinstall ok config-files\nVersion: 1.0\n\n"
        "Package: held\nStatus: hold ok installed\nVersion: 2.0\nArchitecture: all\n")})
    facts, errors = run(packages, root)
    assert facts["manager"] == "dpkg" and errors == []
    assert facts["items"] == [{"name": "held", "version": "2.0", "arch": "all"},
                              {"name": "nginx", "version": "1.22.1-9", "arch": "amd64"}]


@pytest.mark.parametrize("fmt,directory", [("sqlite", "/var/lib/rpm"), ("sqlite", "/usr/lib/sysimage/rpm"),
                                           ("bdb", "/var/lib/rpm")])
def test_rpm_database_read_offline(tmp_path, fmt, directory):
    facts, errors = run(packages, rpm_root(tmp_path, fmt, directory))
    assert errors == []
    assert facts["manager"] == "rpm" and facts["format"] == fmt
    assert facts["items"] == RPM_EXPECTED


@pytest.mark.parametrize("name,content", [("rpmdb.sqlite", b"SQLite format 3\x00" + b"\x00" * 100),
                                          ("rpmdb.sqlite", b"not a database at all" * 50),
                                          ("Packages", b"\x00" * 8192),
                                          ("Packages.db", b"XXXX" + b"\x00" * 100)])
def test_unreadable_rpm_database_is_reported(make_root, name, content):
    root = make_root({"/var/lib/rpm/" + name: content})
    facts, errors = run(packages, root)
    assert facts is None
    assert len(errors) == 1 and errors[0]["path"] == "/var/lib/rpm/" + name
    assert "could not be read" in errors[0]["message"]


def test_no_package_database(make_root):
    facts, errors = run(packages, make_root({"/etc/hostname": "x\n"}))
    assert facts == {"manager": None, "items": [], "source": None} and errors == []


def test_live_dpkg_matches_dpkg_query():
    if not os.path.exists("/var/lib/dpkg/status"):
        pytest.skip("not a dpkg system")
    facts, _ = run(packages, "/", live=True)
    out = subprocess.check_output(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Package}|${Version}\n"])
    installed = set(l.split("|")[1] for l in out.decode().splitlines() if l[:2] in ("ii", "hi"))
    assert set(i["name"] for i in facts["items"]) == installed


# ---------------------------------------------------------------- services
def test_units_enabled_masked_alias_and_template(make_root):
    unit = "[Unit]\nDescription=x\n[Service]\nExecStart=/usr/bin/redis-server /etc/redis/redis.conf\n[Install]\nWantedBy=multi-user.target\n"
    root = make_root({
        "/usr/lib/systemd/system/redis-server.service": unit,
        "/usr/lib/systemd/system/redis-server@.service": unit,
        "/usr/lib/systemd/system/static.service": "[Service]\nExecStart=-/bin/true\n",
        "/usr/lib/systemd/system/telnet.socket": "[Socket]\nListenStream=23\n[Install]\nWantedBy=sockets.target\n",
        "/etc/systemd/system/redis.service": ("symlink", "/usr/lib/systemd/system/redis-server.service"),
        "/etc/systemd/system/multi-user.target.wants/redis-server.service":
            ("symlink", "/usr/lib/systemd/system/redis-server.service"),
        "/etc/systemd/system/multi-user.target.wants/redis-server@cache.service":
            ("symlink", "/usr/lib/systemd/system/redis-server@.service"),
        "/etc/systemd/system/telnet.socket": ("symlink", "/dev/null"),
    })
    facts, errors = run(services, root)
    units = dict((u["name"], u) for u in facts["units"])
    assert units["redis-server.service"]["enabled"] is True
    assert units["redis-server.service"]["exec_start"] == "/usr/bin/redis-server /etc/redis/redis.conf"
    assert units["redis-server@.service"]["enabled"] is False
    assert units["redis-server@cache.service"]["enabled"] is True
    assert units["redis-server@cache.service"]["source"] == "/usr/lib/systemd/system/redis-server@.service"
    assert units["static.service"]["enabled"] is None
    assert units["static.service"]["exec_start"] == "/bin/true"
    assert units["telnet.socket"]["enabled"] is False and units["telnet.socket"]["masked"] is True
    assert units["redis.service"]["alias_of"] == "redis-server.service"
    assert all(u["active"] is None for u in facts["units"])  # offline: unknown, not inactive


def test_sysv_init_scripts_rc_links(make_root):
    root = make_root({
        "/etc/rc.d/init.d/dmserver": "#!/bin/sh\n", "/etc/rc.d/init.d/tlq": "#!/bin/sh\n",
        "/etc/rc.d/init.d/functions": "# library\n", "/etc/rc.d/init.d/orphan": "#!/bin/sh\n",
        "/etc/init.d": ("symlink", "rc.d/init.d"),
        "/etc/rc.d/rc3.d/S80dmserver": ("symlink", "../init.d/dmserver"),
        "/etc/rc.d/rc3.d/K20tlq": ("symlink", "../init.d/tlq"),
    })
    facts, _ = run(services, root)
    assert facts["init_scripts"] == [
        {"name": "dmserver", "path": "/etc/init.d/dmserver", "enabled": True},
        {"name": "orphan", "path": "/etc/init.d/orphan", "enabled": None},
        {"name": "tlq", "path": "/etc/init.d/tlq", "enabled": False},
    ]


# ---------------------------------------------------------------- software paths
def test_path_expansion_is_one_listing_per_wildcard(make_root):
    root = make_root({"/home/dmdba/dmdbms/bin/dmserver": "x", "/home/other/dmdbms/bin/dminit": "x",
                      "/home/deep/a/dmdbms/bin/dmserver": "x", "/opt/dmdbms/bin/dmserver": "x"})
    ctx = Context(root=root, live=False)
    assert software_paths.expand(ctx.fs, "/home/*/dmdbms/bin/dmserver") == ["/home/dmdba/dmdbms/bin/dmserver"]
    assert software_paths.expand(ctx.fs, "/opt/dmdbms/bin/dmserver") == ["/opt/dmdbms/bin/dmserver"]
    assert software_paths.expand(ctx.fs, "/nope/*/x") == []


def test_software_paths_records_symlinks_and_version_heads(make_root):
    root = make_root({"/usr/bin/redis-check-rdb": "elf", "/usr/bin/redis-server": ("symlink", "redis-check-rdb"),
                      "/opt/tomcat9/RELEASE-NOTES": "   Apache Tomcat Version 9.0.85\n"})
    facts, _ = run(software_paths, root)
    found = dict((f["path"], f) for f in facts["found"])
    assert found["/usr/bin/redis-server"]["link"] == "redis-check-rdb"
    assert "Apache Tomcat Version 9.0.85" in found["/opt/tomcat9/RELEASE-NOTES"]["head"]
    assert facts["probed"] > 100


# ---------------------------------------------------------------- processes and sockets
def test_live_only_facts_are_not_collected_offline(make_root):
    ctx = Context(root=make_root({"/etc/hostname": "img\n"}), live=False)
    facts = collect_facts(ctx, only=["processes", "sockets"])
    assert facts["processes"] is None and facts["sockets"] is None
    for key in ("processes", "sockets"):
        assert facts["collection"][key]["status"] == "not_collected"


def test_processes_and_sockets_see_a_real_listener():
    code = ("import socket,sys,time\ns=socket.socket(socket.AF_INET6)\ns.bind(('::1',0))\ns.listen(1)\n"
            "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nu.bind(('127.0.0.1',0))\n"
            "print(s.getsockname()[1], u.getsockname()[1], flush=True)\ntime.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, "marker-arg"], stdout=subprocess.PIPE)
    try:
        tcp_port, udp_port = [int(x) for x in proc.stdout.readline().split()]
        ctx = Context("/", live=True)
        procs = processes.collect(ctx)
        socks = sockets.collect(ctx)
    finally:
        proc.kill()
        proc.wait()
    me = [p for p in procs if p["pid"] == proc.pid][0]
    assert me["cmdline"][-1] == "marker-arg" and me["ppid"] == os.getpid()
    assert me["exe"] == os.path.realpath(sys.executable)
    import pwd
    assert me["user"] == pwd.getpwuid(os.getuid()).pw_name
    assert {"proto": "tcp6", "address": "::1", "port": tcp_port, "pid": proc.pid} in socks
    assert {"proto": "udp", "address": "127.0.0.1", "port": udp_port, "pid": proc.pid} in socks
    assert not [p for p in procs if p["cmdline"] == [""]]  # kernel threads are left out


def test_socket_table_parsing():
    text = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
            "   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 20727 1\n"
            "   1: 0100007F:D0E4 0100007F:1538 01 00000000:00000000 00:00000000 00000000  1000        0 99999 1\n")
    assert sockets.parse_table(text, "tcp", 4) == [("tcp", "127.0.0.1", 5432, 20727)]
    assert sockets.decode_address("00000000000000000000000001000000", 6) == "::1"
    assert sockets.decode_address("0000000000000000FFFF00000100007F", 6) == "127.0.0.1"


# ---------------------------------------------------------------- crypto
def test_crypto_live_openssl_probe():
    if not shutil.which("openssl"):
        pytest.skip("no openssl tool")
    facts, _ = run(crypto_libs, "/", live=True)
    ssl = facts["openssl"]
    out = subprocess.check_output(["openssl", "ecparam", "-list_curves"]).decode()
    assert ssl["sm2"] is any(l.strip().startswith("SM2") for l in out.splitlines())
    assert ssl["version"] == subprocess.check_output(["openssl", "version"]).decode().split()[1]
    assert [e["kind"] for e in ssl["evidence"]].count("probe") == 3


def _fake_tool(path, version_line, lists=True):
    """A real executable answering like the tool: `version`, `list ...`, `ecparam -list_curves`, `help`."""
    script = "#!/bin/sh\ncase \"$*\" in\n  'version') echo '%s';;\n" % version_line
    if lists:
        script += ("  'list -digest-algorithms') echo 'SHA256'; echo 'SM3';;\n"
                   "  'list -cipher-algorithms') echo 'AES-128-CBC';;\n"
                   "  'ecparam -list_curves') echo '  SM2       : SM2 curve over a 256 bit prime field';;\n")
    else:
        script += "  'help') echo 'Commands: version sm2keygen sm2sign sm3 sm3hmac sm4 zuc';;\n"
    script += "  *) exit 1;;\nesac\n"
    with open(path, "w") as fh:
        fh.write(script)
    os.chmod(path, 0o755)


def test_crypto_live_openssl_102_command_names(tmp_path, monkeypatch):
    """OpenSSL 1.0.2 (still on old images) has list-message-digest-algorithms, no `list` command."""
    tool = str(tmp_path / "openssl")
    with open(tool, "w") as fh:
        fh.write("#!/bin/sh\ncase \"$*\" in\n  'version') echo 'OpenSSL 1.0.2k-fips  26 Jan 2017';;\n"
                 "  'list-message-digest-algorithms') echo 'SHA256'; echo 'MD5';;\n"
                 "  'list-cipher-algorithms') echo 'AES-128-CBC';;\n"
                 "  'ecparam -list_curves') echo '  prime256v1 : X9.62/SECG curve';;\n  *) exit 1;;\nesac\n")
    os.chmod(tool, 0o755)
    monkeypatch.setitem(crypto_libs.TOOLS, "openssl", [tool])
    facts, _ = run(crypto_libs, "/", live=True)
    o = facts["openssl"]
    assert (o["version"], o["sm2"], o["sm3"], o["sm4"]) == ("1.0.2k-fips", False, False, False)


def test_crypto_live_tongsuo_and_gmssl_are_probed(tmp_path, monkeypatch):
    tongsuo, gmssl = str(tmp_path / "tongsuo"), str(tmp_path / "gmssl")
    _fake_tool(tongsuo, "Tongsuo 8.4.0  (Library: Tongsuo 8.4.0)")
    _fake_tool(gmssl, "GmSSL 3.1.1", lists=False)
    monkeypatch.setitem(crypto_libs.TOOLS, "tongsuo", [tongsuo])
    monkeypatch.setitem(crypto_libs.TOOLS, "gmssl", [gmssl])
    facts, _ = run(crypto_libs, "/", live=True)
    t = facts["tongsuo"]
    assert (t["version"], t["sm2"], t["sm3"], t["sm4"], t["path"]) == ("8.4.0", True, True, False, tongsuo)
    g = facts["gmssl"]
    assert (g["version"], g["sm2"], g["sm3"], g["sm4"]) == ("3.1.1", True, True, True)


def test_crypto_offline_reports_files_never_guesses_sm(make_root):
    root = make_root({
        "/usr/lib64/libssl.so.1.1": "elf", "/usr/bin/openssl": "elf",
        "/usr/include/openssl/opensslv.h": '# define OPENSSL_VERSION_TEXT  "OpenSSL 1.1.1f  31 Mar 2020"\n',
        "/opt/tongsuo/bin/tongsuo": "elf", "/opt/tongsuo/lib64/libssl.so.3": "elf",
        "/opt/tongsuo/include/openssl/opensslv.h": '# define TONGSUO_VERSION_STR "8.4.0"\n',
    })
    facts, _ = run(crypto_libs, root)
    assert facts["openssl"]["version"] == "1.1.1f"
    assert facts["openssl"]["libraries"] == ["/usr/lib64/libssl.so.1.1"]
    assert facts["tongsuo"]["version"] == "8.4.0" and facts["tongsuo"]["path"] == "/opt/tongsuo/bin/tongsuo"
    for lib in ("openssl", "tongsuo"):
        assert (facts[lib]["sm2"], facts[lib]["sm3"], facts[lib]["sm4"]) == (None, None, None)
    assert facts["gmssl"] is None


def _ndb_from_sqlite_fixture():
    """An ndb Packages.db laid out as rpm's rpmpkg.c writes it, holding the real header blobs of the
    sqlite fixture (Debian's rpm has no ndb backend to produce one; the blobs inside are real)."""
    import sqlite3
    import struct
    import zlib
    rows = sqlite3.connect(os.path.join(RPMDB, "sqlite", "rpmdb.sqlite")).execute(
        "SELECT hnum, blob FROM Packages ORDER BY hnum").fetchall()
    slots = bytearray(4096)
    slots[0:16] = b"RpmP" + struct.pack("<III", 0, 1, 1)
    blobs = bytearray()
    block = 4096 // 16
    for i, (hnum, blob) in enumerate(rows):
        blob = bytes(blob)
        body = b"BlbS" + struct.pack("<III", hnum, zlib.adler32(blob), len(blob)) + blob + b"\0" * 16
        body += b"\0" * (-len(body) % 16)
        slots[32 + 16 * i:48 + 16 * i] = b"Slot" + struct.pack("<III", hnum, block + len(blobs) // 16,
                                                              len(body) // 16)
        blobs += body
    for j in range(len(rows), 254):  # empty slots
        slots[32 + 16 * j:48 + 16 * j] = b"Slot" + b"\0" * 12
    return bytes(slots) + bytes(blobs)


def test_rpm_ndb_database_read_offline(make_root):
    root = make_root({"/usr/lib/sysimage/rpm/Packages.db": _ndb_from_sqlite_fixture()})
    facts, errors = run(packages, root)
    assert errors == [] and facts["format"] == "ndb"
    assert facts["items"] == RPM_EXPECTED


def test_rpm_query_live_output_is_parsed(tmp_path):
    if not shutil.which("rpm"):
        pytest.skip("no rpm tool")
    db = tmp_path / "rpmdb"
    db.mkdir()
    shutil.copy(os.path.join(RPMDB, "sqlite", "rpmdb.sqlite"), str(db / "rpmdb.sqlite"))
    ctx = Context("/", live=True)
    ctx.set_collector("packages")
    items = packages.rpm_live(ctx, dbpath=str(db))
    assert sorted(items, key=lambda i: i["name"]) == RPM_EXPECTED and ctx.errors == []


@pytest.mark.parametrize("argv,expected", [
    (["java", "-Djavax.net.ssl.keyStorePassword=changeit", "-Ddb.user=app", "Main"],
     ["java", "-Djavax.net.ssl.keyStorePassword=***", "-Ddb.user=app", "Main"]),
    (["mysqld", "--password=s3cret", "--port=3306"], ["mysqld", "--password=***", "--port=3306"]),
    (["app", "--password", "s3cret", "--user", "x"], ["app", "--password", "***", "--user", "x"]),
    (["mysql", "-uroot", "-ps3cret", "-h", "db"], ["mysql", "-uroot", "-p***", "-h", "db"]),
    (["tidb-server", "-P", "4000", "-path", "x"], ["tidb-server", "-P", "4000", "-path", "x"]),
    (["sync", "postgresql://app:s3cret@db:5432/app"], ["sync", "postgresql://app:***@db:5432/app"]),
    (["redis-server", "--requirepass", "x"], ["redis-server", "--requirepass", "***"]),
    (["dmserver", "/opt/dmdbms/data/DAMENG/dm.ini", "-noconsole"],
     ["dmserver", "/opt/dmdbms/data/DAMENG/dm.ini", "-noconsole"]),
])
def test_secrets_on_command_lines_are_masked(argv, expected):
    assert processes.redact(argv) == expected


def test_live_process_secret_is_masked():
    code = "import time; time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code, "--db-password=hunter2", "token=abc"])
    try:
        import time
        time.sleep(0.2)
        procs = processes.collect(Context("/", live=True))
    finally:
        proc.kill()
        proc.wait()
    me = [p for p in procs if p["pid"] == proc.pid][0]
    assert me["cmdline"][-2:] == ["--db-password=***", "token=***"]


def test_path_expansion_finds_an_install_behind_many_home_directories(make_root):
    files = dict(("/home/user%03d/.profile" % i, "x") for i in range(300))
    files["/home/zz-dmdba/dmdbms/bin/dmserver"] = "elf"
    ctx = Context(root=make_root(files), live=False)
    assert software_paths.expand(ctx.fs, "/home/*/dmdbms/bin/dmserver") == ["/home/zz-dmdba/dmdbms/bin/dmserver"]


UNPRIVILEGED = r"""
import json, os, sys
# import everything first: the interpreter's own files are under /root, unreadable to nobody
from scanner.collect import collect_facts, load
from scanner.context import Context
from scanner.catalog import default_catalog
from scanner.classify import software
import scanner.classify.software.match, scanner.collect._rpmdb, sqlite3, pwd, shlex
NAMES = ["processes", "sockets", "packages", "services", "software_paths", "crypto_libs"]
for name in NAMES:
    load(name)
default_catalog()
os.setgroups([]); os.setgid(65534); os.setuid(65534)
ctx = Context("/", live=True)
facts = collect_facts(ctx, only=NAMES)
comps = software.classify(facts, default_catalog())
print(json.dumps({"collection": facts["collection"], "errors": facts["errors"],
                  "procs": len(facts["processes"]), "products": [c["product_id"] for c in comps]}))
"""


def test_unprivileged_run_says_what_it_could_not_read():
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to nobody")
    out = subprocess.check_output([sys.executable, "-c", UNPRIVILEGED], cwd=os.path.dirname(HERE))
    import json
    res = json.loads(out.decode().strip().splitlines()[-1])
    assert all(v["status"] == "ok" for v in res["collection"].values()), res["collection"]
    assert res["procs"] > 5
    messages = " ".join(e["message"] for e in res["errors"])
    assert "run as root" in messages
    # still identified from what an unprivileged user can see (names, cmdlines, packages)
    if os.path.exists("/var/lib/dpkg/status") and "postgres" in subprocess.check_output(["ps", "-eo", "comm"]).decode():
        assert "postgresql" in res["products"]


def test_rpm_bdb_with_many_pages(tmp_path):
    """120 packages on 1 KiB pages: many hash buckets, long overflow chains (rpm -qa lists 120)."""
    root = tmp_path / "root"
    (root / "var/lib/rpm").mkdir(parents=True)
    shutil.copy(os.path.join(RPMDB, "bdb-1k", "Packages"), str(root / "var/lib/rpm" / "Packages"))
    facts, errors = run(packages, str(root))
    assert errors == [] and len(facts["items"]) == 120
    names = [i["name"] for i in facts["items"]]
    assert all(names.count(n) == 30 for n in ("nginx", "openssl", "tongsuo", "mysql-community-server"))
