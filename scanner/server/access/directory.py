"""Directory login: LDAP / Active Directory accounts (``ldap`` in server.json; docs/integrations.md).

A login is checked the way directories expect: bind as the configured service account over TLS (ldaps or
StartTLS, certificate and host name checked against ``ca_file``), search the one entry whose name attribute is
the typed user name (the value escaped, RFC 4515, so no name can widen the filter), read its groups, then bind
as that entry with the typed password — the directory checks the password; nothing here sees a hash. The
groups map to one xcscan role and its org subtrees by the configured list. Every network step has a timeout.
"""
from __future__ import annotations

import os
import ssl
from urllib.parse import urlsplit

from scanner.server.access import groupmap, login_setting
from scanner.server.access.groupmap import NoRole

ROLES = ("admin", "officer", "auditor", "assessor")  # accounts.ROLES (kept here: accounts imports this module)
LOCAL_HASH = "!ldap"  # users.password_hash of an account made by a directory login: never a valid hash
DEFAULTS = {
    "start_tls": False,
    "ca_file": "",
    "user_filter": "(&(objectClass=person)(uid={username}))",
    "username_attribute": "uid",
    "group_base": "",
    "group_filter": "(|(member={dn})(uniqueMember={dn}))",
    "member_of_attribute": "memberOf",
    "timeout": 5,
}
KNOWN = set(DEFAULTS) | {"url", "bind_dn", "bind_password_file", "user_base", "groups"}


class DirectoryUnavailable(Exception):
    """The directory could not be asked (down, TLS refused, service account refused, timeout)."""


class BadCredentials(Exception):
    """No such directory user, several, or a wrong password."""


class DirectoryUser(object):
    def __init__(self, username, dn, groups, role, orgs):
        self.username, self.dn, self.groups, self.role, self.orgs = username, dn, groups, role, orgs


def norm_dn(dn):
    """A DN compared without case or spaces around separators."""
    from ldap3.utils.dn import parse_dn
    try:
        return ",".join("%s=%s" % (attr.strip().lower(), value.strip().lower()) for attr, value, _sep in parse_dn(dn))
    except Exception:  # noqa: BLE001 - a malformed DN still compares as text
        return str(dn).strip().lower()


def _fail(message, hint=None):
    login_setting.fail("ldap", message, hint)


class Directory(object):
    """The ``ldap`` setting, checked at start-up (a mistake stops ``serve`` with a message naming it)."""

    def __init__(self, config, data_dir):
        c = login_setting.object_of("ldap", config, KNOWN, DEFAULTS)
        urls = c.get("url")
        urls = [urls] if isinstance(urls, str) else urls
        if not urls or not isinstance(urls, list) or not all(isinstance(u, str) and u for u in urls):
            _fail("'url' must be a directory URL such as ldaps://dc1.example.gov.cn:636 (or a list of them, tried in order)")
        self.servers = []
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
                _fail("%r is not an ldap:// or ldaps:// URL" % url)
            if parts.scheme == "ldap" and not c["start_tls"]:
                _fail("%r would send passwords in clear text" % url,
                      hint="use ldaps://HOST:636, or set \"start_tls\": true for ldap://HOST:389")
            self.servers.append((parts.hostname, parts.port or (636 if parts.scheme == "ldaps" else 389),
                                 parts.scheme == "ldaps"))
        for key in ("bind_dn", "bind_password_file", "user_base"):
            if not isinstance(c.get(key), str) or not c.get(key):
                _fail("'%s' is required" % key)
        for key in ("user_filter", "username_attribute", "group_base", "group_filter", "member_of_attribute", "ca_file"):
            if not isinstance(c[key], str):
                _fail("'%s' must be a string" % key)
        if "{username}" not in c["user_filter"] or not c["user_filter"].startswith("("):
            _fail("'user_filter' must be an LDAP filter containing {username}, e.g. "
                  "(&(objectClass=user)(sAMAccountName={username}))")
        if c["group_base"] and "{dn}" not in c["group_filter"] and "{username}" not in c["group_filter"]:
            _fail("'group_filter' must contain {dn} or {username}")
        if not isinstance(c["start_tls"], bool):
            _fail("'start_tls' must be true or false")
        if isinstance(c["timeout"], bool) or not isinstance(c["timeout"], int) or not 1 <= c["timeout"] <= 60:
            _fail("'timeout' must be a whole number of seconds from 1 to 60")
        self.start_tls = c["start_tls"]
        self.timeout = c["timeout"]
        self.bind_dn = c["bind_dn"]
        self.user_base, self.user_filter = c["user_base"], c["user_filter"]
        self.username_attribute = c["username_attribute"] or "uid"
        self.group_base, self.group_filter = c["group_base"], c["group_filter"]
        self.member_of_attribute = c["member_of_attribute"]
        self.ca_file = self._path(c["ca_file"], data_dir) if c["ca_file"] else None
        if self.ca_file and not os.path.isfile(self.ca_file):
            _fail("'ca_file' %s is not a file" % self.ca_file)
        self.bind_password = groupmap.read_secret(self._path(c["bind_password_file"], data_dir),
                                                  "bind_password_file", _fail)
        self.mapping = groupmap.parse_mapping(c.get("groups"), _fail, ROLES, normalise=norm_dn, what="DN")

    @staticmethod
    def _path(path, data_dir):
        return path if os.path.isabs(path) else os.path.join(data_dir, path)

    # --- asking the directory ----------------------------------------------------------------------------
    def _tls(self, host):
        return _checked_tls(self.ca_file, host)

    def _connect(self, user, password):
        """An open, TLS-protected connection bound as ``user`` (False when the directory refused the
        password), trying the servers in order; DirectoryUnavailable when none could be used."""
        import ldap3
        from ldap3.core.exceptions import LDAPException
        errors = []
        for host, port, use_ssl in self.servers:
            server = ldap3.Server(host, port=port, use_ssl=use_ssl, tls=self._tls(host), get_info=ldap3.NONE,
                                  connect_timeout=self.timeout)
            conn = ldap3.Connection(server, user=user, password=password, read_only=True, raise_exceptions=False,
                                    receive_timeout=self.timeout, auto_referrals=False)
            try:
                conn.open()
                if self.start_tls and not use_ssl:
                    conn.start_tls()
                    if not conn.tls_started:
                        raise DirectoryUnavailable("StartTLS refused")
                if conn.bind():
                    return conn
                result = conn.result if isinstance(conn.result, dict) else {}
                _close(conn)
                if result.get("result") == 49:  # invalidCredentials
                    return False
                errors.append("%s:%d: bind refused (%s)" % (host, port, result.get("description")))
            except (LDAPException, OSError, ssl.SSLError, DirectoryUnavailable) as exc:
                errors.append("%s:%d: %s" % (host, port, str(exc)[:300]))
                _close(conn)
        raise DirectoryUnavailable("; ".join(errors))

    def _search(self, conn, base, flt, attributes, limit):
        import ldap3
        ok = conn.search(base, flt, search_scope=ldap3.SUBTREE, attributes=attributes, size_limit=limit,
                         time_limit=self.timeout)
        code = conn.result.get("result") if isinstance(conn.result, dict) else None
        if not ok and code not in (0, 4, 32):  # success, sizeLimitExceeded, noSuchObject
            raise DirectoryUnavailable("search under %s refused: %s" % (base, conn.result.get("description")))
        return [e for e in (conn.response or []) if e.get("type") == "searchResEntry"], code

    def lookup(self, username):
        """(canonical user name, DN, [group DN, ...]) of the one entry named ``username``, or None.
        Only the service account's rights are used. A connection that breaks or times out during the
        searches is DirectoryUnavailable, like one that could not be opened."""
        from ldap3.core.exceptions import LDAPException
        try:
            return self._lookup(username)
        except (LDAPException, OSError, ssl.SSLError) as exc:
            raise DirectoryUnavailable("during the search: %s" % str(exc)[:300])

    def _lookup(self, username):
        from ldap3.utils.conv import escape_filter_chars
        svc = self._connect(self.bind_dn, self.bind_password)
        if svc is False:
            raise DirectoryUnavailable("the directory refused the service account %s (bind_dn / bind_password_file)"
                                       % self.bind_dn)
        try:
            name = escape_filter_chars(username)
            attrs = [self.username_attribute] + ([self.member_of_attribute] if self.member_of_attribute else [])
            entries, code = self._search(svc, self.user_base, self.user_filter.replace("{username}", name), attrs, 2)
            if len(entries) != 1 or code == 4:
                return None  # none, or ambiguous: never guess which person this is
            entry = entries[0]
            dn = entry["dn"]
            values = entry.get("attributes", {})
            canonical = values.get(self.username_attribute)
            canonical = canonical[0] if isinstance(canonical, list) and canonical else canonical
            groups = []
            if self.member_of_attribute:
                member_of = values.get(self.member_of_attribute) or []
                groups.extend(member_of if isinstance(member_of, list) else [member_of])
            if self.group_base:
                flt = self.group_filter.replace("{dn}", escape_filter_chars(dn)).replace("{username}", name)
                found, _code = self._search(svc, self.group_base, flt, ["cn"], 1000)
                groups.extend(e["dn"] for e in found)
            return (str(canonical) if canonical else username), dn, sorted(set(groups), key=norm_dn)
        finally:
            _close(svc)

    def map_groups(self, groups):
        """(role, [org, ...]) of the first mapping a group matches (orgs: of every matching mapping of that
        role), or (None, [])."""
        return groupmap.map_groups(self.mapping, {norm_dn(g) for g in groups})

    def authenticate(self, username, password):
        """The DirectoryUser for a right password; BadCredentials, NoRole or DirectoryUnavailable otherwise."""
        if not password:
            raise BadCredentials()  # an empty password would be an anonymous bind, which "succeeds"
        found = self.lookup(username)
        if found is None:
            raise BadCredentials()
        canonical, dn, groups = found
        conn = self._connect(dn, password)
        if conn is False:
            raise BadCredentials()
        _close(conn)
        role, orgs = self.map_groups(groups)
        if role is None:
            raise NoRole(canonical, groups)
        return DirectoryUser(canonical, dn, groups, role, orgs)


def _close(conn):
    try:
        conn.unbind()
    except Exception:  # noqa: BLE001 - a connection that broke needs no goodbye
        pass


def _checked_tls(ca_file, host):
    """ldap3's Tls, but the handshake is the standard library's default client context: the chain checked
    against ``ca_file`` (else the system's CAs), the host name or address checked against the certificate
    (ldap3 turns that check off and does its own with a helper that newer Pythons no longer have), TLS 1.2+."""
    import ldap3

    class CheckedTls(ldap3.Tls):
        def wrap_socket(self, connection, do_handshake=False):
            ctx = ssl.create_default_context(cafile=ca_file)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            connection.socket = ctx.wrap_socket(connection.socket, server_hostname=host,
                                                do_handshake_on_connect=do_handshake)

    return CheckedTls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file)


def from_settings(settings):
    """The Directory of ``settings.ldap``, or None when directory login is off (the default)."""
    config = getattr(settings, "ldap", None)
    if not config:
        return None
    return Directory(config, settings.data_dir)
