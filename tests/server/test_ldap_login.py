"""Directory login (LDAP) against a real OpenLDAP server started by the test on loopback ports, with a TLS
certificate made here: group -> role and org mapping, the failed-login lock, LDAP injection, TLS checks
(ldaps, StartTLS, a wrong CA, a certificate for another name), timeouts, local accounts beside directory
ones; on SQLite and PostgreSQL, and through a real aggregator process (API and login page)."""
from __future__ import annotations

import json
import os
import re
import socket
import threading
import time

import pytest
from sqlalchemy import select

from ldap_support import SUFFIX, start_slapd
from server_support import ADMIN, make_server

from scanner.errors import DataError
from scanner.server.access import accounts
from scanner.server.access.directory import LOCAL_HASH, Directory
from scanner.server.errors import ApiError
from scanner.server.store import db
from scanner.server.store.scope import Scope

EVERYTHING = Scope.everything()


class Policy(object):
    login_max_failures = 3
    login_ip_max_failures = 0
    login_window = 600
    login_lock_seconds = 600
    session_ttl = 3600
    session_idle = 600
    login_rate_per_client = 0


@pytest.fixture(scope="module")
def slapd(tmp_path_factory):
    s = start_slapd(tmp_path_factory)
    s.add_user("alice", "Alice-directory-pw-1", ["xcscan-admins"])
    s.add_user("bob", "Bob-directory-pw-1", ["finance-officers"])
    s.add_user("carol", "Carol-directory-pw-1", ["tax-auditors", "health-auditors"])
    s.add_user("dave", "Dave-directory-pw-1", ["printer-users"])
    s.add_user("erin", "Erin-directory-pw-1", ["finance-officers"])
    s.add_user("frank", "Frank-directory-pw-1", ["finance-officers"])
    s.add_user("gina", "Gina-directory-pw-1", ["finance-officers"])
    s.add_user("admin", "Directory-admin-pw-1", ["xcscan-admins"])
    s.add_user("hal", "Hal-directory-pw-1", ["finance-officers"])
    yield s
    s.stop()


def login(engine, directory, name, password, ip="10.0.0.7"):
    try:
        return 200, accounts.login(engine, name, password, ip=ip, policy=accounts.LoginPolicy(Policy),
                                   directory=directory)
    except ApiError as exc:
        return exc.status, exc


def audit_actions(engine, action):
    with engine.connect() as conn:
        return [json.loads(r.detail) if r.detail else None
                for r in conn.execute(select(db.audit_log.c.detail).where(db.audit_log.c.action == action))]


def test_groups_give_role_and_org_subtrees(db_engine, slapd):
    d = Directory(slapd.config(), slapd.base)
    status, s = login(db_engine, d, "bob", "Bob-directory-pw-1")
    assert status == 200 and s["role"] == "officer" and s["orgs"] == ["/gov/finance"]
    status, s = login(db_engine, d, "alice", "Alice-directory-pw-1")
    assert status == 200 and s["role"] == "admin" and s["orgs"] == ["/"]
    # two groups of the same role: the union of their subtrees
    status, s = login(db_engine, d, "carol", "Carol-directory-pw-1")
    assert status == 200 and s["role"] == "auditor" and s["orgs"] == ["/gov/finance/tax", "/gov/health"]
    # the name is the directory's: another case logs in to the same account
    status, s = login(db_engine, d, "BOB", "Bob-directory-pw-1")
    assert status == 200 and s["username"] == "bob"
    with db_engine.connect() as conn:
        rows = conn.execute(select(db.users.c.username, db.users.c.password_hash, db.users.c.role)).all()
    made = {r.username: r for r in rows}
    assert set(made) == {"alice", "bob", "carol"}
    assert all(r.password_hash == LOCAL_HASH for r in rows), "no password or hash of a directory user is stored"
    # the session works like a local one: its scope is the mapped subtree
    user = accounts.session_user(db_engine, s["token"])
    assert user["role"] == "officer" and user["scope"].covers("/gov/finance/tax") and not user["scope"].covers("/gov/health")
    assert [d_["via"] for d_ in audit_actions(db_engine, "user.add")] == ["ldap"] * 3
    assert any(a == {"role": "officer", "via": "ldap"} for a in audit_actions(db_engine, "login"))


def test_member_of_attribute_alone_as_in_active_directory(db_engine, slapd):
    d = Directory(slapd.config(group_base=""), slapd.base)   # groups from the user's memberOf only
    assert d.lookup("carol")[2] == [slapd.group_dn("health-auditors"), slapd.group_dn("tax-auditors")]
    status, s = login(db_engine, d, "carol", "Carol-directory-pw-1")
    assert status == 200 and s["orgs"] == ["/gov/finance/tax", "/gov/health"]


def test_wrong_passwords_lock_the_name_like_local_accounts(db_engine, slapd):
    d = Directory(slapd.config(), slapd.base)
    for name in ("erin", "nobody-in-the-directory"):
        assert [login(db_engine, d, name, "wrong-password-x")[0] for _ in range(3)] == [401, 401, 401], name
        # locked now: even the right password is refused, without asking the directory
        assert login(db_engine, d, name, slapd.passwords.get(name, "x"))[0] == 429
    assert len(audit_actions(db_engine, "login.locked")) == 2
    assert all(a == {"via": "ldap"} for a in audit_actions(db_engine, "login.failed"))
    assert accounts.unlock_login(db_engine, "erin", scope=EVERYTHING) is True
    assert login(db_engine, d, "erin", "Erin-directory-pw-1")[0] == 200


def test_empty_password_is_not_an_anonymous_bind(db_engine, slapd):
    d = Directory(slapd.config(), slapd.base)
    assert login(db_engine, d, "bob", "")[0] == 401
    with pytest.raises(Exception) as exc:
        d.authenticate("bob", "")
    assert type(exc.value).__name__ == "BadCredentials"


def test_filter_values_are_escaped(db_engine, slapd):
    d = Directory(slapd.config(), slapd.base)
    # unescaped, each of these filters would match bob (or everyone)
    for probe in ("*", "b*", "bo*", "*)(uid=*", "bob)(|(uid=*", "\\2a"):
        assert d.lookup(probe) is None, probe
    assert d.lookup("bob")[0] == "bob"
    # through login: a typed wildcard is never a directory search for everyone
    for probe in ("*", "b*", "bob)(uid=*"):
        assert login(db_engine, d, probe, "Bob-directory-pw-1")[0] == 401, probe
    with db_engine.connect() as conn:
        assert conn.execute(select(db.users.c.username)).all() == []


def test_group_changes_apply_at_the_next_login_and_no_group_means_no_login(db_engine, slapd):
    for g in ("tax-auditors", "xcscan-admins"):
        if slapd.group_dn(g) in Directory(slapd.config(), slapd.base).lookup("frank")[2]:
            slapd.leave("frank", g)
    if slapd.group_dn("finance-officers") not in Directory(slapd.config(), slapd.base).lookup("frank")[2]:
        slapd.join("frank", "finance-officers")
    d = Directory(slapd.config(), slapd.base)
    status, first = login(db_engine, d, "frank", "Frank-directory-pw-1")
    assert status == 200 and first["role"] == "officer"
    slapd.leave("frank", "finance-officers")
    slapd.join("frank", "tax-auditors")
    status, s = login(db_engine, d, "frank", "Frank-directory-pw-1")
    assert status == 200 and s["role"] == "auditor" and s["orgs"] == ["/gov/finance/tax"]
    assert accounts.session_user(db_engine, first["token"])["role"] == "auditor"  # the account changed, not a copy
    assert audit_actions(db_engine, "user.directory_update")[-1]["was"] == {"role": "officer", "orgs": ["/gov/finance"]}
    # out of every mapped group: refused, and the sessions it had end now
    slapd.leave("frank", "tax-auditors")
    status, exc = login(db_engine, d, "frank", "Frank-directory-pw-1")
    assert status == 403 and exc.code == "no_role"
    assert accounts.session_user(db_engine, s["token"]) is None
    assert audit_actions(db_engine, "login.no_role")[-1]["sessions_ended"] == 2
    status, exc = login(db_engine, d, "dave", "Dave-directory-pw-1")   # in an unmapped group only
    assert status == 403 and exc.code == "no_role"
    # a right password that cannot log in does not count towards the lock
    with db_engine.connect() as conn:
        assert conn.execute(select(db.login_throttle.c.failures).where(
            db.login_throttle.c.key == "user:dave")).scalar() in (None, 0)
    slapd.join("frank", "finance-officers")


def test_local_accounts_come_first_and_are_never_taken_over(db_engine, slapd):
    d = Directory(slapd.config(), slapd.base)
    accounts.add_user(db_engine, "admin", "Local-admin-password-7", "admin", scope=EVERYTHING)
    # "admin" is also in the directory (as an admin): the local account decides, with its own password
    assert login(db_engine, d, "admin", "Directory-admin-pw-1")[0] == 401
    status, s = login(db_engine, d, "admin", "Local-admin-password-7")
    assert status == 200 and s["role"] == "admin"
    # a local account whose name differs only in case: the directory's "Admin" would be it; refused
    status, exc = login(db_engine, d, "ADMIN", "Directory-admin-pw-1")
    assert status == 403 and exc.code == "name_taken"
    with db_engine.connect() as conn:
        assert conn.execute(select(db.users.c.password_hash).where(db.users.c.username == "admin")).scalar() != LOCAL_HASH


def test_disabled_directory_account_stays_off_and_has_no_password_here(db_engine, slapd):
    d = Directory(slapd.config(), slapd.base)
    assert login(db_engine, d, "gina", "Gina-directory-pw-1")[0] == 200
    accounts.set_disabled(db_engine, "gina", True, scope=EVERYTHING)
    assert login(db_engine, d, "gina", "Gina-directory-pw-1")[0] == 401
    with pytest.raises(ApiError) as exc:
        accounts.reset_password(db_engine, "gina", "A-new-local-password-5", scope=EVERYTHING)
    assert exc.value.status == 409 and exc.value.code == "directory_user"
    accounts.set_disabled(db_engine, "gina", False, scope=EVERYTHING)
    assert login(db_engine, d, "gina", "Gina-directory-pw-1")[0] == 200
    # with directory login switched off, the account cannot log in at all (its hash never verifies)
    assert login(db_engine, None, "gina", "Gina-directory-pw-1")[0] == 401
    assert login(db_engine, None, "gina", LOCAL_HASH)[0] == 401


def test_start_tls_and_refused_certificates(db_engine, slapd):
    plain = "ldap://127.0.0.1:%d" % slapd.port
    d = Directory(slapd.config(url=plain, start_tls=True), slapd.base)
    assert login(db_engine, d, "hal", "Hal-directory-pw-1")[0] == 200
    accounts.add_user(db_engine, "breakglass", "Break-glass-password-3", "admin", scope=EVERYTHING)
    cases = {
        "another CA": (slapd.config(ca_file=slapd.other_ca), "certificate verify failed"),
        "another CA, StartTLS": (slapd.config(url=plain, start_tls=True, ca_file=slapd.other_ca),
                                 "certificate verify failed"),
        # the certificate names 127.0.0.1 only
        "another name": (slapd.config(url="ldaps://localhost:%d" % slapd.tls_port),
                         "mismatch"),
    }
    for why, (cfg, error) in cases.items():
        bad = Directory(cfg, slapd.base)
        for _ in range(4):   # more than the lock limit: the directory being unusable locks nobody
            status, exc = login(db_engine, bad, "hal", "Hal-directory-pw-1")
            assert status == 503 and exc.code == "directory_unavailable", why
        assert error in audit_actions(db_engine, "login.directory_unavailable")[-1]["error"], why
        # local accounts still log in
        assert login(db_engine, bad, "breakglass", "Break-glass-password-3")[0] == 200, why
    assert login(db_engine, d, "hal", "Hal-directory-pw-1")[0] == 200


def test_plain_ldap_without_start_tls_is_refused_at_start(slapd, tmp_path):
    with pytest.raises(DataError) as exc:
        Directory(slapd.config(url="ldap://127.0.0.1:%d" % slapd.port), str(tmp_path))
    assert "clear text" in str(exc.value)
    for bad, words in (({"user_filter": "(uid=bob)"}, "{username}"),
                       ({"groups": [{"group": "cn=x," + SUFFIX, "role": "root"}]}, "role must be one of"),
                       ({"groups": [{"group": "cn=x," + SUFFIX, "role": "admin", "orgs": "/gov"}]}, "org paths"),
                       ({"bind_password_file": str(tmp_path / "missing")}, "cannot read"),
                       ({"timeout": 0}, "timeout"), ({"colour": "blue"}, "unknown key")):
        with pytest.raises(DataError) as exc:
            Directory(slapd.config(**bad), str(tmp_path))
        assert words in str(exc.value), bad


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers (a hung directory)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held, stop = [], threading.Event()

    def accept():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                pass
    th = threading.Thread(target=accept, daemon=True)
    th.start()
    yield sock.getsockname()[1]
    stop.set()
    th.join(2)
    for c in held:
        c.close()
    sock.close()


def test_a_hung_directory_times_out_and_the_next_server_is_tried(db_engine, slapd, silent_server):
    hung = "ldaps://127.0.0.1:%d" % silent_server
    d = Directory(slapd.config(url=hung, timeout=1), slapd.base)
    started = time.monotonic()
    status, exc = login(db_engine, d, "bob", "Bob-directory-pw-1")
    assert status == 503 and exc.code == "directory_unavailable"
    assert time.monotonic() - started < 4, "a hung directory must not hold a login longer than its timeout"
    d = Directory(slapd.config(url=[hung, "ldaps://127.0.0.1:%d" % slapd.tls_port], timeout=1), slapd.base)
    started = time.monotonic()
    assert login(db_engine, d, "bob", "Bob-directory-pw-1")[0] == 200
    assert time.monotonic() - started < 8


def test_wrong_service_password_is_unavailable_not_a_user_failure(db_engine, slapd, tmp_path):
    pw = tmp_path / "bad.pw"
    pw.write_text("not-the-service-password\n")
    d = Directory(slapd.config(bind_password_file=str(pw)), slapd.base)
    status, exc = login(db_engine, d, "bob", "Bob-directory-pw-1")
    assert status == 503 and exc.code == "directory_unavailable"
    assert "service account" in audit_actions(db_engine, "login.directory_unavailable")[-1]["error"]


@pytest.fixture(scope="module")
def ldap_server(tmp_path_factory, slapd):
    srv = make_server(tmp_path_factory, "sqlite", settings={"ldap": slapd.config(), "login_max_failures": 3})
    yield srv
    srv.stop()


def test_real_server_api_and_login_page(ldap_server, slapd):
    with ldap_server.client() as c:
        resp = c.post("/api/v1/session", json={"username": "bob", "password": "Bob-directory-pw-1"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["role"] == "officer" and resp.json()["orgs"] == ["/gov/finance"]
        who = c.get("/api/v1/hosts", headers={"Authorization": "Bearer " + resp.json()["token"]})
        assert who.status_code == 200, who.text
        # the local admin (break-glass) still logs in; the directory's "admin" password does not
        assert c.post("/api/v1/session", json={"username": ADMIN[0], "password": ADMIN[1]}).status_code == 200
        assert c.post("/api/v1/session", json={"username": "admin", "password": "Directory-admin-pw-1"}).status_code == 401
        # the login page: a directory user gets a session cookie; one without a mapped group is told so
        page = c.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        ok = c.post("/login", data={"username": "carol", "password": "Carol-directory-pw-1", "csrf_token": csrf,
                                    "next": "/"}, follow_redirects=False)
        assert ok.status_code == 303 and "xcscan_session" in ok.headers.get("set-cookie", "")
        page = c.get("/login", headers={"Accept-Language": "zh-CN"})
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        no = c.post("/login", data={"username": "dave", "password": "Dave-directory-pw-1", "csrf_token": csrf,
                                    "next": "/"}, headers={"Accept-Language": "zh-CN"}, follow_redirects=False)
        assert no.status_code == 403 and "不属于任何已授予角色的组" in no.text


def test_serve_refuses_a_broken_ldap_setting(tmp_path_factory, slapd):
    srv = make_server(tmp_path_factory, "sqlite")
    srv.stop()
    cfg = os.path.join(srv.data_dir, "server.json")
    with open(cfg, encoding="utf-8") as fh:
        values = json.load(fh)
    values["ldap"] = slapd.config(url="ldap://127.0.0.1:%d" % slapd.port)
    with open(cfg, "w", encoding="utf-8") as fh:
        json.dump(values, fh)
    proc = srv.cli("server", "serve", "--port", "0", check=False)
    assert proc.returncode == 1 and "clear text" in proc.stderr, proc.stderr


def test_ldap_check_command(slapd, tmp_path):
    from server_support import run_cli
    data = tmp_path / "data"
    data.mkdir()
    (data / "server.json").write_text(json.dumps({"ldap": slapd.config()}))
    out = run_cli(["server", "ldap", "check", "--data-dir", str(data), "--user", "carol"])
    assert "bound over TLS" in out.stdout and "uid=carol,ou=people," + SUFFIX in out.stdout
    assert "role auditor, org subtrees /gov/finance/tax, /gov/health" in out.stdout
    no_role = run_cli(["server", "ldap", "check", "--data-dir", str(data), "--user", "dave"], check=False)
    assert no_role.returncode == 3 and "no mapped group" in no_role.stdout
    missing = run_cli(["server", "ldap", "check", "--data-dir", str(data), "--user", "b*"], check=False)
    assert missing.returncode == 1 and "no single directory entry" in missing.stderr
    (data / "server.json").write_text(json.dumps({"ldap": slapd.config(ca_file=slapd.other_ca)}))
    bad = run_cli(["server", "ldap", "check", "--data-dir", str(data)], check=False)
    assert bad.returncode == 1 and "certificate verify failed" in bad.stderr and "Traceback" not in bad.stderr
