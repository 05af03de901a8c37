"""A real OpenLDAP server (Debian's slapd) for directory-login tests: started on loopback ports with a
TLS certificate made for the test (ldaps and StartTLS), filled through LDAP as its root DN, stopped after.
Without root or slapd it skips, but under CI=true (where .ci/run installs slapd) it fails."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

from server_support import IN_CI, free_port

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=example,dc=test"
ROOT_DN = "cn=root," + SUFFIX
SVC_DN = "cn=xcscan-svc,ou=services," + SUFFIX
PEOPLE = "ou=people," + SUFFIX
GROUPS = "ou=groups," + SUFFIX


def need(condition, why):
    if not condition:
        if IN_CI:
            pytest.fail(why + " (required under CI=true; .ci/run installs slapd and ldap-utils)")
        pytest.skip(why)


class Slapd(object):
    def __init__(self, base):
        from scanner.server.pki import make_pki
        self.base = str(base)
        os.makedirs(os.path.join(self.base, "db"))
        tls = os.path.join(self.base, "tls")
        os.makedirs(tls)
        make_pki(tls, ["127.0.0.1"])   # the server certificate names only 127.0.0.1
        self.ca = os.path.join(tls, "ca.pem")
        other = os.path.join(self.base, "other-ca")
        os.makedirs(other)
        make_pki(other, ["127.0.0.1"])
        self.other_ca = os.path.join(other, "ca.pem")    # a CA that did not sign the server's certificate
        self.root_pw = "root-" + os.urandom(8).hex()
        self.svc_pw = "svc-" + os.urandom(8).hex()
        self.port = free_port()        # ldap:// (StartTLS)
        self.tls_port = free_port()    # ldaps://
        conf = os.path.join(self.base, "slapd.conf")
        with open(conf, "w") as fh:
            fh.write("""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {base}/slapd.pid
argsfile {base}/slapd.args
TLSCACertificateFile {tls}/ca.pem
TLSCertificateFile {tls}/server.pem
TLSCertificateKeyFile {tls}/server.key
database mdb
maxsize 33554432
suffix "{suffix}"
rootdn "{root}"
rootpw {rootpw}
directory {base}/db
overlay memberof
access to attrs=userPassword by anonymous auth by self write by * none
access to * by dn.exact="{svc}" read by self read by * none
""".format(base=self.base, tls=tls, suffix=SUFFIX, root=ROOT_DN, rootpw=self.root_pw, svc=SVC_DN))
        self.log = open(os.path.join(self.base, "slapd.log"), "w")
        self.proc = subprocess.Popen(
            [SLAPD, "-d", "0", "-f", conf, "-h", "ldap://127.0.0.1:%d/ ldaps://127.0.0.1:%d/" % (self.port, self.tls_port)],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise AssertionError("slapd did not start: %s" % open(os.path.join(self.base, "slapd.log")).read())
                time.sleep(0.1)
        self._fill()

    def root(self):
        import ldap3
        from scanner.server.access.directory import _checked_tls
        server = ldap3.Server("127.0.0.1", port=self.tls_port, use_ssl=True, tls=_checked_tls(self.ca, "127.0.0.1"))
        return ldap3.Connection(server, user=ROOT_DN, password=self.root_pw, auto_bind=True)

    def _fill(self):
        with self.root() as c:
            assert c.add(SUFFIX, ["dcObject", "organization"], {"o": "Example", "dc": "example"}), c.result
            for ou in ("people", "groups", "services"):
                assert c.add("ou=%s,%s" % (ou, SUFFIX), ["organizationalUnit"], {"ou": ou}), c.result
            assert c.add(SVC_DN, ["person"], {"cn": "xcscan-svc", "sn": "svc", "userPassword": self.svc_pw}), c.result
        self.passwords = {}

    def add_user(self, uid, password, groups=()):
        with self.root() as c:
            assert c.add("uid=%s,%s" % (uid, PEOPLE), ["inetOrgPerson"], {"uid": uid, "cn": uid, "sn": uid,
                                                                          "userPassword": password}), c.result
        self.passwords[uid] = password
        for g in groups:
            self.join(uid, g)

    def group_dn(self, name):
        return "cn=%s,%s" % (name, GROUPS)

    def join(self, uid, group):
        import ldap3
        dn = "uid=%s,%s" % (uid, PEOPLE)
        with self.root() as c:
            if not c.search(self.group_dn(group), "(objectClass=groupOfNames)", search_scope=ldap3.BASE):
                assert c.add(self.group_dn(group), ["groupOfNames"], {"cn": group, "member": dn}), c.result
            else:
                assert c.modify(self.group_dn(group), {"member": [(ldap3.MODIFY_ADD, [dn])]}), c.result

    def leave(self, uid, group):
        import ldap3
        with self.root() as c:
            assert c.modify(self.group_dn(group), {"member": [(ldap3.MODIFY_DELETE, ["uid=%s,%s" % (uid, PEOPLE)])]}), \
                c.result

    def config(self, **over):
        """The server.json "ldap" value for this directory (bind password file written into ``data_dir``)."""
        cfg = {"url": "ldaps://127.0.0.1:%d" % self.tls_port, "ca_file": self.ca, "bind_dn": SVC_DN,
               "bind_password_file": self.svc_password_file(), "user_base": PEOPLE, "group_base": GROUPS,
               "timeout": 3,
               "groups": [{"group": self.group_dn("xcscan-admins"), "role": "admin", "orgs": ["/"]},
                          {"group": self.group_dn("finance-officers"), "role": "officer", "orgs": ["/gov/finance"]},
                          {"group": self.group_dn("tax-auditors"), "role": "auditor", "orgs": ["/gov/finance/tax"]},
                          {"group": self.group_dn("health-auditors"), "role": "auditor", "orgs": ["/gov/health"]}]}
        cfg.update(over)
        return cfg

    def svc_password_file(self):
        path = os.path.join(self.base, "bind.pw")
        if not os.path.exists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(self.svc_pw + "\n")
        return path

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def start_slapd(tmp_path_factory):
    need(os.path.exists(SLAPD) and shutil.which("ldapsearch"), "slapd/ldap-utils not installed")
    try:
        import ldap3  # noqa: F401
    except ImportError:
        need(False, "ldap3 is not installed (pip install -c requirements/lock.txt -e '.[server,test]')")
    return Slapd(tmp_path_factory.mktemp("slapd"))
