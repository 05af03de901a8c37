"""Effective configuration as the real programs apply it (issue 13): fixture roots shaped like the real
system, each with a compliant and a non-compliant case, and where the real binary exists here, a check
against what the binary itself decides."""
import datetime
import os
import re
import shutil
import subprocess

import pytest

from scanner.context import Context

NOW = datetime.datetime(2024, 1, 15)
ELF = b"\x7fELF\x02\x01\x01"


def run(root, name, live=False):
    import importlib
    ctx = Context(root=root, live=live)
    module = importlib.import_module("scanner.collect." + name)
    ctx.set_collector(module.NAME)
    return module.collect(ctx), ctx.errors


def verdict(root, rule_id, live=False):
    """The rule's result on a scan of ``root`` (only the collectors it reads)."""
    from scanner.collect import collect_facts
    from scanner.engine import facts_read, load_ruleset
    from scanner.engine.evaluator import evaluate_rule
    rule = [r for r in load_ruleset() if r["id"] == rule_id][0]
    ctx = Context(root=root, live=live)
    wanted = facts_read([rule])
    facts = collect_facts(ctx, only=wanted, wanted=wanted)
    return evaluate_rule(rule, facts, None, live=live, now=NOW)


# ---------------------------------------------------------------- sysctl (item 1)
# RHEL 9's systemd ships /usr/lib/sysctl.d/50-default.conf with globs and "-key" exclusions and
# /etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf; systemd-sysctl lives in /usr/lib/systemd.
RHEL_50_DEFAULT = (
    "kernel.sysrq = 16\n"
    "net.ipv4.conf.default.rp_filter = 2\n"
    "net.ipv4.conf.*.rp_filter = 2\n"
    "-net.ipv4.conf.all.rp_filter\n"
    "net.ipv4.conf.default.accept_source_route = 0\n"
    "net.ipv4.conf.*.accept_source_route = 0\n"
    "-net.ipv4.conf.all.accept_source_route\n"
    "fs.protected_hardlinks = 1\n"
)


def systemd_root(make_root, files, root=None):
    base = {"/usr/lib/systemd/systemd-sysctl": ELF, "/usr/lib/sysctl.d/50-default.conf": RHEL_50_DEFAULT}
    base.update(files)
    return make_root(base, root=root)


def test_sysctl_conf_is_not_read_by_systemd_sysctl_without_the_99_link(make_root, tmp_path):
    # no link: what an admin wrote into /etc/sysctl.conf never reaches the kernel at boot
    root = systemd_root(make_root, {"/etc/sysctl.conf": "net.ipv4.ip_forward = 0\nkernel.randomize_va_space = 0\n",
                                    "/etc/sysctl.d/10-router.conf": "net.ipv4.ip_forward = 1\n"})
    facts, _ = run(root, "sysctl")
    assert facts["order"] == "systemd-sysctl"
    assert facts["net"]["ipv4"]["ip_forward"] == 1 and facts["kernel"]["randomize_va_space"] == 2
    assert facts["not_applied"][-1]["path"] == "/etc/sysctl.conf"
    assert verdict(root, "mlps.ip.sysctl-ip-forward")["status"] == "fail"
    # with the link distributions ship, the file is applied as 99-sysctl.conf: last, so it wins
    root = systemd_root(make_root, {"/etc/sysctl.conf": "net.ipv4.ip_forward = 0\n",
                                    "/etc/sysctl.d/10-router.conf": "net.ipv4.ip_forward = 1\n",
                                    "/etc/sysctl.d/99-sysctl.conf": ("symlink", "../sysctl.conf")},
                        root=tmp_path / "linked")
    facts, _ = run(root, "sysctl")
    assert facts["net"]["ipv4"]["ip_forward"] == 0
    assert facts["sources"]["net.ipv4.ip_forward"] == "/etc/sysctl.d/99-sysctl.conf:1"
    res = verdict(root, "mlps.ip.sysctl-ip-forward")
    assert res["status"] == "pass"
    # compliant at boot, but the same key is set to different values: every location is in the evidence
    conflict = [e for e in res["evidence"] if e["fact"] == "sysctl.conflicts.net.ipv4.ip_forward"][0]["value"]
    assert conflict == [{"value": 1, "location": "/etc/sysctl.d/10-router.conf:1"},
                        {"value": 0, "location": "/etc/sysctl.d/99-sysctl.conf:1"}]


def test_procps_system_order_reads_sysctl_conf_last(make_root):
    # no systemd: the init script runs `sysctl --system`, which applies /etc/sysctl.conf after every sysctl.d file
    root = make_root({"/etc/sysctl.conf": "net.ipv4.ip_forward = 0\n",
                      "/etc/sysctl.d/99-zz-router.conf": "net.ipv4.ip_forward = 1\n"})
    facts, _ = run(root, "sysctl")
    assert facts["order"] == "procps" and facts["net"]["ipv4"]["ip_forward"] == 0
    assert facts["files"] == ["/etc/sysctl.d/99-zz-router.conf", "/etc/sysctl.conf"]
    assert verdict(root, "mlps.ip.sysctl-ip-forward")["status"] == "pass"


def test_sysctl_globs_explicit_keys_and_exclusions(make_root, tmp_path):
    # RHEL's default: the glob sets every interface's rp_filter to 2 but "-net.ipv4.conf.all.rp_filter"
    # keeps "all" out of it, so "all" keeps the kernel default 0 -- not compliant
    root = systemd_root(make_root, {})
    facts, _ = run(root, "sysctl")
    assert facts["net"]["ipv4"]["conf"]["all"]["rp_filter"] == 0
    assert facts["net"]["ipv4"]["conf"]["default"]["rp_filter"] == 2
    assert facts["sources"]["net.ipv4.conf.all.rp_filter"] == "kernel default"
    assert verdict(root, "mlps.ip.sysctl-rp-filter")["status"] == "fail"
    # the exclusion keeps "all" out of every glob, a later admin glob too; a glob without an exclusion
    # reaches "all"; a key with an explicit assignment (even in an earlier file) is never set by a glob
    root = systemd_root(make_root, {"/etc/sysctl.d/60-rp.conf": "net/ipv4/conf/*/rp_filter = 1\n",
                                    "/etc/sysctl.d/60-martians.conf": "net.ipv4.conf.*.log_martians = 1\n",
                                    "/etc/sysctl.d/70-src.conf": "net.ipv4.conf.*.accept_source_route = 1\n",
                                    "/etc/sysctl.d/10-src.conf": "net.ipv4.conf.all.accept_source_route=0\n"},
                        root=tmp_path / "glob")
    facts, _ = run(root, "sysctl")
    assert facts["net"]["ipv4"]["conf"]["all"]["rp_filter"] == 0
    assert facts["net"]["ipv4"]["conf"]["all"]["log_martians"] == 1
    assert facts["sources"]["net.ipv4.conf.all.log_martians"] == "/etc/sysctl.d/60-martians.conf:1"
    assert facts["net"]["ipv4"]["conf"]["all"]["accept_source_route"] == 0
    assert verdict(root, "mlps.ip.sysctl-rp-filter")["status"] == "fail"
    assert verdict(root, "mlps.ip.sysctl-log-martians")["status"] == "pass"
    assert verdict(root, "mlps.ip.sysctl-source-route")["status"] == "pass"
    root = systemd_root(make_root, {"/etc/sysctl.d/60-rp.conf": "net.ipv4.conf.all.rp_filter = 1\n"},
                        root=tmp_path / "explicit")
    assert verdict(root, "mlps.ip.sysctl-rp-filter")["status"] == "pass"


def test_sysctl_masking_and_same_name_shadowing(make_root, tmp_path):
    root = systemd_root(make_root, {"/usr/lib/sysctl.d/10-hardening.conf": "kernel.randomize_va_space = 2\n",
                                    "/etc/sysctl.d/10-hardening.conf": "kernel.randomize_va_space = 0\n"})
    facts, _ = run(root, "sysctl")
    assert facts["kernel"]["randomize_va_space"] == 0
    assert {"path": "/usr/lib/sysctl.d/10-hardening.conf", "why": "shadowed by /etc/sysctl.d/10-hardening.conf"} \
        in facts["not_applied"]
    assert facts["conflicts"] == {}  # a shadowed file is not applied, so it does not conflict
    assert verdict(root, "mlps.ip.sysctl-aslr")["status"] == "fail"
    # /etc/sysctl.d/NAME -> /dev/null masks the vendor file of that name
    root = systemd_root(make_root, {"/usr/lib/sysctl.d/10-weak.conf": "kernel.randomize_va_space = 0\n",
                                    "/etc/sysctl.d/10-weak.conf": ("symlink", "/dev/null")}, root=tmp_path / "m")
    facts, _ = run(root, "sysctl")
    assert facts["kernel"]["randomize_va_space"] == 2
    assert verdict(root, "mlps.ip.sysctl-aslr")["status"] == "pass"
    # a masked systemd-sysctl.service applies nothing at boot: kernel defaults persist
    root = systemd_root(make_root, {"/etc/sysctl.d/90-mlps.conf": "net.ipv4.conf.all.accept_redirects = 0\n",
                                    "/etc/systemd/system/systemd-sysctl.service": ("symlink", "/dev/null")},
                        root=tmp_path / "masked")
    facts, _ = run(root, "sysctl")
    assert facts["masked"] is True and facts["files"] == []
    assert facts["net"]["ipv4"]["conf"]["all"]["accept_redirects"] == 1
    assert verdict(root, "mlps.ip.sysctl-accept-redirects")["status"] == "fail"


def test_sysctl_key_separators_and_whitespace(make_root):
    from scanner.collect.sysctl import normalize_key
    assert normalize_key("net/ipv4/conf/enp3s0.200/forwarding") == "net.ipv4.conf.enp3s0/200.forwarding"
    assert normalize_key("net.ipv4.conf.enp3s0/200.forwarding") == "net.ipv4.conf.enp3s0/200.forwarding"
    root = make_root({"/etc/sysctl.d/50-x.conf": "  ; comment\n  -kernel/randomize_va_space   =   1  \n"})
    facts, _ = run(root, "sysctl")
    assert facts["kernel"]["randomize_va_space"] == 1


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_sysctl_file_order_matches_systemd_analyze_cat_config(make_root):
    """systemd's own file resolution (systemd-analyze cat-config --root) picks the same files in the same order."""
    root = systemd_root(make_root, {
        "/etc/sysctl.d/50-default.conf": "kernel.sysrq = 0\n",
        "/run/sysctl.d/20-run.conf": "kernel.sysrq = 1\n",
        "/usr/local/lib/sysctl.d/20-run.conf": "kernel.sysrq = 2\n",
        "/usr/local/lib/sysctl.d/30-local.conf": "kernel.sysrq = 3\n",
        "/usr/lib/sysctl.d/99-sysctl.conf": ("symlink", "../../../etc/sysctl.conf"),
        "/etc/sysctl.conf": "kernel.sysrq = 4\n",
        "/etc/sysctl.d/README": "not a conf file\n",
    })
    out = subprocess.run(["systemd-analyze", "cat-config", "--root=" + root, "sysctl.d"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert out.returncode == 0, out.stderr
    theirs = [line[2:][len(root):] for line in out.stdout.splitlines() if line.startswith("# " + root)]
    facts, _ = run(root, "sysctl")
    assert facts["files"] == theirs
    assert facts["kernel"]["sysrq"] == 4 and facts["sources"]["kernel.sysrq"] == "/usr/lib/sysctl.d/99-sysctl.conf:1"


@pytest.mark.skipif(not os.path.isdir("/proc/sys/kernel"), reason="needs /proc")
def test_sysctl_live_value_kept_beside_the_boot_value():
    facts, _ = run("/", "sysctl", live=True)
    with open("/proc/sys/net/ipv4/ip_forward") as fh:
        running = int(fh.read())
    assert facts["live"]["net.ipv4.ip_forward"] == running
    boot = facts["net"]["ipv4"]["ip_forward"]
    assert ("net.ipv4.ip_forward" in facts["live_differs"]) == (boot != running)
    # the rule fails when either the persisted or the running value is wrong
    res = verdict("/", "mlps.ip.sysctl-ip-forward", live=True)
    assert res["status"] == ("pass" if boot == 0 and running == 0 else "fail")


# ---------------------------------------------------------------- real defaults and parsing (item 2)
DEBIAN_LOGIN_DEFS = "MAIL_DIR\t/var/mail\nPASS_MAX_DAYS\t90\nPASS_MIN_DAYS\t1\nUID_MIN\t1000\nENCRYPT_METHOD SHA512\n"


def test_missing_pass_warn_age_means_no_warning(make_root, tmp_path):
    # useradd writes an empty warn field when login.defs has no PASS_WARN_AGE: nobody is warned
    root = make_root({"/etc/login.defs": DEBIAN_LOGIN_DEFS})
    facts, _ = run(root, "login_defs")
    assert facts["PASS_WARN_AGE"] == 0 and "PASS_WARN_AGE" in facts["defaulted"]
    assert verdict(root, "mlps.ia.password-warn-age")["status"] == "fail"
    root = make_root({"/etc/login.defs": DEBIAN_LOGIN_DEFS + "PASS_WARN_AGE\t7\n"}, root=tmp_path / "set")
    assert verdict(root, "mlps.ia.password-warn-age")["status"] == "pass"
    # ENCRYPT_METHOD unset: MD5 with MD5_CRYPT_ENAB yes, else DES
    root = make_root({"/etc/login.defs": "MD5_CRYPT_ENAB yes\n"}, root=tmp_path / "md5")
    assert run(root, "login_defs")[0]["ENCRYPT_METHOD"] == "MD5"


# shipped by systemd-coredump: the kernel pipes core dumps to it
SYSTEMD_COREDUMP_SYSCTL = "kernel.core_pattern=|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h\n"


def test_systemd_config_files_parse_as_systemd_does(make_root, tmp_path):
    # systemd.syntax(7): spaces around "=", comment lines, drop-ins in lexical order from every directory
    root = make_root({
        "/etc/systemd/coredump.conf": "[Coredump]\n#Storage=external\nStorage = none\nProcessSizeMax = 0\n",
        "/usr/lib/sysctl.d/50-coredump.conf": SYSTEMD_COREDUMP_SYSCTL,
        "/etc/systemd/journald.conf": "[Journal]\nStorage = persistent\n; comment\nForwardToSyslog = yes\n",
        "/etc/systemd/timesyncd.conf": "[Time]\nNTP = ntp1.example.cn ntp2.example.cn\n",
    })
    core, _ = run(root, "coredump")
    assert core["storage"] == "none" and core["storage_source"] == "/etc/systemd/coredump.conf:3"
    logging, _ = run(root, "logging")
    assert logging["journald"]["storage"] == "persistent" and logging["journald"]["forward_to_syslog"] is True
    from scanner.collect.time_sync import timesyncd_servers
    from scanner.rootfs import RootFS
    assert timesyncd_servers(RootFS(root)) == ["ntp1.example.cn", "ntp2.example.cn"]
    assert verdict(root, "mlps.ri.coredump-storage-off")["status"] == "pass"
    # a vendor drop-in turns storage back on; an empty NTP= in a later drop-in resets the server list
    root = make_root({
        "/etc/systemd/coredump.conf": "[Coredump]\nStorage = none\n",
        "/usr/lib/sysctl.d/50-coredump.conf": SYSTEMD_COREDUMP_SYSCTL,
        "/usr/lib/systemd/coredump.conf.d/50-vendor.conf": "[Coredump]\nStorage=external\n",
        "/etc/systemd/timesyncd.conf": "[Time]\nNTP = ntp1.example.cn\n",
        "/run/systemd/timesyncd.conf.d/90-reset.conf": "[Time]\nNTP=\n",
    }, root=tmp_path / "dropins")
    assert run(root, "coredump")[0]["storage"] == "external"
    assert run(root, "logging")[0]["journald"]["forward_to_syslog"] is False  # journald.conf(5) default
    assert timesyncd_servers(RootFS(root)) == []
    assert verdict(root, "mlps.ri.coredump-storage-off")["status"] == "fail"


SSHD_ELF = b"\x7fELF\x02\x01\x01OpenSSH_9.2p1 Debian-2\x00"


def test_sshd_duplicate_keyword_with_an_invalid_value_is_an_error(make_root, tmp_path):
    # sshd checks every occurrence: the second, ignored PermitRootLogin still makes sshd -T fail
    root = make_root({"/usr/sbin/sshd": SSHD_ELF,
                      "/etc/ssh/sshd_config": "PermitRootLogin no\nPermitRootLogin nope\nMaxAuthTries 3\n"})
    facts, errors = run(root, "sshd")
    assert facts is None
    assert errors[0]["path"] == "/etc/ssh/sshd_config:2" and "nope" in errors[0]["message"]
    res = verdict(root, "mlps.ac.ssh-root-login")
    assert res["status"] == "error" and "sshd_config:2" in res["reason"]["en"]
    root = make_root({"/usr/sbin/sshd": SSHD_ELF,
                      "/etc/ssh/sshd_config": "PermitRootLogin no\nPermitRootLogin yes\nMaxAuthTries 3\n"},
                     root=tmp_path / "valid")
    assert verdict(root, "mlps.ac.ssh-root-login")["status"] == "pass"  # first value wins


def test_sshd_numeric_lower_bounds(make_root, tmp_path):
    root = make_root({"/usr/sbin/sshd": SSHD_ELF, "/etc/ssh/sshd_config": "MaxAuthTries 0\nLoginGraceTime 1m30s\n"})
    facts, _ = run(root, "sshd")
    assert facts["numeric"]["maxauthtries"] == 0 and facts["numeric"]["logingracetime"] == 90
    assert verdict(root, "mlps.ia.ssh-max-auth-tries")["status"] == "fail"
    root = make_root({"/usr/sbin/sshd": SSHD_ELF, "/etc/ssh/sshd_config": "MaxAuthTries 4\n"}, root=tmp_path / "ok")
    assert verdict(root, "mlps.ia.ssh-max-auth-tries")["status"] == "pass"


def test_auditd_action_outside_the_documented_set_is_invalid(make_root, tmp_path):
    conf = "disk_full_action = %s\nadmin_space_left_action = single\ndisk_error_action = suspend\n"
    root = make_root({"/usr/sbin/auditd": ELF, "/etc/audit/auditd.conf": conf % "stop"})
    facts, errors = run(root, "audit")
    assert facts["conf"]["invalid"][0]["keyword"] == "disk_full_action"
    assert any("auditd rejects" in e["message"] for e in errors)
    assert verdict(root, "mlps.au.audit-disk-full-action")["status"] == "fail"
    root = make_root({"/usr/sbin/auditd": ELF, "/etc/audit/auditd.conf": conf % "HALT"}, root=tmp_path / "ok")
    assert verdict(root, "mlps.au.audit-disk-full-action")["status"] == "pass"


# ---------------------------------------------------------------- databases where they really are (item 5)
RHEL_PG_UNIT = """[Unit]
Description=PostgreSQL database server
After=network.target

[Service]
Type=notify
User=postgres
Group=postgres
OOMScoreAdjust=-1000
Environment=PG_OOM_ADJUST_FILE=/proc/self/oom_score_adj
Environment=PG_OOM_ADJUST_VALUE=0
# Location of database directory
Environment=PGDATA=/var/lib/pgsql/data
ExecStartPre=/usr/libexec/postgresql-check-db-dir %N
ExecStart=/usr/bin/postmaster -D ${PGDATA}
ExecReload=/bin/kill -HUP $MAINPID

[Install]
WantedBy=multi-user.target
"""
PASSWD = "root:x:0:0:root:/root:/bin/bash\npostgres:x:26:26::/var/lib/pgsql:/bin/bash\nmysql:x:27:27::/var/lib/mysql:/sbin/nologin\n"
OS_RELEASE = 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n'


def db_results(root):
    from scanner.pipeline import scan_report
    report = scan_report(root=root, profile="data-security", live=False, now=NOW)
    return report, dict((r["rule_id"], r) for r in report["results"])


def item(result, key_part):
    found = [i for i in result["items"] if key_part in i["key"]]
    assert found, (key_part, result["items"])
    return found[0]


def pg_root(make_root, root, conf, hba, auto=""):
    files = {
        "/etc/os-release": OS_RELEASE, "/etc/passwd": PASSWD, "/etc/group": "root:x:0:\npostgres:x:26:\n",
        "/usr/lib/systemd/system/postgresql.service": RHEL_PG_UNIT,
        # the admin moved the cluster with a drop-in, as the RHEL docs say to
        "/etc/systemd/system/postgresql.service.d/override.conf": "[Service]\nEnvironment=PGDATA=/srv/pg/data\n",
        "/srv/pg/data/PG_VERSION": "15\n",
        "/srv/pg/data/postgresql.conf": conf,
        "/srv/pg/data/conf.d/10-net.conf": "listen_addresses = 'localhost'\n",
        "/srv/pg/data/pg_hba.conf": hba,
    }
    if auto:
        files["/srv/pg/data/postgresql.auto.conf"] = "# Do not edit this file manually!\n" + auto
    root = make_root(files, root=root)
    os.chmod(os.path.join(root, "srv/pg/data"), 0o700)
    return root


def test_postgresql_found_from_its_service_unit_with_includes_and_alter_system(make_root, tmp_path):
    # postgresql.conf includes conf.d (listen localhost) but ALTER SYSTEM (postgresql.auto.conf, read last)
    # opened it to all addresses; pg_hba.conf trusts everyone -- the packaging default paths hold nothing
    root = pg_root(make_root, tmp_path / "bad", "port = 5432\ninclude_dir 'conf.d'\n",
                   "local all all trust\nhost all all 0.0.0.0/0 trust\n", auto="listen_addresses = '*'\n")
    from scanner.collect import db_config
    ctx = Context(root=root, live=False)
    facts = db_config.collect(ctx)
    pg = facts["instances"][0]
    assert pg["config_file"] == "/srv/pg/data/postgresql.conf" and pg["data_dir"] == "/srv/pg/data"
    assert pg["listen_all"] is True and pg["sources"]["listen_addresses"] == "/srv/pg/data/postgresql.auto.conf:2"
    assert pg["discovered_from"][0]["kind"] == "service" and "postgresql.service" in pg["discovered_from"][0]["value"]
    report, res = db_results(root)
    assert res["data-security.db.network-auth"]["status"] == "fail"
    assert item(res["data-security.db.network-auth"], "/srv/pg/data/pg_hba.conf")["status"] == "fail"
    assert res["data-security.db.auth-disabled"]["status"] == "fail"
    assert item(res["data-security.db.auth-disabled"], "/srv/pg/data/postgresql.conf")["status"] == "fail"
    assert item(res["data-security.db.exposed"], "/srv/pg/data/postgresql.conf")["status"] == "fail"
    # reconfigured safely: loopback only, peer locally, scram over the network
    root = pg_root(make_root, tmp_path / "good", "port = 5432\ninclude_dir 'conf.d'\n",
                   "local all all peer\nhost all all 10.0.0.0/8 scram-sha-256\n")
    report, res = db_results(root)
    for rid in ("data-security.db.network-auth", "data-security.db.auth-disabled", "data-security.db.exposed",
                "data-security.db.data-dir-permissions"):
        assert res[rid]["status"] == "pass", (rid, res[rid]["reason"])


def test_instance_whose_configuration_cannot_be_read_is_an_error_naming_it(make_root, tmp_path):
    unit = RHEL_PG_UNIT.replace("/var/lib/pgsql/data", "/srv/gone/data")
    # installed but never enabled, and no configuration: a package's unit, not an instance
    root = make_root({"/etc/os-release": OS_RELEASE, "/etc/passwd": PASSWD,
                      "/usr/lib/systemd/system/postgresql.service": unit}, root=tmp_path / "unused")
    report, res = db_results(root)
    assert res["data-security.db.network-auth"]["status"] == "not_applicable"
    # enabled: it starts at boot, so its unreadable configuration is an error naming it
    root = make_root({"/etc/os-release": OS_RELEASE, "/etc/passwd": PASSWD,
                      "/usr/lib/systemd/system/postgresql.service": unit,
                      "/etc/systemd/system/multi-user.target.wants/postgresql.service":
                          ("symlink", "/usr/lib/systemd/system/postgresql.service")})
    report, res = db_results(root)
    for rid in ("data-security.db.network-auth", "data-security.db.auth-disabled", "data-security.db.exposed"):
        assert res[rid]["status"] == "error", rid
        assert "/srv/gone/data" in item(res[rid], "/srv/gone/data")["key"]
    assert any("/srv/gone/data/postgresql.conf" in (e["path"] or "") for e in report["facts"]["errors"])


def test_mariadb_redis_dm_found_from_units_and_arguments(make_root, tmp_path):
    def build(name, mycnf, redis_conf):
        root = make_root({
            "/etc/os-release": OS_RELEASE, "/etc/passwd": PASSWD,
            "/usr/sbin/mariadbd": ELF,
            "/etc/systemd/system/mariadb-app.service":
                "[Service]\nUser=mysql\nExecStart=/usr/sbin/mariadbd --defaults-file=/srv/my/my.cnf --port=3307\n",
            "/srv/my/my.cnf": mycnf,
            "/srv/my/data/ibdata1": "",
            "/etc/systemd/system/redis-6380.service":
                "[Service]\nExecStart=/usr/bin/redis-server /srv/redis/6380.conf --port 6380 --daemonize no\n",
            "/srv/redis/6380.conf": redis_conf,
            "/etc/systemd/system/DmServiceDMSERVER.service":
                "[Service]\nType=forking\nExecStart=/opt/dmdbms/bin/DmServiceDMSERVER start\n",
            "/opt/dmdbms/bin/DmServiceDMSERVER": "#!/bin/sh\nINI_PATH=/data/dm/DAMENG/dm.ini\nDM_HOME=/opt/dmdbms\n",
            "/data/dm/DAMENG/dm.ini": "INSTANCE_NAME = DMSERVER\nPORT_NUM = 5237\n",
        }, root=tmp_path / name)
        os.chmod(os.path.join(root, "srv/my/data"), 0o750)
        return root
    root = build("bad", "[mysqld]\ndatadir=/srv/my/data\nbind-address=0.0.0.0\nskip-grant-tables\n",
                 "bind * -::*\nprotected-mode no\ndir /srv/redis\n")
    from scanner.collect import db_config
    facts = db_config.collect(Context(root=root, live=False))
    by = dict((i["engine"], i) for i in facts["instances"])
    assert by["mariadb"]["config_file"] == "/srv/my/my.cnf" and by["mariadb"]["port"] == 3307
    assert by["mariadb"]["auth_disabled"] is True and by["mariadb"]["listen_all"] is True
    assert by["redis"]["config_file"] == "/srv/redis/6380.conf" and by["redis"]["port"] == 6380
    assert by["dm"]["config_file"] == "/data/dm/DAMENG/dm.ini" and by["dm"]["port"] == 5237
    report, res = db_results(root)
    assert item(res["data-security.db.auth-disabled"], "/srv/my/my.cnf")["status"] == "fail"
    assert item(res["data-security.cache.unauthenticated-exposed"], "/srv/redis/6380.conf")["status"] == "fail"
    assert item(res["data-security.db.exposed"], "/srv/my/my.cnf")["status"] == "fail"
    root = build("good", "[mysqld]\ndatadir=/srv/my/data\nbind-address=127.0.0.1\n",
                 "bind 127.0.0.1 -::1\nrequirepass s3cret\ndir /srv/redis\n")
    report, res = db_results(root)
    assert item(res["data-security.db.auth-disabled"], "/srv/my/my.cnf")["status"] == "pass"
    assert item(res["data-security.cache.unauthenticated-exposed"], "/srv/redis/6380.conf")["status"] == "pass"
    assert item(res["data-security.db.exposed"], "/srv/my/my.cnf")["status"] == "pass"


def test_server_command_lines_parse_as_the_servers_do():
    from scanner.collect._db_discovery import from_argv
    pg = from_argv(["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql/15/main",
                    "-c", "config_file=/etc/postgresql/15/main/postgresql.conf", "-h", "*"])
    assert pg["config_dir"] == "/var/lib/postgresql/15/main"
    assert pg["options"] == {"config_file": "/etc/postgresql/15/main/postgresql.conf", "listen_addresses": "*"}
    assert from_argv(["postgres"]) is None  # neither -D nor PGDATA: nothing to read
    assert from_argv(["postgres"], {"PGDATA": "/srv/pg"})["config_dir"] == "/srv/pg"
    my = from_argv(["/usr/sbin/mysqld", "--defaults-file=/srv/my.cnf", "--skip-networking", "--datadir=/d"])
    assert my["defaults_file"] == "/srv/my.cnf" and my["options"] == {"skip_networking": "ON", "datadir": "/d"}
    rd = from_argv(["redis-server", "/etc/redis/a.conf", "--port", "7000", "--save", "", "--bind", "1.2.3.4", "::1"])
    assert rd["config_file"] == "/etc/redis/a.conf"
    assert rd["options"] == {"port": "7000", "save": "", "bind": "1.2.3.4 ::1"}
    assert from_argv(["/opt/dmdbms/bin/dmserver", "path=/data/DAMENG/dm.ini"])["config_file"] == "/data/DAMENG/dm.ini"
    kb = from_argv(["/opt/Kingbase/ES/V9/Server/bin/kingbase", "-D", "/data/kingbase"])
    assert (kb["engine"], kb["config_dir"]) == ("kingbase", "/data/kingbase")
    ctl = from_argv(["/usr/bin/pg_ctl", "start", "-D", "/srv/pg", "-o", "-c listen_addresses=* -p 5433"])
    assert ctl["config_dir"] == "/srv/pg" and ctl["options"] == {"listen_addresses": "*", "port": "5433"}


# ---------------------------------------------------------------- offline facts that are decidable (item 6)
AUDITD_UNIT = "[Unit]\nDescription=Security Auditing Service\n\n[Service]\nType=forking\nExecStart=/sbin/auditd\n\n" \
              "[Install]\nWantedBy=multi-user.target\n"


def test_unit_without_enablement_link_is_not_enabled_offline(make_root, tmp_path):
    # systemd present, no /etc/systemd/system at all (nothing was ever enabled): systemd starts nothing
    base = {"/usr/lib/systemd/systemd": ELF, "/usr/sbin/auditd": ELF,
            "/usr/lib/systemd/system/auditd.service": AUDITD_UNIT, "/etc/machine-id": "0123456789abcdef0123456789abcdef\n"}
    root = make_root(base)
    assert run(root, "audit")[0]["service"]["enabled"] is False
    assert verdict(root, "mlps.au.auditd-enabled")["status"] == "fail"
    root = make_root(dict(base, **{"/etc/systemd/system/multi-user.target.wants/auditd.service":
                                   ("symlink", "/usr/lib/systemd/system/auditd.service")}), root=tmp_path / "linked")
    assert verdict(root, "mlps.au.auditd-enabled")["status"] == "pass"


def test_first_boot_image_follows_the_presets(make_root, tmp_path):
    # an empty /etc/machine-id: systemd's first boot runs preset-all (machine-id(5), systemd.preset(5))
    base = {"/usr/lib/systemd/systemd": ELF, "/usr/sbin/auditd": ELF, "/etc/machine-id": "",
            "/usr/lib/systemd/system/auditd.service": AUDITD_UNIT,
            "/usr/lib/systemd/system-preset/99-default-disable.preset": "disable *\n"}
    root = make_root(dict(base, **{"/usr/lib/systemd/system-preset/90-default.preset": "enable auditd.service\n"}))
    assert verdict(root, "mlps.au.auditd-enabled")["status"] == "pass"
    services, _ = run(root, "services")
    assert [u["enabled"] for u in services["units"] if u["name"] == "auditd.service"] == [True]
    # the first matching line wins: an earlier file disables it
    root = make_root(dict(base, **{"/etc/systemd/system-preset/10-site.preset": "disable auditd.service\n",
                                   "/usr/lib/systemd/system-preset/90-default.preset": "enable auditd.service\n"}),
                     root=tmp_path / "disabled")
    assert verdict(root, "mlps.au.auditd-enabled")["status"] == "fail"


def test_group_zero_is_root_without_etc_group(make_root):
    root = make_root({"/etc/passwd": "root:x:0:0:root:/root:/bin/bash\n", "/etc/crontab": "# m h dom mon dow\n"})
    os.chmod(os.path.join(root, "etc/crontab"), 0o600)
    os.chown(os.path.join(root, "etc/crontab"), 0, 0)
    facts, _ = run(root, "file_perms")
    crontab = [f for f in facts["files"] if f["path"] == "/etc/crontab"][0]
    assert crontab["group_name"] == "root" and crontab["owner"] == "root"
    assert verdict(root, "mlps.ac.cron-perms")["status"] == "pass"
    os.chown(os.path.join(root, "etc/crontab"), 0, 5)
    res = verdict(root, "mlps.ac.cron-perms")
    assert res["status"] == "fail" and "5" in str(res["items"])


# ---------------------------------------------------------------- coverage that was missing (item 4)
def test_sudo_nopasswd_on_a_command_that_gives_a_root_shell_fails(make_root, tmp_path):
    sudoers = ("Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n%wheel ALL=(ALL) ALL\n"
               "backup ALL=(root) NOPASSWD: /usr/local/bin/run-backup\n"
               "dba ALL=(postgres) NOPASSWD: /usr/bin/psql\n"
               "@includedir /etc/sudoers.d\n")
    root = make_root({"/etc/sudoers": sudoers})
    facts, _ = run(root, "sudo")
    assert [g["nopasswd_root_shell"] for g in facts["grants"]] == [[], [], [], []]
    assert verdict(root, "mlps.ac.sudo-password-required")["status"] == "pass"
    root = make_root({"/etc/sudoers": sudoers,
                      "/etc/sudoers.d/deploy": "Cmnd_Alias WEB = /usr/bin/systemctl restart nginx, /usr/bin/vim\n"
                                               "deploy ALL=(ALL) NOPASSWD: WEB\n"
                                               "ops ALL= NOPASSWD: /usr/bin/python3.11 /opt/tool.py\n"},
                     root=tmp_path / "shell")
    facts, _ = run(root, "sudo")
    got = dict((g["principal"], g["nopasswd_root_shell"]) for g in facts["grants"])
    assert got["deploy"] == ["/usr/bin/systemctl restart nginx", "/usr/bin/vim"]
    assert got["ops"] == ["/usr/bin/python3.11 /opt/tool.py"]
    res = verdict(root, "mlps.ac.sudo-password-required")
    assert res["status"] == "fail" and sorted(i["key"] for i in res["items"] if i["status"] == "fail") == ["deploy", "ops"]


def test_system_account_with_a_login_shell_fails_even_when_locked(make_root, tmp_path):
    passwd = "root:x:0:0:root:/root:/bin/bash\nbin:x:2:2:bin:/bin:/usr/sbin/nologin\nsync:x:4:65534:sync:/bin:/bin/sync\n"
    shadow = "root:$6$x$y:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\nsync:*:19000:0:99999:7:::\n"
    defs = "UID_MIN 1000\n"
    root = make_root({"/etc/passwd": passwd, "/etc/shadow": shadow, "/etc/login.defs": defs})
    assert verdict(root, "mlps.ac.system-accounts-no-login")["status"] == "pass"
    # Debian's postgres account: locked password, /bin/bash -- its authorized_keys still log in
    root = make_root({"/etc/passwd": passwd + "postgres:x:105:111::/var/lib/postgresql:/bin/bash\n",
                      "/etc/shadow": shadow + "postgres:!:19000::::::\n", "/etc/login.defs": defs}, root=tmp_path / "pg")
    res = verdict(root, "mlps.ac.system-accounts-no-login")
    assert res["status"] == "fail" and [i["key"] for i in res["items"] if i["status"] == "fail"] == ["postgres"]


def test_hosts_equiv_and_shosts_equiv_fail_like_rhosts(make_root, tmp_path):
    passwd = "root:x:0:0:root:/root:/bin/bash\n"
    root = make_root({"/etc/passwd": passwd, "/root/.bashrc": "\n"})
    assert verdict(root, "mlps.ip.no-rhosts-files")["status"] == "pass"
    root = make_root({"/etc/passwd": passwd, "/etc/hosts.equiv": "+ +\n"}, root=tmp_path / "equiv")
    res = verdict(root, "mlps.ip.no-rhosts-files")
    assert res["status"] == "fail" and res["items"][0]["key"] == "/etc/hosts.equiv"


def test_grub_superusers_must_name_a_user_with_a_password(make_root, tmp_path):
    cfg = "set superusers=\"%s\"\nexport superusers\npassword_pbkdf2 root grub.pbkdf2.sha512.10000.AA.BB\n"
    root = make_root({"/boot/grub/grub.cfg": cfg % "admin"})
    facts, _ = run(root, "bootloader")
    assert facts["password"] is False and facts["superusers"] == ["admin"]
    assert verdict(root, "mlps.ia.bootloader-password")["status"] == "fail"
    root = make_root({"/boot/grub/grub.cfg": cfg % "admin root"}, root=tmp_path / "ok")
    assert verdict(root, "mlps.ia.bootloader-password")["status"] == "pass"


# ---------------------------------------------------------------- identification edge cases (item 7)
@pytest.mark.parametrize("raw", ["To Be Filled By O.E.M", "TO BE FILLED BY O.E.M.", "To be filled by O.E.M. ",
                                 "Default string", "DEFAULT STRING", "--", "   ", "..", "O.E.M", "System Product Name",
                                 "Not Available", "N/A", "00000000", "FFFFFFFF"])
def test_dmi_placeholders_in_any_punctuation_are_not_a_brand(make_root, raw):
    from scanner.parsers.dmidecode import clean
    assert clean(raw) is None
    root = make_root({"/sys/class/dmi/id/sys_vendor": raw + "\n", "/sys/class/dmi/id/product_name": raw + "\n",
                      "/sys/class/dmi/id/board_vendor": "Inspur\n"})
    facts, _ = run(root, "dmi")
    assert facts["sys_vendor"] is None and facts["product_name"] is None and facts["board_vendor"] == "Inspur"


@pytest.mark.parametrize("raw", ["Huawei", "Inspur", "Sugon", "OEM Tech", "Lenovo ", "0", "X86", "FT-2000/4"])
def test_real_dmi_values_are_kept(raw):
    from scanner.parsers.dmidecode import clean
    assert clean(raw) == raw.strip()


# ---------------------------------------------------------------- audit and logging as configured (item 3)
def test_audit_log_directory_follows_log_file_and_log_group(make_root, tmp_path):
    conf = "log_file = /srv/audit/audit.log\nlog_group = %s\n"
    root = make_root({"/usr/sbin/auditd": ELF, "/etc/audit/auditd.conf": conf % "adm", "/srv/audit/audit.log": ""})
    os.chmod(os.path.join(root, "srv/audit"), 0o750)
    facts, _ = run(root, "file_perms")
    audit_dir = [f for f in facts["files"] if f["kind"] == "audit-dir"][0]
    assert audit_dir["path"] == "/srv/audit" and audit_dir["log_group"] == "adm"
    assert verdict(root, "mlps.au.audit-log-perms")["status"] == "pass"
    # log_group root: the directory must be 0700, 0750 gives the group nothing to read legitimately
    root = make_root({"/usr/sbin/auditd": ELF, "/etc/audit/auditd.conf": conf % "root", "/srv/audit/audit.log": ""},
                     root=tmp_path / "root-group")
    os.chmod(os.path.join(root, "srv/audit"), 0o750)
    assert verdict(root, "mlps.au.audit-log-perms")["status"] == "fail"


AUDITD_SERVICE = ("[Unit]\nDescription=Security Auditing Service\n\n[Service]\nType=forking\nExecStart=/sbin/auditd\n"
                  "ExecStartPost=-/sbin/%s\n\n[Install]\nWantedBy=multi-user.target\n")


def test_audit_rules_follow_how_auditd_service_loads_them(make_root, tmp_path):
    files = {"/usr/sbin/auditd": ELF, "/etc/audit/auditd.conf": "log_group = root\n",
             "/etc/audit/rules.d/99-finalize.rules": "-e 2\n",
             "/etc/audit/audit.rules": "## generated by an old augenrules run\n-w /etc/passwd -p wa -k identity\n"}
    # RHEL 8/9 and Debian: augenrules --load compiles rules.d -- immutable
    root = make_root(dict(files, **{"/usr/lib/systemd/system/auditd.service": AUDITD_SERVICE % "augenrules --load"}))
    facts, _ = run(root, "audit")
    assert facts["rules_loader"] == "augenrules" and facts["immutable"] is True
    assert verdict(root, "mlps.au.audit-immutable")["status"] == "pass"
    # RHEL 7 style: auditctl -R /etc/audit/audit.rules loads that file only; rules.d is never read
    root = make_root(dict(files, **{"/usr/lib/systemd/system/auditd.service":
                                    AUDITD_SERVICE % "auditctl -R /etc/audit/audit.rules"}), root=tmp_path / "el7")
    facts, _ = run(root, "audit")
    assert facts["rules_loader"] == "auditctl /etc/audit/audit.rules" and facts["rule_files"] == ["/etc/audit/audit.rules"]
    assert facts["immutable"] is False
    assert verdict(root, "mlps.au.audit-immutable")["status"] == "fail"


def test_rsyslog_rainerscript_and_authpriv_none(make_root, tmp_path):
    conf = ("module(load=\"imuxsock\")\n*.info;mail.none;authpriv.none;cron.none    /var/log/messages\n%s")
    root = make_root({"/usr/sbin/rsyslogd": ELF, "/etc/rsyslog.conf": conf % ""})
    facts, _ = run(root, "logging")
    assert facts["auth_logged"] is False  # authpriv.none: authentication events are dropped
    assert verdict(root, "mlps.au.auth-events-logged")["status"] == "fail"
    root = make_root({"/usr/sbin/rsyslogd": ELF, "/var/log/app-secure.log": "", "/var/log/messages": "",
                      "/etc/rsyslog.conf": conf %
                      "authpriv.*  action(type=\"omfile\"\n    file=\"/var/log/app-secure.log\")\n"},
                     root=tmp_path / "omfile")
    os.chmod(os.path.join(root, "var/log/app-secure.log"), 0o644)
    os.chmod(os.path.join(root, "var/log/messages"), 0o640)
    facts, _ = run(root, "logging")
    assert facts["auth_logged"] is True and facts["auth_log_files"] == ["/var/log/app-secure.log"]
    assert verdict(root, "mlps.au.auth-events-logged")["status"] == "pass"
    # the permission rule checks the file the configuration names, not only a fixed list
    res = verdict(root, "mlps.au.log-file-perms")
    assert res["status"] == "fail" and [i["key"] for i in res["items"] if i["status"] == "fail"] == \
        ["/var/log/app-secure.log"]
    os.chmod(os.path.join(root, "var/log/app-secure.log"), 0o600)
    assert verdict(root, "mlps.au.log-file-perms")["status"] == "pass"


def servers_of(root):
    from scanner.catalog import default_catalog
    from scanner.collect import collect_facts
    from scanner.inventory import build_inventory
    facts = collect_facts(Context(root=root, live=False), only=["host", "dmi", "cpu"])
    inv = build_inventory(facts, default_catalog())
    return facts, [c for c in inv["components"] if c["category"] == "server"]


def dmi_root(make_root, root=None, **fields):
    return make_root(dict(("/sys/class/dmi/id/%s" % k, v + "\n") for k, v in fields.items()), root=root)


@pytest.mark.parametrize("vendor,product", [("HUAWEI CLOUD", "c7.large.2"), ("OpenStack Foundation", "OpenStack Nova"),
                                            ("Alibaba Cloud", "Alibaba Cloud ECS"), ("Tencent Cloud", "CVM"),
                                            ("CTyun", "KVM Virtual Machine"), ("Huawei", "KVM Virtual Machine")])
def test_cloud_vms_are_vms_not_a_hardware_brand(make_root, vendor, product):
    facts, servers = servers_of(dmi_root(make_root, sys_vendor=vendor, product_name=product))
    assert facts["host"]["virtualization"]["kind"] == "vm"
    assert servers == []


def test_domestic_pc_brands_and_blank_huawei_vendor(make_root, tmp_path):
    for vendor, pid in (("THTF", "thtf"), ("TONGFANG", "thtf"), ("Ruijie Networks Co., Ltd.", "ruijie"),
                        ("KunTai", "kuntai"), ("UNIS", "unis"), ("XFUSION", "xfusion")):
        _, servers = servers_of(dmi_root(make_root, root=tmp_path / pid / vendor.split()[0],
                                         sys_vendor=vendor, product_name="Desktop"))
        assert [(s["product_id"], s["origin"]) for s in servers] == [(pid, "domestic")], vendor
    # a Huawei server whose vendor fields are blank: the TaiShan product name is unambiguous
    _, servers = servers_of(dmi_root(make_root, root=tmp_path / "blank", sys_vendor=" ", board_vendor="To be filled by O.E.M.",
                                     product_name="TaiShan 200 (Model 2280)"))
    assert [s["product_id"] for s in servers] == ["huawei"]
    # ... while a 2288H V6 (made by Huawei, then xFusion) with blank vendors stays unnamed
    _, servers = servers_of(dmi_root(make_root, root=tmp_path / "ambiguous", sys_vendor=" ", product_name="2288H V6"))
    assert servers == []


KIRIN_CPUINFO = "".join("processor\t: %d\nBogoMIPS\t: 3.84\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n"
                        "CPU implementer\t: 0x48\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd40\n"
                        "CPU revision\t: 2\n\n" % i for i in range(4))


def test_hisilicon_kirin_pc_chip_is_in_the_catalog(make_root):
    from scanner.catalog import default_catalog
    from scanner.collect import collect_facts
    from scanner.inventory import build_inventory
    root = make_root({"/proc/cpuinfo": KIRIN_CPUINFO})
    facts = collect_facts(Context(root=root, live=False), only=["cpu"])
    cpus = [c for c in build_inventory(facts, default_catalog())["components"] if c["category"] == "cpu"]
    assert [(c["product_id"], c["origin"]) for c in cpus] == [("kirin", "domestic")]


SSHD_CASES = [
    "PermitRootLogin no\nPermitRootLogin nope\n",          # an ignored duplicate still has to be valid
    "Match User backup\n  PermitRootLogin bogus\n",          # so does a line inside a Match block
    "MaxAuthTries abc\n",
    "ClientAliveInterval 5x\n",
    "LoginGraceTime 1m30s\nMaxAuthTries 0\nPermitRootLogin no\nPermitRootLogin yes\n",
    "AllowTcpForwarding local\nX11Forwarding YES\nClientAliveInterval 1h\n",
]


@pytest.mark.skipif(not (os.path.exists("/usr/sbin/sshd") and shutil.which("ssh-keygen")), reason="needs OpenSSH")
@pytest.mark.parametrize("config", SSHD_CASES)
def test_sshd_collector_agrees_with_sshd_t(make_root, tmp_path, config):
    """Where sshd -t rejects the file the collector has no effective configuration (error); where it
    accepts it, the values the collector reports are the ones sshd -T prints."""
    key = str(tmp_path / "hostkey")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True, timeout=60)
    text = "HostKey %s\n%s" % (key, config)
    root = make_root({"/usr/sbin/sshd": SSHD_ELF, "/etc/ssh/sshd_config": text})
    conf = os.path.join(root, "etc/ssh/sshd_config")
    real = subprocess.run(["/usr/sbin/sshd", "-T", "-f", conf], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)
    missing = re.search(r"Missing privilege separation directory: (\S+)", real.stderr)
    if missing:
        # sshd -T also wants its privilege separation directory, which sshd.service creates at start
        # (RuntimeDirectory=sshd); on a machine where sshd has not run yet, create it as the unit would
        os.makedirs(missing.group(1), mode=0o755, exist_ok=True)
        real = subprocess.run(["/usr/sbin/sshd", "-T", "-f", conf], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=60)
    assert "privilege separation directory" not in real.stderr, real.stderr
    facts, errors = run(root, "sshd")
    if real.returncode != 0:
        assert facts is None, real.stderr
        assert any(e["path"].startswith("/etc/ssh/sshd_config:") for e in errors)
        return
    assert facts is not None, errors
    theirs = dict(line.split(" ", 1) for line in real.stdout.splitlines() if " " in line)
    # sshd -T prints prohibit-password under its older synonym (sshd_config(5))
    theirs["permitrootlogin"] = theirs["permitrootlogin"].replace("without-password", "prohibit-password")
    for keyword in ("permitrootlogin", "maxauthtries", "allowtcpforwarding", "x11forwarding"):
        assert facts["effective"][keyword].lower() == theirs[keyword].lower(), keyword
    for keyword in ("logingracetime", "clientaliveinterval", "maxauthtries"):
        assert facts["numeric"][keyword] == int(theirs[keyword]), keyword


def test_redis_protected_mode_offline(make_root, tmp_path):
    from scanner.collect import db_config
    cases = {"port 6379\n": True,                                  # default protected-mode yes, no bind
             "port 6379\nprotected-mode no\n": False,
             "port 6379\nrequirepass s3cret\n": False,             # authenticated: the password decides
             "port 6379\nbind 0.0.0.0\n": False}                   # explicit bind: Redis < 7 is exposed
    for n, (text, local) in enumerate(sorted(cases.items())):
        root = make_root({"/etc/redis/redis.conf": text}, root=tmp_path / str(n))
        inst = db_config.collect(Context(root=root, live=False))["instances"][0]
        assert inst["settings"]["local_only"] is local, text


# ---------------------------------------------------------------- a log file rsyslog names but has not created
# RHEL 9's rsyslog.conf and rsyslog.service (UMask=0066); Debian 12's rsyslog.conf ($FileCreateMode 0640,
# $Umask 0022, group adm). rsyslog creates a missing file at its first write with fileCreateMode masked by
# its umask (rsyslog omfile docs "fileCreateMode", "$FileCreateMode", "$umask"; tools/omfile.c).
RHEL_RSYSLOG = ("module(load=\"imuxsock\" SysSock.Use=\"off\")\nmodule(load=\"imjournal\" StateFile=\"imjournal.state\")\n"
                "%s*.info;mail.none;authpriv.none;cron.none                /var/log/messages\n"
                "authpriv.*                                              /var/log/secure\n"
                "cron.*                                                  /var/log/cron\n")
RHEL_RSYSLOG_UNIT = ("[Unit]\nDescription=System Logging Service\nDocumentation=man:rsyslogd(8)\n\n[Service]\n"
                     "Type=notify\nEnvironmentFile=-/etc/sysconfig/rsyslog\nExecStart=/usr/sbin/rsyslogd -n $SYSLOGD_OPTIONS\n"
                     "%sStandardOutput=null\nRestart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n")
DEBIAN_RSYSLOG = ("module(load=\"imuxsock\")\n$FileOwner root\n$FileGroup adm\n$FileCreateMode 0640\n$DirCreateMode 0755\n"
                  "$Umask 0022\n$WorkDirectory /var/spool/rsyslog\n$IncludeConfig /etc/rsyslog.d/*.conf\n"
                  "*.*;auth,authpriv.none\t\t-/var/log/syslog\nauth,authpriv.*\t\t\t/var/log/auth.log\n%s")


def log_items(root):
    res = verdict(root, "mlps.au.log-file-perms")
    return res, dict((i["key"], i["status"]) for i in res["items"])


def test_a_log_file_rsyslog_names_but_has_not_created_is_judged_as_rsyslog_will_create_it(make_root, tmp_path):
    # a never-booted RHEL image: no /var/log/secure yet; rsyslog creates it 0644 & ~0066 = 0600 -- compliant
    root = make_root({"/usr/sbin/rsyslogd": ELF, "/etc/rsyslog.conf": RHEL_RSYSLOG % "",
                      "/usr/lib/systemd/system/rsyslog.service": RHEL_RSYSLOG_UNIT % "UMask=0066\n"})
    facts, _ = run(root, "file_perms")
    secure = [f for f in facts["files"] if f["path"] == "/var/log/secure"][0]
    assert secure["exists"] is False and secure["created_by"] == "rsyslog" and secure["mode"] == "0600"
    assert secure["umask"] == "0066" and secure["umask_from"] == "UMask= in /usr/lib/systemd/system/rsyslog.service"
    assert secure["source"] == "/etc/rsyslog.conf:4" and secure["owner"] == "root"
    assert "/var/log/secure" in facts["missing"]
    res, items = log_items(root)
    assert res["status"] == "pass"
    assert items == {"/var/log/messages": "pass", "/var/log/secure": "pass", "/var/log/cron": "pass"}

    # the same image where the unit lost its UMask= (systemd.exec(5): then 0022): created 0644 -- fails,
    # where before the file was left out and the rule had nothing to judge
    root = make_root({"/usr/sbin/rsyslogd": ELF, "/etc/rsyslog.conf": RHEL_RSYSLOG % "",
                      "/usr/lib/systemd/system/rsyslog.service": RHEL_RSYSLOG_UNIT % ""}, root=tmp_path / "no-umask")
    res, items = log_items(root)
    assert res["status"] == "fail" and items["/var/log/secure"] == "fail"
    assert "0644" in [i for i in res["items"] if i["key"] == "/var/log/secure"][0]["actual"]
    # ... and a drop-in restoring it wins over the unit
    root = make_root({"/usr/sbin/rsyslogd": ELF, "/etc/rsyslog.conf": RHEL_RSYSLOG % "",
                      "/usr/lib/systemd/system/rsyslog.service": RHEL_RSYSLOG_UNIT % "",
                      "/etc/systemd/system/rsyslog.service.d/umask.conf": "[Service]\nUMask=0077\n"},
                     root=tmp_path / "dropin")
    assert log_items(root)[0]["status"] == "pass"

    # $FileCreateMode before the selector lines decides their mode; an existing file is judged as it is
    root = make_root({"/usr/sbin/rsyslogd": ELF, "/etc/rsyslog.conf": RHEL_RSYSLOG % "$FileCreateMode 0664\n",
                      "/usr/lib/systemd/system/rsyslog.service": RHEL_RSYSLOG_UNIT % "UMask=0002\n",
                      "/var/log/messages": ""}, root=tmp_path / "filecreatemode")
    os.chmod(os.path.join(root, "var/log/messages"), 0o600)
    res, items = log_items(root)
    assert items == {"/var/log/messages": "pass", "/var/log/secure": "fail", "/var/log/cron": "fail"}


def test_debian_rsyslog_creates_log_files_0640_group_adm_and_an_action_can_loosen_one(make_root, tmp_path):
    root = make_root({"/usr/sbin/rsyslogd": ELF, "/etc/rsyslog.conf": DEBIAN_RSYSLOG % ""})
    facts, _ = run(root, "file_perms")
    auth = [f for f in facts["files"] if f["path"] == "/var/log/auth.log"][0]
    assert (auth["mode"], auth["owner"], auth["group_name"]) == ("0640", "root", "adm")
    assert auth["umask_from"] == "$umask in the rsyslog configuration"
    assert log_items(root)[0]["status"] == "pass"
    # an action() takes its own fileCreateMode, not the legacy $FileCreateMode
    root = make_root({"/usr/sbin/rsyslogd": ELF, "/etc/rsyslog.conf": DEBIAN_RSYSLOG %
                      "local0.*  action(type=\"omfile\" file=\"/var/log/app.log\" fileCreateMode=\"0666\")\n"},
                     root=tmp_path / "action")
    res, items = log_items(root)
    assert res["status"] == "fail" and items["/var/log/app.log"] == "fail" and items["/var/log/auth.log"] == "pass"
    assert [f for f in run(root, "file_perms")[0]["files"] if f["path"] == "/var/log/app.log"][0]["mode"] == "0644"


def test_a_configuration_left_by_a_removed_rsyslog_creates_no_log_file(make_root):
    # dpkg -r keeps /etc/rsyslog.conf; without rsyslogd nothing will create the files it names
    root = make_root({"/etc/rsyslog.conf": DEBIAN_RSYSLOG % ""})
    facts, _ = run(root, "file_perms")
    assert not [f for f in facts["files"] if f.get("created_by")]
    assert "/var/log/auth.log" in facts["missing"]
    assert log_items(root)[0]["status"] == "not_applicable"


def test_a_log_file_whose_creation_mode_nothing_states_is_an_error_that_says_why(make_root):
    # no rsyslog.service (a SysV-init image) and no $umask: the process umask is not on the image
    root = make_root({"/usr/sbin/rsyslogd": ELF, "/etc/rsyslog.conf": "authpriv.*  /var/log/secure\n"})
    res, items = log_items(root)
    assert res["status"] == "error" and items == {"/var/log/secure": "error"}
    item = res["items"][0]
    assert "does not exist yet" in item["reason"]["en"] and "umask" in item["reason"]["en"]
    assert "尚不存在" in item["reason"]["zh"]


# ---------------------------------------------------------------- identification: Kirin 0xd02 vs Kunpeng 920B, clouds, OEMs
def _arm_block(n, impl, part, variant="0x1", rev="0", features=None):
    return ("processor\t: %d\nBogoMIPS\t: 200.00\nFeatures\t: %s\nCPU implementer\t: %s\nCPU architecture: 8\n"
            "CPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n"
            % (n, features or "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
               "jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 asimdfhm dit uscat ilrcpc flagm ssbs sb paca "
               "pacg dcpodp flagm2 frint i8mm bf16 bti", impl, variant, part, rev))


# Kirin 9000S as /proc/cpuinfo lists it: four ARM Cortex-A510 little cores (0x41:0xd46) first, then three
# HiSilicon 0xd42 and one 0xd02 (TaiShan v120) core -- the core mix public Device Info HW reads report
# ("72_3330", "72_3394", "Cortex-A510": implementer 72 = 0x48, parts 3330 = 0xd02 and 3394 = 0xd42);
# util-linux sys-utils/lscpu-arm.c: 0x48 0xd02 "TaiShan-v120 used in Kirin 990A and 9000S SoCs"
KIRIN_9000S_CPUINFO = "".join([_arm_block(i, "0x41", "0xd46") for i in range(4)] +
                              [_arm_block(i, "0x48", "0xd42") for i in range(4, 7)] + [_arm_block(7, "0x48", "0xd02")])
# Kunpeng 920B (TaiShan v120 cores, 0x48:0xd02 on every core, SVE): the same part, one core type
KUNPENG_920B_CPUINFO = "".join(_arm_block(i, "0x48", "0xd02", variant="0x2", features=(
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 "
    "sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg dcpodp sve2 sveaes svepmull "
    "svebitperm svesha3 svesm4 flagm2 frint svei8mm svebf16 i8mm bf16 dgh")) for i in range(8))


def cpu_components(make_root, text, root=None):
    from scanner.catalog import default_catalog
    from scanner.collect import collect_facts
    from scanner.inventory import build_inventory
    root = make_root({"/proc/cpuinfo": text}, root=root)
    facts = collect_facts(Context(root=root, live=False), only=["cpu"])
    return facts["cpu"], [c for c in build_inventory(facts, default_catalog())["components"] if c["category"] == "cpu"]


def test_kirin_and_kunpeng_920b_share_part_0xd02_and_the_core_mix_tells_them_apart(make_root, tmp_path):
    cpu, comps = cpu_components(make_root, KIRIN_9000S_CPUINFO)
    assert cpu["core_types"] == ["0x41:0xd46", "0x48:0xd42", "0x48:0xd02"]
    assert cpu["implementer"] == "0x41"  # the first block is a little ARM core ...
    # ... yet the chip is HiSilicon's: one domestic Kirin component, not a foreign ARM Cortex
    assert [(c["product_id"], c["origin"]) for c in comps] == [("kirin", "domestic")]
    assert comps[0]["details"]["implementer"] == "0x48" and comps[0]["details"]["part"] == "0xd42"
    assert any("core types" in e["value"] for e in comps[0]["evidence"])
    cpu, comps = cpu_components(make_root, KUNPENG_920B_CPUINFO, root=tmp_path / "kunpeng")
    assert cpu["core_types"] == ["0x48:0xd02"]
    assert [(c["product_id"], c["origin"], c["model"]) for c in comps] == [
        ("kunpeng", "domestic", "Kunpeng 920 (TaiShan v120)")]
    # a big.LITTLE chip of another designer stays that designer's: ARM-only mixes are not Kirin
    cpu, comps = cpu_components(make_root, "".join([_arm_block(i, "0x41", "0xd05") for i in range(4)] +
                                                   [_arm_block(i, "0x41", "0xd0b") for i in range(4, 8)]),
                                root=tmp_path / "arm")
    assert [c["product_id"] for c in comps] != ["kirin"] and comps[0]["origin"] != "domestic"


def _dmi_files(**fields):
    return dict(("/sys/class/dmi/id/%s" % k, v + "\n") for k, v in fields.items())


# /sys/class/dmi/id of an Alibaba Cloud ECS instance (modalias "dmi:bvnSeaBIOS:...:svnAlibabaCloud:pnAlibabaCloudECS:
# pvrpc-i440fx-2.1:cvnAlibabaCloud:ct1:cvrpc-i440fx-2.1:" in open-license-manager's execution_environment comments;
# cloud-init DataSourceAliYun: ALIYUN_PRODUCT = "Alibaba Cloud ECS")
ALIYUN_DMI = _dmi_files(bios_vendor="SeaBIOS", bios_version="rel-1.7.5-0-ge51488c-20140602_164612-nilsson.home.kraxel.org",
                        bios_date="04/01/2014", sys_vendor="Alibaba Cloud", product_name="Alibaba Cloud ECS",
                        product_version="pc-i440fx-2.1", chassis_vendor="Alibaba Cloud", chassis_type="1",
                        chassis_version="pc-i440fx-2.1")
# Huawei Cloud ECS: cloud-init DataSourceOpenStack knows it by the chassis asset tag alone
# (DMI_ASSET_TAG_HUAWEICLOUD = "HUAWEICLOUD", canonical/cloud-init PR 1689 "Identify Huawei Cloud as OpenStack");
# what else its DMI says is not published, so the fixture has that field only
HUAWEICLOUD_DMI = _dmi_files(chassis_asset_tag="HUAWEICLOUD")


@pytest.mark.parametrize("dmi,label", [(ALIYUN_DMI, "Alibaba Cloud ECS"), (HUAWEICLOUD_DMI, "Huawei Cloud")])
def test_cloud_vms_named_by_their_real_dmi_are_vms_not_servers(make_root, tmp_path, dmi, label):
    from scanner.catalog import default_catalog
    from scanner.inventory import build_inventory
    facts = collect_facts_of(make_root(dmi))
    virt = facts["host"]["virtualization"]
    assert (virt["kind"], virt["type"]) == ("vm", label)
    assert [c for c in build_inventory(facts, default_catalog())["components"] if c["category"] == "server"] == []
    if label == "Huawei Cloud":
        # not a published capture: even a vendor field naming the cloud's owner does not make it a Huawei server
        facts = collect_facts_of(make_root(dict(dmi, **_dmi_files(sys_vendor="Huawei", product_name="s6.large.2")),
                                           root=tmp_path / "vendor"))
        assert facts["host"]["virtualization"]["type"] == "Huawei Cloud"
        assert [c for c in build_inventory(facts, default_catalog())["components"] if c["category"] == "server"] == []


def test_a_physical_server_whose_asset_tag_mentions_a_hypervisor_word_is_not_a_vm(make_root):
    # asset tags are free text on real servers: only the exact cloud tags cloud-init lists mean a VM
    facts = collect_facts_of(make_root(_dmi_files(sys_vendor="Inspur", product_name="CS5280F3",
                                                  chassis_asset_tag="XEN-RACK-07", chassis_type="23")))
    assert facts["host"]["virtualization"]["kind"] == "bare-metal"


def collect_facts_of(root):
    from scanner.collect import collect_facts
    return collect_facts(Context(root=root, live=False), only=["host", "dmi", "cpu"])


def test_oem_server_names_as_their_dmi_has_them(make_root, tmp_path):
    """New H3C UniServer R4900 G3 (dmidecode -t 1 capture: "New H3C Technologies Co., Ltd.", Version "To be filled
    by O.E.M.", Family "Rack") and Inspur's Kunpeng server CS5280F3 (openEuler bug report: Manufacturer "Inspur",
    Product Name "CS5280F3", kernel ...aarch64) -- a domestic brand with a domestic CPU, two components."""
    from scanner.catalog import default_catalog
    from scanner.inventory import build_inventory
    root = make_root(_dmi_files(sys_vendor="New H3C Technologies Co., Ltd.", product_name="UniServer R4900 G3",
                                product_version="To be filled by O.E.M.", product_family="Rack",
                                chassis_type="23"), root=tmp_path / "h3c")
    inv = build_inventory(collect_facts_of(root), default_catalog())
    assert [(c["product_id"], c["origin"], c["model"]) for c in inv["components"] if c["category"] == "server"] == [
        ("h3c", "domestic", "UniServer R4900 G3")]
    files = _dmi_files(sys_vendor="Inspur", product_name="CS5280F3", chassis_type="23")
    files["/proc/cpuinfo"] = "".join(_arm_block(i, "0x48", "0xd01", features="fp asimd evtstrm aes pmull sha1 sha2 "
                                                "crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma dcpop asimddp "
                                                "asimdfhm") for i in range(4))
    inv = build_inventory(collect_facts_of(make_root(files, root=tmp_path / "inspur")), default_catalog())
    got = dict((c["category"], (c["product_id"], c["origin"])) for c in inv["components"])
    assert got["server"] == ("inspur", "domestic") and got["cpu"] == ("kunpeng", "domestic")


# shadow-utils reads login.defs numbers with strtol(value, &end, 0) and the whole value must parse (lib/getlong.c);
# one that does not gives the program's built-in default (lib/getdef.c getdef_num: "configuration error - cannot
# parse"); def_load() keeps the last line of a key, skips a line with one field and cuts the value at a '"'
@pytest.mark.parametrize("lines,value,status", [
    ("PASS_MAX_DAYS\t90\n", 90, "pass"),
    ("PASS_MAX_DAYS\t060\n", 48, "pass"),                       # a leading 0 is octal: 48 days
    ("PASS_MAX_DAYS\t0x5a\n", 90, "pass"),                      # hex
    ("PASS_MAX_DAYS\t\"60\"\n", 60, "pass"),                    # quoted
    ("PASS_MAX_DAYS\t090\n", 99999, "fail"),                    # not octal: unparsable -> never expires
    ("PASS_MAX_DAYS\t90 # policy 2024\n", 99999, "fail"),       # no inline comments in login.defs
    ("PASS_MAX_DAYS\t60\nPASS_MAX_DAYS\tninety\n", 99999, "fail"),  # the last line decides
    ("PASS_MAX_DAYS\tninety\nPASS_MAX_DAYS\t60\n", 60, "pass"),
    ("PASS_MAX_DAYS\t60\nPASS_MAX_DAYS\n", 60, "pass"),         # a key without a value is skipped
])
def test_login_defs_numbers_parse_as_shadow_utils_parses_them(make_root, lines, value, status):
    root = make_root({"/etc/login.defs": "MAIL_DIR\t/var/mail\nPASS_MIN_DAYS\t1\nPASS_WARN_AGE\t7\n" + lines})
    facts, errors = run(root, "login_defs")
    assert facts["PASS_MAX_DAYS"] == value
    assert ("PASS_MAX_DAYS" in facts.get("unparsable", [])) == (value == 99999)
    assert ("PASS_MAX_DAYS" in facts["defaulted"]) == (value == 99999)
    assert any("built-in default" in e["message"] for e in errors) == (value == 99999 or "ninety" in lines)
    assert verdict(root, "mlps.ia.password-max-age")["status"] == status


def test_auditd_conf_keywords_left_out_take_auditds_compiled_in_values(make_root, tmp_path):
    # audit-userspace src/auditd-config.c clear_config(): disk_full_action and admin_space_left_action IGNORE,
    # disk_error_action SYSLOG, max_log_file_action IGNORE -- not the shipped file's SUSPEND/ROTATE
    base = {"/usr/sbin/auditd": ELF, "/etc/audit/auditd.conf": "log_file = /var/log/audit/audit.log\nlog_group = root\n"}
    root = make_root(base)
    conf = run(root, "audit")[0]["conf"]
    assert (conf["disk_full_action"], conf["admin_space_left_action"], conf["disk_error_action"],
            conf["max_log_file_action"]) == ("ignore", "ignore", "syslog", "ignore")
    assert verdict(root, "mlps.au.audit-disk-full-action")["status"] == "fail"
    root = make_root(dict(base, **{"/etc/audit/auditd.conf": base["/etc/audit/auditd.conf"] +
                                   "disk_full_action = SUSPEND\nadmin_space_left_action = SUSPEND\n"}),
                     root=tmp_path / "set")
    assert verdict(root, "mlps.au.audit-disk-full-action")["status"] == "pass"  # disk_error_action SYSLOG by default


@pytest.mark.parametrize("line,forward,seal", [
    ("ForwardToSyslog=y\nSeal=f\n", True, False),        # systemd's parse_boolean takes y/t/f/n as well
    ("ForwardToSyslog = On\n", True, True),
    ("ForwardToSyslog=maybe\nSeal=perhaps\n", False, True),  # not a boolean: ignored, the defaults stay
    ("", False, True),
])
def test_journald_booleans_parse_as_systemd_parses_them(make_root, line, forward, seal):
    root = make_root({"/etc/systemd/journald.conf": "[Journal]\n" + line})
    facts, _ = run(root, "logging")
    assert (facts["journald"]["forward_to_syslog"], facts["journald"]["seal"]) == (forward, seal)


def test_journald_storage_outside_its_values_is_ignored(make_root, tmp_path):
    root = make_root({"/etc/systemd/journald.conf": "[Journal]\nStorage=persistant\n", "/var/log/journal/.keep": ""})
    journal = run(root, "logging")[0]["journald"]
    assert journal["storage"] == "auto" and journal["persistent"] is True  # auto with /var/log/journal present
    root = make_root({"/etc/systemd/journald.conf": "[Journal]\nStorage=persistant\n"}, root=tmp_path / "none")
    assert run(root, "logging")[0]["journald"]["persistent"] is False


def test_chrony_include_globs_are_read_like_chronyd_reads_them(make_root, tmp_path):
    # openEuler/Kylin-style chrony.conf that keeps its sources in an included directory (chrony.conf(5):
    # "include pattern ... all files matching the pattern, in alphabetical order")
    unit = "[Unit]\nDescription=NTP client/server\n\n[Service]\nExecStart=/usr/sbin/chronyd\n\n[Install]\nWantedBy=multi-user.target\n"
    files = {"/usr/sbin/chronyd": ELF, "/usr/lib/systemd/system/chronyd.service": unit,
             "/etc/systemd/system/multi-user.target.wants/chronyd.service": ("symlink", "/usr/lib/systemd/system/chronyd.service"),
             "/etc/chrony.conf": "driftfile /var/lib/chrony/drift\nmakestep 1.0 3\ninclude /etc/chrony.d/*.conf\n",
             "/etc/chrony.d/10-gov.conf": "server ntp1.gov.example iburst\n",
             "/etc/chrony.d/20-backup.conf": "pool ntp-pool.gov.example iburst\n", "/etc/chrony.d/README": "server x\n"}
    root = make_root(files)
    facts, _ = run(root, "time_sync")
    assert facts["servers"] == ["ntp1.gov.example", "ntp-pool.gov.example"]
    assert verdict(root, "mlps.au.time-sync-servers")["status"] == "pass"
    files["/etc/chrony.conf"] = "driftfile /var/lib/chrony/drift\nmakestep 1.0 3\n"
    root = make_root(files, root=tmp_path / "no-include")
    assert run(root, "time_sync")[0]["servers"] == []
    assert verdict(root, "mlps.au.time-sync-servers")["status"] == "fail"


# ---------------------------------------------------------------- umask of a login session (item 2)
# linux-pam modules/pam_umask/pam_umask.c + libpam/pam_modutil_searchkey.c: the FIRST UMASK line of
# /etc/login.defs, strtoul base 8; `usergroups` copies the owner bits to the group bits for a non-root
# user whose primary group has the user's name. Without pam_umask in the session stack nothing applies
# login.defs UMASK to a PAM login: the session keeps the 022 it inherits.
UMASK_PASSWD = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n"
UMASK_GROUP = "root:x:0:\nalice:x:1000:\n"


def umask_root(make_root, login_defs, session, root, passwd=UMASK_PASSWD, group=UMASK_GROUP):
    files = {"/etc/login.defs": login_defs, "/etc/pam.d/sshd": "@include common-session\n",
             "/etc/pam.d/common-session": "session required pam_unix.so\n" + session,
             "/etc/passwd": passwd, "/etc/group": group, "/etc/profile": "PATH=/usr/bin\n"}
    return make_root(files, root=root)


def test_session_umask_first_login_defs_line_wins_when_pam_umask_is_in_the_stack(make_root, tmp_path):
    # shadow-utils' getdef would take the last line (022); pam_umask stops at the first
    root = umask_root(make_root, "UMASK 027\nUMASK 022\n", "session optional pam_umask.so\n", tmp_path / "a")
    facts, _ = run(root, "shell")
    u = facts["umask"]
    assert (u["value"], u["origin"]) == ("027", "pam_umask")
    assert u["settings"][0]["source"].startswith("/etc/login.defs:1 via /etc/pam.d/common-session:2")
    assert verdict(root, "mlps.ac.default-umask")["status"] == "pass"
    # the reverse order: the first line is 022, the session gets 022 and the rule fails
    root = umask_root(make_root, "umask=022\nUMASK 027\n", "session optional pam_umask.so\n", tmp_path / "b")
    facts, _ = run(root, "shell")
    assert facts["umask"]["value"] == "022"
    assert verdict(root, "mlps.ac.default-umask")["status"] == "fail"


def test_session_umask_without_pam_umask_ignores_login_defs(make_root, tmp_path):
    root = umask_root(make_root, "UMASK 027\n", "", tmp_path / "a")
    facts, _ = run(root, "shell")
    assert (facts["umask"]["value"], facts["umask"]["origin"]) == ("022", "inherited")
    assert "no pam_umask" in facts["umask"]["settings"][0]["source"]
    assert verdict(root, "mlps.ac.default-umask")["status"] == "fail"
    # a shell start-up file setting 027 makes it compliant again
    root = umask_root(make_root, "UMASK 022\n", "", tmp_path / "b")
    os.makedirs(os.path.join(root, "etc/profile.d"))
    with open(os.path.join(root, "etc/profile.d/umask.sh"), "w") as handle:
        handle.write("umask 027\n")
    assert verdict(root, "mlps.ac.default-umask")["status"] == "pass"


def test_session_umask_usergroups_copies_owner_bits_for_private_groups(make_root, tmp_path):
    root = umask_root(make_root, "UMASK 027\n", "session optional pam_umask.so usergroups\n", tmp_path / "a")
    facts, _ = run(root, "shell")
    u = facts["umask"]
    assert u["value"] == "007" and u["group"] == 0 and u["usergroups_users"] == ["alice"]
    assert u["settings"][0]["private_group_value"] == "007"
    assert verdict(root, "mlps.ac.default-umask")["status"] == "fail"
    # nobody has a private group (alice's primary group is "users"): 027 stays
    root = umask_root(make_root, "UMASK 027\n", "session optional pam_umask.so usergroups\n", tmp_path / "b",
                      passwd="root:x:0:0::/root:/bin/bash\nalice:x:1000:100::/home/alice:/bin/bash\n",
                      group="root:x:0:\nusers:x:100:\n")
    facts, _ = run(root, "shell")
    assert facts["umask"]["value"] == "027"
    assert verdict(root, "mlps.ac.default-umask")["status"] == "pass"
    # Debian's nousergroups after usergroups switches it off again; 077 -> 007 would otherwise fail
    root = umask_root(make_root, "UMASK 077\n", "session optional pam_umask.so usergroups nousergroups\n",
                      tmp_path / "c")
    assert run(root, "shell")[0]["umask"]["value"] == "077"


def test_session_umask_argument_and_unparsable_values(make_root, tmp_path):
    root = umask_root(make_root, "UMASK 022\n", "session optional pam_umask.so umask=0027\n", tmp_path / "a")
    assert run(root, "shell")[0]["umask"]["value"] == "027"
    # "UMASK abc": strtoul finds no octal digit, the umask stays 022; an empty first UMASK still ends the search
    for name, text in (("b", "UMASK abc\n"), ("c", "UMASK\nUMASK 027\n")):
        root = umask_root(make_root, text, "session optional pam_umask.so\n", tmp_path / name)
        facts, _ = run(root, "shell")
        assert facts["umask"]["value"] == "022" and "inherited" in facts["umask"]["settings"][0]["source"]
    # "027 # comment" and "0278": strtoul stops at the first non-octal character
    root = umask_root(make_root, "UMASK\t0278 # private\n", "session optional pam_umask.so\n", tmp_path / "d")
    assert run(root, "shell")[0]["umask"]["value"] == "027"
    # no /etc/pam.d at all: what a session gets is not decidable -- no fact, never a pass
    root = make_root({"/etc/login.defs": "UMASK 027\n", "/etc/profile": "PATH=/usr/bin\n"}, root=tmp_path / "e")
    assert run(root, "shell")[0]["umask"] is None
    assert verdict(root, "mlps.ac.default-umask")["status"] != "pass"


PAM_PROBE = r'''
import ctypes, os, sys
pam = ctypes.CDLL("libpam.so.0")
CONV = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
class Conv(ctypes.Structure):
    _fields_ = [("conv", CONV), ("appdata_ptr", ctypes.c_void_p)]
cb = CONV(lambda n, m, r, d: 19)
handle = ctypes.c_void_p()
conv = Conv(cb, None)
if pam.pam_start_confdir(b"probe", sys.argv[2].encode(), ctypes.byref(conv), sys.argv[1].encode(),
                         ctypes.byref(handle)) != 0:
    sys.exit(3)
os.umask(0o022)
if pam.pam_open_session(handle, 0) != 0:
    sys.exit(4)
print("%03o" % os.umask(0))
'''


def _pam_umask_module():
    for directory in ("/usr/lib/x86_64-linux-gnu/security", "/usr/lib64/security", "/lib/security",
                      "/usr/lib/aarch64-linux-gnu/security"):
        if os.path.exists(os.path.join(directory, "pam_umask.so")):
            return True
    return False


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not _pam_umask_module(),
                    reason="needs root, unshare and the real pam_umask.so")
def test_session_umask_matches_the_real_pam_umask(make_root, tmp_path):
    """The collector against Linux-PAM's own pam_umask.so: the fixture login.defs is bind-mounted over
    /etc/login.defs in a private mount namespace (nothing outside the test sees it) and a session is opened
    through pam_start_confdir() as the non-root user 'daemon' (uid 1, primary group 'daemon')."""
    import sys
    probe = tmp_path / "probe.py"
    probe.write_text(PAM_PROBE)
    cases = [("UMASK 027\nUMASK 022\n", ""), ("umask=022\nUMASK 027\n", ""), ("UMASK abc\n", ""),
             ("UMASK\nUMASK 027\n", ""), ("UMASK\t0278 # x\n", ""), ("UMASK 027\n", " usergroups"),
             ("UMASK 077\n", " usergroups nousergroups"), ("UMASK 022\n", " umask=0027")]
    passwd = "root:x:0:0::/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n"
    group = "root:x:0:\ndaemon:x:1:\n"
    for index, (defs, args) in enumerate(cases):
        conf = tmp_path / ("conf%d" % index)
        conf.mkdir()
        (conf / "probe").write_text("session required pam_umask.so%s\n" % args)
        defs_file = tmp_path / ("login%d.defs" % index)
        defs_file.write_text(defs)
        script = "mount --bind %s /etc/login.defs && exec %s %s %s daemon" % (defs_file, sys.executable, probe, conf)
        done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=30)
        if done.returncode == 3:
            pytest.skip("libpam without pam_start_confdir (Linux-PAM < 1.4)")
        assert done.returncode == 0, done.stderr
        real = done.stdout.strip()
        root = umask_root(make_root, defs, "session required pam_umask.so%s\n" % args, tmp_path / ("r%d" % index),
                          passwd=passwd, group=group)
        assert run(root, "shell")[0]["umask"]["value"] == real, (defs, args, real)


# ---------------------------------------------------------------- pwquality built-in values by version (item 2)
# libpwquality src/pwqprivate.h PWQ_DEFAULT_*: 1.0.0-1.2.4 minlen 9, difok 5, credits 1; 1.3.0 on minlen 8,
# difok 1, credits 0. A value neither pwquality.conf nor the module arguments set comes from the installed version.
def dpkg_status(version):
    stanza = ("Package: libpwquality1\nStatus: install ok installed\nArchitecture: amd64\nVersion: %s\n\n" % version
              if version else "")
    return stanza + "Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n\n"


def pwquality_root(make_root, root, version, conf="# minlen = 8\n"):
    return make_root({"/etc/pam.d/passwd": "password requisite pam_pwquality.so retry=3\n"
                                           "password required pam_unix.so use_authtok\n",
                      "/etc/security/pwquality.conf": conf, "/var/lib/dpkg/status": dpkg_status(version)}, root=root)


def test_pwquality_builtin_values_follow_the_installed_version(make_root, tmp_path):
    root = pwquality_root(make_root, tmp_path / "old", "1.2.3-1")
    q = run(root, "pam")[0]["quality"]
    assert (q["minlen"], q["difok"], q["dcredit"]) == (9, 5, 1) and "usercheck" not in q
    assert q["builtin_defaults"]["version"] == "1.2.3-1"
    assert q["builtin_defaults"]["source"] == "/var/lib/dpkg/status (libpwquality1)"
    root = pwquality_root(make_root, tmp_path / "new", "1.4.5-1+b1")
    q = run(root, "pam")[0]["quality"]
    assert (q["minlen"], q["difok"], q["dcredit"], q["usercheck"]) == (8, 1, 0, 1)
    # with a min_length of 9 the version decides the verdict
    from scanner.engine import load_ruleset
    from scanner.engine.evaluator import evaluate_rule
    from scanner.collect import collect_facts
    rule = [r for r in load_ruleset() if r["id"] == "mlps.ia.password-min-length"][0]
    rule = dict(rule, params=dict(rule.get("params") or {}, min_length=9))
    got = {}
    for name in ("old", "new"):
        ctx = Context(root=str(tmp_path / name))
        facts = collect_facts(ctx, only=["pam"], wanted=["pam"])
        got[name] = evaluate_rule(rule, facts, None, now=NOW)["status"]
    assert got == {"old": "pass", "new": "fail"}


def test_pwquality_builtin_value_without_a_version_is_undecidable(make_root, tmp_path):
    root = pwquality_root(make_root, tmp_path / "none", None)
    q = run(root, "pam")[0]["quality"]
    assert q["minlen"] is None and "difok" not in q and q["retry"] == 3
    assert q["builtin_defaults"]["undecidable"] == "/var/lib/dpkg/status lists no libpwquality package"
    result = verdict(root, "mlps.ia.password-min-length")
    assert result["status"] == "error" and "libpwquality" in result["reason"]["en"]
    # set explicitly, the version is not needed (and not looked up)
    conf = "minlen = 12\ndifok = 3\ndcredit = 0\nucredit = 0\nlcredit = 0\nocredit = 0\ndictcheck = 1\nusercheck = 1\n"
    root = pwquality_root(make_root, tmp_path / "set", None, conf=conf)
    q = run(root, "pam")[0]["quality"]
    assert q["minlen"] == 12 and "builtin_defaults" not in q
    assert verdict(root, "mlps.ia.password-min-length")["status"] == "pass"
