"""Baseline collectors on small fixture roots: effective values, precedence, malformed input."""
import json
import os

import pytest

from scanner.context import Context


def run(root, name, live=False):
    import importlib
    ctx = Context(root=root, live=live)
    module = importlib.import_module("scanner.collect." + name)
    ctx.set_collector(module.NAME)
    return module.collect(ctx), ctx.errors


# ---------------------------------------------------------------- login.defs
def test_login_defs_defaults_and_malformed_numbers(make_root):
    root = make_root({"/etc/login.defs": "PASS_MAX_DAYS\tninety\nPASS_MIN_DAYS 1\n# PASS_WARN_AGE 7\nUMASK 027\n"})
    facts, errors = run(root, "login_defs")
    # shadow-utils cannot parse "ninety" and uses its built-in default (lib/getdef.c getdef_num): no expiry
    assert facts["PASS_MAX_DAYS"] == 99999 and facts["unparsable"] == ["PASS_MAX_DAYS"]
    assert facts["PASS_MIN_DAYS"] == 1 and facts["sources"]["PASS_MIN_DAYS"] == "/etc/login.defs:2"
    # useradd writes an empty warn field when PASS_WARN_AGE is unset: no warning, not 7
    assert facts["PASS_WARN_AGE"] == 0 and "PASS_WARN_AGE" in facts["defaulted"]
    assert facts["ENCRYPT_METHOD"] == "DES" and facts["umask"] == {"value": "027", "group": 2, "other": 7}
    assert errors and errors[0]["path"] == "/etc/login.defs:1" and "ninety" in errors[0]["message"]


def test_login_defs_missing_file_is_unknown_not_default(make_root):
    facts, errors = run(make_root({"/etc/hostname": "x\n"}), "login_defs")
    assert facts is None and errors[0]["path"] == "/etc/login.defs"


# ---------------------------------------------------------------- PAM
DEB_AUTH = "auth\t[success=1 default=ignore]\tpam_unix.so nullok\nauth\trequisite\tpam_deny.so\nauth\trequired\tpam_permit.so\n"


def test_pam_debian_nullok_through_include_and_faillock_only_on_disk(make_root):
    root = make_root({
        "/etc/pam.d/common-auth": DEB_AUTH, "/etc/pam.d/common-password": "password\trequired\tpam_unix.so obscure yescrypt\n",
        "/etc/pam.d/login": "auth optional pam_faildelay.so delay=3000000\n@include common-auth\n",
        "/etc/security/faillock.conf": "deny = 3\n",
        "/usr/lib/x86_64-linux-gnu/security/pam_faillock.so": b"\x7fELF",
    })
    facts, errors = run(root, "pam")
    assert facts["family"] == "debian"
    assert facts["nullok"] == [{"service": "login", "source": "/etc/pam.d/common-auth:1"}]
    assert facts["modules_on_disk"]["pam_faillock"].endswith("pam_faillock.so")
    assert facts["lockout"]["services"] == [] and facts["lockout"]["missing_services"] == ["login"]
    assert facts["lockout"]["deny"] is None  # faillock.conf alone does not lock anything
    assert facts["unix_hash"] == "yescrypt" and facts["quality"]["module"] is None
    assert [e["module"] for e in facts["stacks"]["login"]["auth"]] == ["pam_faildelay", "pam_unix", "pam_deny", "pam_permit"]


def test_pam_rhel_substack_args_override_conf_files(make_root):
    system_auth = ("auth required pam_faillock.so preauth silent deny=4\n"
                   "auth sufficient pam_unix.so\n"
                   "auth [default=die] pam_faillock.so authfail deny=4\n"
                   "password requisite pam_pwquality.so minlen=14 retry=3\n"
                   "password requisite pam_pwhistory.so use_authtok\n"
                   "password sufficient pam_unix.so sha512 shadow use_authtok\n")
    root = make_root({
        "/etc/pam.d/system-auth": system_auth, "/etc/pam.d/password-auth": system_auth,
        "/etc/pam.d/sshd": "auth substack password-auth\naccount include password-auth\npassword include password-auth\n",
        "/etc/pam.d/passwd": "password substack system-auth\n",
        "/etc/security/faillock.conf": "deny = 9\nunlock_time = 900\neven_deny_root\n",
        "/etc/security/pwquality.conf": "minlen = 8\nminclass = 2\n",
        "/etc/security/pwquality.conf.d/10-local.conf": "minclass = 3\nenforce_for_root\n",
        "/etc/security/pwhistory.conf": "remember = 6\n",
    })
    facts, errors = run(root, "pam")
    assert errors == []
    lock = facts["lockout"]
    assert lock["module"] == "pam_faillock" and lock["services"] == ["sshd"]
    assert lock["deny"] == 4 and lock["unlock_time"] == 900 and lock["even_deny_root"] is True
    assert lock["sources"]["deny"].startswith("/etc/pam.d/")
    q = facts["quality"]
    assert (q["minlen"], q["minclass"], q["classes_required"], q["enforce_for_root"], q["retry"]) == (14, 3, 3, True, 3)
    assert q["sources"]["minclass"] == "/etc/security/pwquality.conf.d/10-local.conf:1"
    assert facts["history"]["remember"] == 6 and facts["unix_hash"] == "sha512"


def test_pam_faillock_preauth_only_does_not_count(make_root):
    root = make_root({"/etc/pam.d/login": "auth required pam_faillock.so preauth\nauth sufficient pam_unix.so\n"})
    facts, _ = run(root, "pam")
    assert facts["lockout"]["services"] == [] and facts["lockout"]["modes"] == ["preauth"]


def test_pam_malformed_lines_and_include_loops_are_reported(make_root):
    root = make_root({
        "/etc/pam.d/login": "auth [success=1 pam_unix.so\nbogus line here\nauth include login\n@include\nauth required\n"
                            "auth required pam_tally2.so deny=5\n",
    })
    facts, errors = run(root, "pam")
    messages = " | ".join("%s %s" % (e["path"], e["message"]) for e in errors)
    assert "/etc/pam.d/login:1 unterminated '['" in messages
    assert "/etc/pam.d/login:2 not a PAM rule" in messages
    assert "include loop" in messages and "malformed @include" in messages
    assert facts["lockout"]["module"] == "pam_tally2" and facts["lockout"]["deny"] == 5
    assert facts["lockout"]["unlock_time"] == 0


def test_pam_cracklib_defaults_and_wheel(make_root):
    root = make_root({
        "/etc/pam.d/passwd": "password requisite pam_cracklib.so dcredit=-1 ucredit=-1 lcredit=-1\n",
        "/etc/pam.d/su": "auth sufficient pam_rootok.so\n#auth required pam_wheel.so use_uid\nauth required pam_wheel.so deny group=nosu\n",
    })
    facts, _ = run(root, "pam")
    assert facts["quality"]["module"] == "pam_cracklib" and facts["quality"]["minlen"] == 9
    assert facts["quality"]["classes_required"] == 3
    assert facts["su_wheel"] is False  # commented out, and a 'deny' line restricts nothing


# ---------------------------------------------------------------- accounts
def test_accounts_empty_locked_and_malformed(make_root):
    root = make_root({
        "/etc/passwd": "root:x:0:0:root:/root:/bin/bash\nbin:x:1:1::/bin:/sbin/nologin\ntoor:x:0:0::/root:/bin/sh\n"
                       "broken:x:12\nguest:x:1001:1001::/home/guest:/bin/bash\nold:x:1002:1002::/home/old:/bin/bash\n+nisuser::::::\n",
        "/etc/shadow": "root:!!:19000:0:99999:7:::\nbin:*:19000::::::\ntoor:$6$abc$def:19000:0:90:7:::\n"
                       "guest::19000:0:99999:7:::\nold:$1$salt$hash:100:0:90:7::200:\n",
        "/etc/group": "root:x:0:\nwheel:x:10:guest\nwheel:x:11:\n",
        "/etc/login.defs": "UID_MIN 1000\n",
    })
    facts, errors = run(root, "accounts")
    assert errors[0]["path"] == "/etc/passwd:4"
    users = dict((u["name"], u) for u in facts["users"])
    assert users["root"]["password"] == "locked" and users["bin"]["password"] == "locked"
    assert users["guest"]["password"] == "empty" and facts["empty_password"] == ["guest"]
    assert facts["uid0_non_root"] == ["toor"] and facts["duplicate_uids"] == [0]
    assert facts["duplicate_group_names"] == ["wheel"]
    assert users["old"]["hash_scheme"] == "md5" and facts["weak_hashes"] == ["old"]
    assert users["old"]["account_expired"] is True and users["old"]["usable_login"] is False
    assert users["old"]["password_expires_on"] == "1970-07-10" and users["toor"]["hash_scheme"] == "sha512"
    assert users["bin"]["system"] is True and users["bin"]["interactive"] is False
    assert "nisuser" not in users


def test_accounts_last_logins_from_lastlog_and_lastlog2(make_root, tmp_path):
    import sqlite3
    import struct
    passwd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n" \
             "bob:x:1001:1001::/home/bob:/bin/bash\nsvc:x:995:995::/:/sbin/nologin\n"
    shadow = "root:$6$a$b:19000:0:99999:7:::\nalice:$6$a$b:19000:0:99999:7:::\nbob:$6$a$b:0:0:99999:7:::\nsvc:!!:19000::::::\n"
    lastlog = bytearray(292 * 1002)
    lastlog[1000 * 292:1000 * 292 + 292] = struct.pack("=i32s256s", 1704844800, b"pts/0", b"10.0.0.1")  # 2024-01-10
    root = make_root({"/etc/passwd": passwd, "/etc/shadow": shadow, "/var/log/lastlog": bytes(lastlog)})
    facts, errors = run(root, "accounts")
    users = dict((u["name"], u) for u in facts["users"])
    assert facts["login_records"] == "/var/log/lastlog" and errors == []
    assert users["alice"]["last_login_on"] == "2024-01-10" and users["alice"]["last_active_on"] == "2024-01-10"
    assert users["bob"]["last_login_on"] == "never" and users["bob"]["last_active_on"] == "1970-01-01"
    assert users["root"]["last_login_on"] == "never" and users["root"]["last_active_on"] == "2022-01-08"  # password date

    # util-linux lastlog2 (SQLite) is preferred when present
    db = tmp_path / "lastlog2.db"
    conn = sqlite3.connect(str(db))
    conn.execute("CREATE TABLE Lastlog2(Name TEXT PRIMARY KEY, Time INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT)")
    conn.execute("INSERT INTO Lastlog2 VALUES ('bob', 1700000000, 'pts/1', '10.0.0.2', 'sshd')")
    conn.commit()
    conn.close()
    root2 = make_root({"/etc/passwd": passwd, "/etc/shadow": shadow, "/var/lib/lastlog/lastlog2.db": db.read_bytes()},
                      root=tmp_path / "r2")
    facts, _ = run(root2, "accounts")
    users = dict((u["name"], u) for u in facts["users"])
    assert facts["login_records"] == "/var/lib/lastlog/lastlog2.db"
    assert users["bob"]["last_login_on"] == "2023-11-14" and users["alice"]["last_login_on"] == "never"

    # no login records at all: unknown, not "never"
    root3 = make_root({"/etc/passwd": passwd, "/etc/shadow": shadow}, root=tmp_path / "r3")
    facts, _ = run(root3, "accounts")
    assert facts["login_records"] is None
    assert all(u["last_login_on"] is None and u["last_active_on"] is None for u in facts["users"])


# ---------------------------------------------------------------- sshd
SSHD_BIN = b"\x7fELF....OpenSSH_9.2p1 Debian\x00"


def test_sshd_include_first_value_wins_and_match(make_root):
    root = make_root({
        "/usr/sbin/sshd": SSHD_BIN,
        "/etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\nMaxAuthTries 6\n"
                                "Match User backup\n  PermitRootLogin yes\n  X11Forwarding yes\n",
        "/etc/ssh/sshd_config.d/10-a.conf": "PermitRootLogin no\nClientAliveInterval 300\nClientAliveCountMax 0\n"
                                            "Match Address 10.0.0.1\n  MaxAuthTries 10\n",
        "/etc/ssh/sshd_config.d/20-b.conf": "permitrootlogin yes\nMaxAuthTries 3\nCiphers +3des-cbc\n",
    })
    facts, errors = run(root, "sshd")
    eff = facts["effective"]
    assert facts["installed"] is True and facts["version"] == "9.2p1" and facts["source"] == "config files"
    assert eff["permitrootlogin"] == "no" and facts["sources"]["permitrootlogin"] == "/etc/ssh/sshd_config.d/10-a.conf:1"
    assert eff["maxauthtries"] == "3"  # the Match in 10-a.conf ended with that file
    assert facts["numeric"]["idle_timeout"] == 0  # CountMax 0 disables the timeout
    assert eff["ciphers"].endswith(",3des-cbc") and eff["x11forwarding"] == "no"
    assert "x11forwarding" in facts["match_overrides"] and facts["match_blocks"] == 2
    assert facts["servers"] and errors == []


def test_sshd_old_version_defaults_and_rhel8_crypto_policy(make_root):
    root = make_root({
        "/usr/sbin/sshd": b"OpenSSH_6.6p1\x00",
        "/etc/ssh/sshd_config": "UsePAM yes\nLogLevel\n",
        "/etc/crypto-policies/back-ends/opensshserver.config":
            "CRYPTO_POLICY='-oCiphers=aes256-gcm@openssh.com,aes256-cbc -oMACs=hmac-sha2-256 -oKexAlgorithms=curve25519-sha256'\n",
    })
    facts, errors = run(root, "sshd")
    assert facts["effective"]["permitrootlogin"] == "yes"  # OpenSSH < 7.0 default
    assert facts["effective"]["ciphers"] == "aes256-gcm@openssh.com,aes256-cbc"
    assert errors[0]["path"] == "/etc/ssh/sshd_config:2" and "without a value" in errors[0]["message"]


def test_sshd_absent_and_include_loop(make_root):
    facts, _ = run(make_root({"/etc/ssh/ssh_config": "Host *\n"}), "sshd")
    assert facts == {"installed": False, "source": None, "effective": None, "version": None,
                     "config_present": False, "servers": []}
    root = make_root({"/usr/sbin/sshd": SSHD_BIN, "/etc/ssh/sshd_config": "Include /etc/ssh/sshd_config\nPort 2222\n"})
    facts, errors = run(root, "sshd")
    assert facts["effective"]["port"].startswith("2222")
    assert any("deeper than" in e["message"] for e in errors)


# ---------------------------------------------------------------- shell
def test_shell_tmout_readonly_wins_and_invalid_values(make_root, tmp_path):
    root = make_root({
        "/etc/profile": "HISTSIZE=1000\nexport HISTSIZE\n",
        "/etc/profile.d/a.sh": "TMOUT=600\nreadonly TMOUT\nexport TMOUT\n",
        "/etc/profile.d/b.sh": "TMOUT=0\n",
        "/etc/bashrc": "if [ $UID -gt 199 ]; then\n   umask 002\nelse\n   umask 027\nfi\n",
    })
    facts, _ = run(root, "shell")
    t = facts["tmout"]
    assert (t["seconds"], t["readonly"], t["exported"], t["source"]) == (600, True, True, "/etc/profile.d/a.sh:1")
    assert t["ignored"][0]["source"] == "/etc/profile.d/b.sh:1"
    assert facts["umask"]["value"] == "002" and facts["umask"]["other"] == 2  # weakest of 002 and 027
    root = make_root({"/etc/profile.d/t.sh": "declare -r TMOUT=300s\n", "/etc/login.defs": "UMASK 077\n",
                      "/etc/pam.d/sshd": "session optional pam_umask.so\n"}, root=tmp_path / "second")
    facts, _ = run(root, "shell")
    assert facts["tmout"]["valid"] is False and facts["tmout"]["seconds"] == 0 and facts["tmout"]["readonly"] is True
    # no umask in the shell files: pam_umask in sshd's session stack applies login.defs UMASK
    assert facts["umask"]["origin"] == "pam_umask" and facts["umask"]["value"] == "077"


# ---------------------------------------------------------------- audit
def test_audit_categories_immutability_and_defaults(make_root):
    root = make_root({
        "/sbin/auditd": b"\x7fELF",
        "/etc/audit/audit.rules": "-w /etc/passwd -p wa -k identity\n",
        "/etc/audit/rules.d/10.rules": "-D\n-b 8192\n-w /etc/passwd -p wa\n-w /etc/shadow -p wa\n-w /etc/group -p wa\n"
                                       "-w /etc/gshadow -p wa\n-a always,exit -F arch=b64 -S unlink -F auid=1001 -k one-user\n",
        "/etc/audit/rules.d/99.rules": "-e 2\n",
        "/etc/audit/auditd.conf": "disk_full_action = IGNORE\n",
    })
    facts, _ = run(root, "audit")
    assert facts["categories"] == ["identity"]  # the per-user unlink rule does not cover every user
    assert facts["immutable"] is True and facts["rule_count"] == 5
    assert facts["conf"]["disk_full_action"] == "ignore" and facts["conf"]["write_logs"] == "yes"
    assert facts["remote"] == []


# ---------------------------------------------------------------- logging
def test_logging_selectors_forwarding_and_retention(make_root):
    root = make_root({
        "/usr/sbin/rsyslogd": b"\x7fELF",
        "/etc/rsyslog.conf": "*.info;mail.none;authpriv.none\t/var/log/messages\nauthpriv.*\t/var/log/secure\n"
                             "*.* @@logs.example:10514\n*.* action(type=\"omfwd\"\n  target=\"10.1.1.1\" port=\"514\" protocol=\"udp\")\n",
        "/etc/logrotate.conf": "weekly\nrotate 4\ninclude /etc/logrotate.d\n",
        "/etc/logrotate.d/syslog": "/var/log/messages\n/var/log/secure\n{\n    rotate 52\n    postrotate\n        kill -HUP 1\n    endscript\n}\n",
    })
    facts, _ = run(root, "logging")
    # authentication events are authpriv's (PAM, sudo, su, login): authpriv.none keeps them out of
    # /var/log/messages, so only /var/log/secure logs them (issue 13: authpriv.none is honoured)
    assert facts["auth_log_files"] == ["/var/log/secure"]
    assert [(r["host"], r["port"], r["protocol"]) for r in facts["remote_targets"]] == [
        ("logs.example", 10514, "tcp"), ("10.1.1.1", 514, "udp")]
    assert facts["forwarding_tls"] is False
    assert facts["logrotate"]["files"]["/var/log/secure"]["retention_days"] == 7 * 53
    assert facts["retention_days_min"] == 371


def test_logging_size_only_rotation_has_no_retention(make_root):
    root = make_root({
        "/usr/sbin/rsyslogd": b"\x7fELF", "/etc/rsyslog.conf": "auth,authpriv.*\t/var/log/auth.log\n",
        "/etc/logrotate.conf": "include /etc/logrotate.d\n",
        "/etc/logrotate.d/rsyslog": "/var/log/auth.log {\n  size 100M\n}\n",
    })
    facts, _ = run(root, "logging")
    assert facts["auth_logged"] is True and facts["retention_days_min"] is None


# ---------------------------------------------------------------- firewall
def test_firewall_empty_nft_table_filters_nothing(make_root):
    root = make_root({
        "/usr/sbin/nft": b"\x7fELF",
        "/etc/nftables.conf": "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter;\n\t}\n}\n",
        "/lib/systemd/system/nftables.service": "[Install]\nWantedBy=sysinit.target\n",
        "/etc/systemd/system/sysinit.target.wants/nftables.service": ("symlink", "/lib/systemd/system/nftables.service"),
    })
    facts, _ = run(root, "firewall")
    assert facts["backends"][0]["rule_count"] == 0 and facts["filtering"] is False


def test_firewall_iptables_policy_and_ssh_source(make_root):
    rules = ("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
             "-A INPUT -i lo -j ACCEPT\n-A INPUT -s 10.0.0.0/24 -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n")
    root = make_root({"/usr/sbin/iptables-save": b"\x7fELF", "/etc/sysconfig/iptables": rules,
                      "/usr/lib/systemd/system/iptables.service": "[Install]\nWantedBy=basic.target\n",
                      "/etc/systemd/system/basic.target.wants/iptables.service": ("symlink", "/usr/lib/systemd/system/iptables.service")})
    facts, _ = run(root, "firewall")
    b = facts["backends"][0]
    assert (b["name"], b["input_policy"], b["rule_count"], b["ssh_source_restricted"]) == ("iptables", "drop", 2, True)
    assert facts["filtering"] is True and facts["ssh_source_restricted"] is True
    # the same rules with the service disabled restrict nothing at boot
    os.unlink(os.path.join(root, "etc/systemd/system/basic.target.wants/iptables.service"))
    facts, _ = run(root, "firewall")
    assert facts["filtering"] is False


def test_firewall_nft_json_and_trusted_zone(make_root):
    from scanner.collect.firewall import parse_nft_json
    ruleset = {"nftables": [
        {"metainfo": {"json_schema_version": 1}},
        {"chain": {"family": "inet", "table": "filter", "name": "input", "type": "filter", "hook": "input", "policy": "accept"}},
        {"rule": {"family": "inet", "table": "filter", "chain": "input",
                  "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 23}},
                           {"drop": None}]}}]}
    assert parse_nft_json(json.dumps(ruleset)) == ("accept", 1, True, False)
    with pytest.raises(ValueError):
        parse_nft_json("{not json")
    root = make_root({"/usr/sbin/firewalld": b"\x7fELF", "/etc/firewalld/firewalld.conf": "DefaultZone=trusted\n",
                      "/usr/lib/firewalld/zones/trusted.xml": '<?xml version="1.0"?>\n<zone target="ACCEPT"><short>Trusted</short></zone>\n',
                      "/usr/lib/systemd/system/firewalld.service": "[Install]\n",
                      "/etc/systemd/system/multi-user.target.wants/firewalld.service": ("symlink", "/usr/lib/systemd/system/firewalld.service")})
    facts, _ = run(root, "firewall")
    assert facts["backends"][0]["input_policy"] == "accept" and facts["filtering"] is False


# ---------------------------------------------------------------- MAC, time, core dumps, sysctl, file modes
def test_mac_selinux_disabled_on_the_kernel_command_line(make_root, tmp_path):
    root = make_root({"/etc/selinux/config": "SELINUX=enforcing\nSELINUXTYPE=targeted\n",
                      "/etc/default/grub": 'GRUB_CMDLINE_LINUX="rhgb quiet selinux=0"\n'})
    facts, _ = run(root, "mac")
    assert facts["selinux"]["config_mode"] == "enforcing" and facts["mode"] == "disabled"
    root = make_root({"/etc/selinux/config": "SELINUX=permissive\n"}, root=tmp_path / "second")
    facts, _ = run(root, "mac")
    assert facts["mode"] == "permissive" and facts["kind"] == "selinux"


def test_time_sync_chrony_servers(make_root):
    root = make_root({"/usr/sbin/chronyd": b"\x7fELF", "/etc/chrony.conf": "pool 2.pool.ntp.org iburst\nserver 10.0.0.1\n",
                      "/usr/lib/systemd/system/chronyd.service": "[Install]\n",
                      "/etc/systemd/system/multi-user.target.wants/chronyd.service": ("symlink", "/usr/lib/systemd/system/chronyd.service")})
    facts, _ = run(root, "time_sync")
    assert facts["enabled"] is True and facts["servers"] == ["2.pool.ntp.org", "10.0.0.1"] and facts["active"] is None


def test_sysctl_precedence_and_core_dumps(make_root):
    root = make_root({
        "/usr/lib/sysctl.d/50-default.conf": "net.ipv4.ip_forward = 1\nnet.ipv4.conf.all.rp_filter = 2\n",
        "/etc/sysctl.d/50-default.conf": "net.ipv4.ip_forward = 0\n",   # same name: /etc wins over /usr/lib
        "/etc/sysctl.d/99-z.conf": "net.ipv4.tcp_syncookies=0\nfs.suid_dumpable = 2\n",
        "/etc/sysctl.conf": "net.ipv4.tcp_syncookies = 1\nkernel.randomize_va_space = 1\nnot a setting\n",
        "/etc/security/limits.d/core.conf": "*  hard  core  0\n",
    })
    facts, errors = run(root, "sysctl")
    assert facts["net"]["ipv4"]["ip_forward"] == 0 and facts["sources"]["net.ipv4.ip_forward"] == "/etc/sysctl.d/50-default.conf:1"
    # the /usr/lib file is shadowed as a whole, so its rp_filter line never applies
    assert facts["net"]["ipv4"]["conf"]["all"]["rp_filter"] == 0
    assert facts["net"]["ipv4"]["tcp_syncookies"] == 1 and facts["kernel"]["randomize_va_space"] == 1
    assert facts["net"]["ipv4"]["conf"]["all"]["accept_redirects"] == 1
    assert facts["sources"]["net.ipv4.conf.all.accept_redirects"] == "kernel default"
    core, _ = run(root, "coredump")
    assert core["hard_core_zero"] is True and core["suid_dumpable"] == 2 and core["disabled"] is False


def test_file_perms_digits_and_target_owner_names(make_root):
    root = make_root({"/etc/passwd": "root:x:0:0::/root:/bin/bash\n", "/etc/group": "root:x:0:\nshadow:x:42:\n",
                      "/etc/shadow": "root:*:1::::::\n"})
    os.chmod(os.path.join(root, "etc/shadow"), 0o640)
    if os.geteuid() == 0:
        os.chown(os.path.join(root, "etc/shadow"), 0, 42)
    facts, _ = run(root, "file_perms")
    shadow = [f for f in facts["files"] if f["path"] == "/etc/shadow"][0]
    assert (shadow["mode"], shadow["user"], shadow["group"], shadow["other"], shadow["kind"]) == ("0640", 6, 4, 0, "account-secret")
    if os.geteuid() == 0:
        assert shadow["group_name"] == "shadow"
    assert "/etc/gshadow" in facts["missing"]


# ---------------------------------------------------------------- live host
def test_live_collectors_on_this_host_never_raise():
    from scanner.collect import collect_facts
    names = ["login_defs", "pam", "accounts", "sshd", "shell", "audit", "logging", "file_perms", "mac",
             "firewall", "time_sync", "sysctl", "coredump"]
    ctx = Context(root="/", live=True)
    facts = collect_facts(ctx, only=names)
    for name in names:
        assert facts["collection"][name]["status"] in ("ok", "unknown"), (name, facts["collection"][name])
    # live: the boot-time value stays the tree; the running value is kept beside it
    assert facts["sysctl"]["source"].startswith("boot-time configuration")
    with open("/proc/sys/kernel/randomize_va_space") as fh:
        assert facts["sysctl"]["live"]["kernel.randomize_va_space"] == int(fh.read())
    fw = facts["firewall"]
    if not fw["backends"]:
        # netfilter in the kernel without any ruleset is not a firewall
        assert fw["filtering"] is False


# ---------------------------------------------------------------- sudo
def test_sudo_includedir_nopasswd_and_malformed(make_root):
    root = make_root({
        "/etc/sudoers": "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n"
                        "Cmnd_Alias SHUT = /sbin/shutdown\nops ALL = NOPASSWD: SHUT\nthis is not sudoers\n@includedir /etc/sudoers.d\n",
        "/etc/sudoers.d/90-cloud-init-users": "admin ALL=(ALL) NOPASSWD:ALL\n",
        "/etc/sudoers.d/README.dpkg-old": "evil ALL=(ALL) NOPASSWD: ALL\n",   # has a '.': sudo skips it
        "/etc/sudoers.d/50-mixed": "deploy ALL=(ALL) NOPASSWD: /usr/bin/systemctl, PASSWD: ALL\n",
    })
    facts, errors = run(root, "sudo")
    assert facts["files"] == ["/etc/sudoers", "/etc/sudoers.d/50-mixed", "/etc/sudoers.d/90-cloud-init-users"]
    assert facts["nopasswd_all"] == ["admin"]
    grants = dict((g["principal"], g) for g in facts["grants"])
    assert grants["ops"]["nopasswd"] is True and grants["ops"]["all_commands"] is False
    assert grants["deploy"]["nopasswd"] is False
    assert errors[0]["path"] == "/etc/sudoers:6"
    root = make_root({"/etc/sudoers": "Defaults !authenticate\n%wheel ALL=(ALL) ALL\n"}, root=None)
    facts, _ = run(root, "sudo")
    assert facts["nopasswd_all"] == ["%wheel"]


def test_sudo_aliases_tags_and_per_user_defaults(make_root):
    root = make_root({"/etc/sudoers": "\n".join([
        "User_Alias ADMINS = alice, bob : OPS = %ops, carol",
        "Cmnd_Alias EVERYTHING = ALL",
        "Cmnd_Alias SHELLS = /bin/sh, /bin/bash",
        "ADMINS ALL = (ALL) NOPASSWD: EVERYTHING",                 # ALL through an alias
        "carol ALL = (root) PASSWD: /bin/ls, NOPASSWD: ALL",        # the tag changes mid-list
        "dave ALL = (root) NOPASSWD: /usr/bin/systemctl, PASSWD: ALL",
        "erin ALL = (ALL) ALL, !SHELLS",
        "Defaults:frank !authenticate",
        "frank ALL = (ALL) ALL",                                    # password-less for frank only
        "grace ALL = (ALL) ALL",
        "heidi ALL = LATE",                                         # an alias defined after its use
        "Cmnd_Alias LATE = ALL",
        "Defaults:heidi !authenticate",
        ""])})
    facts, errors = run(root, "sudo")
    assert errors == []
    g = dict((x["principal"], x) for x in facts["grants"])
    assert g["ADMINS"]["members"] == ["alice", "bob"] and g["ADMINS"]["all_commands"] and g["ADMINS"]["nopasswd"]
    assert [e["command"] for e in g["ADMINS"]["expanded"]] == ["ALL"]
    assert g["carol"]["all_commands"] and g["carol"]["nopasswd"]
    assert [(e["command"], e["nopasswd"]) for e in g["carol"]["expanded"]] == [("/bin/ls", False), ("ALL", True)]
    assert g["dave"]["all_commands"] and g["dave"]["nopasswd"] is False  # ALL needs the password
    assert [e["command"] for e in g["erin"]["expanded"]] == ["ALL", "!/bin/sh", "!/bin/bash"]
    assert g["frank"]["nopasswd"] is True and g["grace"]["nopasswd"] is False
    assert g["heidi"]["all_commands"] and g["heidi"]["nopasswd"]
    assert sorted(facts["nopasswd_all"]) == ["ADMINS", "carol", "frank", "heidi"]

    from scanner.pipeline import scan_report
    status = {r["rule_id"]: r for r in scan_report(root, profile="mlps-l3")["results"]}
    failing = [i["key"] for i in status["mlps.ac.sudo-password-required"]["items"] if i["status"] == "fail"]
    assert status["mlps.ac.sudo-password-required"]["status"] == "fail"
    # dave: NOPASSWD /usr/bin/systemctl as root is a root shell too (its pager's "!sh")
    assert sorted(failing) == ["ADMINS", "carol", "dave", "frank", "heidi"]
    assert g["dave"]["nopasswd_root_shell"] == ["/usr/bin/systemctl"] and g["grace"]["nopasswd_root_shell"] == []


# ---------------------------------------------------------------- boot loader
RHEL_01_USERS = ('### BEGIN /etc/grub.d/01_users ###\nif [ -f ${prefix}/user.cfg ]; then\n  source ${prefix}/user.cfg\n'
                 '  if [ -n "${GRUB2_PASSWORD}" ]; then\n    set superusers="root"\n    export superusers\n'
                 '    password_pbkdf2 root ${GRUB2_PASSWORD}\n  fi\nfi\n')


def test_bootloader_password_needs_user_cfg_or_a_real_hash(make_root, tmp_path):
    root = make_root({"/boot/grub2/grub.cfg": RHEL_01_USERS})
    facts, _ = run(root, "bootloader")
    assert facts["loader"] == "grub2" and facts["password"] is False   # the stock block alone protects nothing
    root = make_root({"/boot/grub2/user.cfg": "GRUB2_PASSWORD=grub.pbkdf2.sha512.10000.AA.BB\n"}, root=None)
    facts, _ = run(root, "bootloader")
    assert facts["password"] is True and facts["source"] == "/boot/grub2/user.cfg"
    root = make_root({"/boot/grub/grub.cfg": "set superusers=\"admin\"\npassword_pbkdf2 admin grub.pbkdf2.sha512.1.A.B\n"},
                     root=tmp_path / "deb")
    facts, _ = run(root, "bootloader")
    assert facts["password"] is True and facts["source"] == "/boot/grub/grub.cfg:2"
    facts, _ = run(make_root({"/etc/hostname": "c\n"}, root=tmp_path / "container"), "bootloader")
    assert facts["password"] is None


def test_sshd_hostkey_algorithm_defaults_follow_the_version(make_root, tmp_path):
    root = make_root({"/usr/sbin/sshd": b"OpenSSH_8.0p1\x00", "/etc/ssh/sshd_config": "ChallengeResponseAuthentication no\n"})
    facts, _ = run(root, "sshd")
    assert facts["effective"]["hostkeyalgorithms"].endswith(",ssh-rsa")   # before 8.8 ssh-rsa was a default
    assert facts["effective"]["kbdinteractiveauthentication"] == "no"      # the old keyword is the same setting
    root = make_root({"/usr/sbin/sshd": b"OpenSSH_9.6p1\x00",
                      "/etc/ssh/sshd_config": "PubkeyAcceptedKeyTypes +ssh-rsa\n"}, root=tmp_path / "new")
    facts, _ = run(root, "sshd")
    assert "ssh-rsa" not in facts["effective"]["hostkeyalgorithms"].split(",")
    assert facts["effective"]["pubkeyacceptedalgorithms"].endswith(",ssh-rsa")


def test_sshd_t_output_is_parsed_with_repeated_keywords():
    from scanner.collect.sshd import from_sshd_t, numbers
    out = ("port 22\nport 2222\naddressfamily any\nlistenaddress [::]:22\nlistenaddress 0.0.0.0:22\n"
           "permitrootlogin without-password\nmaxauthtries 4\nclientaliveinterval 300\nclientalivecountmax 2\n"
           "hostkey /etc/ssh/ssh_host_rsa_key\nhostkey /etc/ssh/ssh_host_ed25519_key\n"
           "ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com\nauthenticationmethods any\n")
    effective, multi = from_sshd_t(out)
    assert effective["port"] == "22,2222" and multi["hostkey"][1].endswith("ed25519_key")
    # sshd -T prints the older synonym; the facts say prohibit-password live and offline alike
    assert effective["permitrootlogin"] == "prohibit-password"
    assert numbers(effective)["idle_timeout"] == 600 and numbers(effective)["maxauthtries"] == 4


def test_firewall_ufw_enabled_with_default_deny(make_root, tmp_path):
    files = {"/etc/ufw/ufw.conf": "# /etc/ufw/ufw.conf\nENABLED=yes\nLOGLEVEL=low\n",
             "/etc/default/ufw": 'IPV6=yes\nDEFAULT_INPUT_POLICY="DROP"\nDEFAULT_OUTPUT_POLICY="ACCEPT"\n',
             "/etc/ufw/user.rules": "*filter\n:ufw-user-input - [0:0]\n"
                                    "-A ufw-user-input -p tcp --dport 22 -s 10.0.0.0/8 -j ACCEPT\nCOMMIT\n"}
    facts, _ = run(make_root(files), "firewall")
    b = facts["backends"][0]
    assert (b["name"], b["enabled"], b["input_policy"], b["rule_count"]) == ("ufw", True, "drop", 1)
    assert facts["filtering"] is True and facts["ssh_source_restricted"] is True
    files["/etc/ufw/ufw.conf"] = "ENABLED=no\n"
    facts, _ = run(make_root(files, root=tmp_path / "off"), "firewall")
    assert facts["filtering"] is False


def test_pam_tally2_named_but_not_installed(make_root):
    root = make_root({"/etc/pam.d/login": "auth required pam_tally2.so deny=5 onerr=fail\nauth sufficient pam_unix.so\n",
                      "/usr/lib64/security/pam_faillock.so": b"\x7fELF", "/usr/lib64/security/pam_unix.so": b"\x7fELF"})
    facts, _ = run(root, "pam")
    assert facts["lockout"]["module"] == "pam_tally2" and facts["lockout"]["services"] == ["login"]
    assert facts["lockout"]["module_on_disk"] is False


def test_audit_boot_parameter_offline(make_root):
    root = make_root({"/sbin/auditd": b"\x7fELF", "/etc/audit/auditd.conf": "write_logs = yes\n",
                      "/etc/default/grub": 'GRUB_CMDLINE_LINUX="rd.lvm.lv=rl/root audit=1 audit_backlog_limit=8192"\n'})
    facts, _ = run(root, "audit")
    assert facts["boot_audit"] is True and facts["boot_audit_source"] == "/etc/default/grub:1"


def test_unreadable_shadow_makes_account_rules_error_not_pass(make_root):
    from scanner.collect import collect_facts
    from scanner.engine import load_ruleset
    from scanner.engine.evaluator import evaluate_rule
    root = make_root({"/etc/passwd": "root:x:0:0::/root:/bin/bash\nguest:x:1000:1000::/home/guest:/bin/bash\n",
                      "/etc/group": "root:x:0:\n", "/etc/shadow/README": "a directory where the file should be\n"})
    ctx = Context(root=root, live=False)
    facts = collect_facts(ctx, only=["accounts"])
    acc = facts["accounts"]
    assert acc["shadow_readable"] is None and acc["empty_password"] is None and acc["weak_hashes"] is None
    assert any(e["path"] == "/etc/shadow" for e in facts["errors"])
    ruleset = load_ruleset(use_cache=False)
    for rid in ("mlps.ia.no-empty-passwords", "mlps.ia.password-max-age-accounts", "mlps.ac.stale-passwords",
                "mlps.ac.default-accounts-disabled", "mlps.ia.no-weak-password-hashes"):
        rule = ruleset.get(rid)
        result = evaluate_rule(rule, facts, {"components": []}, params=dict(rule.get("params") or {}), live=False)
        assert result["status"] == "error", (rid, result["status"])


def test_home_files_only_login_accounts(make_root):
    root = make_root({"/etc/passwd": "root:x:0:0::/root:/bin/bash\nsvc:x:990:990::/var/lib/svc:/sbin/nologin\n"
                                     "ann:x:1000:1000::/home/ann:/bin/bash\n",
                      "/etc/group": "root:x:0:\n", "/root/.rhosts": "old root\n", "/var/lib/svc/.netrc": "x\n",
                      "/home/ann/.pgpass": "h:5432:*:ann:pw\n"})
    os.chmod(os.path.join(root, "home/ann/.pgpass"), 0o644)
    facts, _ = run(root, "home_files")
    assert facts["homes_checked"] == 2
    got = sorted((f["path"], f["mode"], f["group"], f["other"]) for f in facts["files"])
    assert got == [("/home/ann/.pgpass", "0644", 4, 4), ("/root/.rhosts", "0644", 4, 4)]


def test_sshd_unknown_version_leaves_changed_defaults_unknown_and_rules_do_not_pass(make_root):
    """An offline root whose sshd binary names no version (stripped, patched): the defaults that
    changed between OpenSSH versions (ssh-rsa until 8.8, PermitRootLogin yes until 7.0) are not
    guessed, so the rules on them cannot pass on a guess."""
    root = make_root({"/usr/sbin/sshd": b"\x7fELF stripped, no version string\x00",
                      "/etc/ssh/sshd_config": "UsePAM yes\nHostKeyAlgorithms -ecdsa*\n"})
    facts, errors = run(root, "sshd")
    eff = facts["effective"]
    assert facts["version"] is None
    assert eff["hostkeyalgorithms"] is None and eff["permitrootlogin"] is None
    assert eff["pubkeyacceptedalgorithms"] is None
    assert eff["ciphers"] == "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr," \
                             "aes128-gcm@openssh.com,aes256-gcm@openssh.com"  # unchanged across versions
    assert any("version not found" in e["message"] and "hostkeyalgorithms" in e["message"] for e in errors)

    from scanner.pipeline import scan_report
    report = scan_report(root, profile="all")
    status = {r["rule_id"]: r["status"] for r in report["results"]}
    assert status["crypto.ssh.weak-hostkey-algorithms"] not in ("pass", "not_applicable")
    # the same root with the version known: pre-8.8 defaults accept ssh-rsa -> fail; 9.x -> pass
    for version, expected in ((b"OpenSSH_7.4p1", "fail"), (b"OpenSSH_9.6p1", "pass")):
        root2 = make_root({"/usr/sbin/sshd": b"\x7fELF " + version + b"\x00", "/etc/ssh/sshd_config": "UsePAM yes\n"})
        status = {r["rule_id"]: r["status"] for r in scan_report(root2, profile="all")["results"]}
        assert status["crypto.ssh.weak-hostkey-algorithms"] == expected, version


def test_sshd_t_output_of_old_openssh_uses_the_current_keyword_names():
    from scanner.collect.sshd import from_sshd_t
    # OpenSSH 7.4 (CentOS 7) `sshd -T` prints the pre-8.5 names
    effective, _multi = from_sshd_t("port 22\npubkeyacceptedkeytypes ssh-ed25519,ssh-rsa\n"
                                    "hostbasedacceptedkeytypes ssh-rsa\nchallengeresponseauthentication yes\n")
    assert effective["pubkeyacceptedalgorithms"] == "ssh-ed25519,ssh-rsa"
    assert effective["hostbasedacceptedalgorithms"] == "ssh-rsa"
    assert effective["kbdinteractiveauthentication"] == "yes"


def test_corrupt_login_records_and_bad_sudo_aliases_are_reported_not_raised(make_root, tmp_path):
    passwd = "alice:x:1000:1000::/home/alice:/bin/bash\n"
    shadow = "alice:$6$a$b:19000:0:99999:7:::\n"
    root = make_root({"/etc/passwd": passwd, "/etc/shadow": shadow,
                      "/var/lib/lastlog/lastlog2.db": b"not a database at all" * 20,
                      "/var/log/lastlog": b"\x01\x02"})  # truncated: shorter than one record
    facts, _ = run(root, "accounts")
    # the unreadable lastlog2 is passed over; the truncated lastlog has no record for UID 1000
    assert facts["login_records"] == "/var/log/lastlog"
    assert facts["users"][0]["last_login_on"] == "never"

    root = make_root({"/etc/sudoers": "Cmnd_Alias bad name = /bin/sh\nUser_Alias OK = alice\nOK ALL = ALL\n"},
                     root=tmp_path / "sudo")
    facts, errors = run(root, "sudo")
    assert any("Cmnd_Alias" in e["message"] and e["path"] == "/etc/sudoers:1" for e in errors)
    assert facts["grants"][0]["members"] == ["alice"]
