"""Single sign-on with OpenID Connect (``oidc`` in server.json; docs/integrations.md "Directory login").

The authorization-code flow with PKCE (S256), ``state`` and ``nonce``: the three secrets and the page to go
back to travel in a short-lived cookie signed (HMAC-SHA256) with a key derived from the client secret, so every
worker can check it and nothing is stored before the provider answers. The provider is found from ``issuer`` +
``/.well-known/openid-configuration`` at first use (cached, every request with ``timeout``); the ID token from
the token endpoint is checked against the provider's JWKS (RS256 / ES256 only: ``none`` and HS* are refused),
then iss, aud (and azp), exp, iat and nonce. A claim (``groups`` by default) maps to one xcscan role and its
org subtrees, like the LDAP group list. JOSE work is joserfc's.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from scanner.server.access import groupmap, login_setting
from scanner.server.access.groupmap import NoRole
from scanner.server.access.directory import ROLES

LOCAL_HASH = "!oidc"  # users.password_hash of an account made by an OIDC login: never a valid hash
ALGORITHMS = ("RS256", "ES256")
STATE_TTL = 600  # seconds a login started at the provider may take
LEEWAY = 60  # clock difference accepted on exp / iat
DEFAULTS = {
    "scopes": "openid profile email",
    "username_claim": "preferred_username",
    "groups_claim": "groups",
    "ca_file": "",
    "timeout": 5,
}
KNOWN = set(DEFAULTS) | {"issuer", "client_id", "client_secret_file", "redirect_uri", "groups"}


class ProviderUnavailable(Exception):
    """The provider could not be asked (down, TLS refused, timeout, a discovery document that does not fit)."""


class Refused(Exception):
    """The provider's answer or the ID token is not acceptable (``reason`` says why; audited)."""

    def __init__(self, reason):
        Exception.__init__(self, reason)
        self.reason = reason


class OidcUser(object):
    def __init__(self, username, subject, groups, role, orgs):
        self.username, self.subject, self.groups, self.role, self.orgs = username, subject, groups, role, orgs


def _fail(message, hint=None):
    login_setting.fail("oidc", message, hint)


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Provider(object):
    """The ``oidc`` setting, checked at start-up (a mistake stops ``serve`` with a message naming it)."""

    def __init__(self, config, data_dir):
        c = login_setting.object_of("oidc", config, KNOWN, DEFAULTS)
        for key in ("issuer", "client_id", "client_secret_file", "redirect_uri"):
            if not isinstance(c.get(key), str) or not c.get(key):
                _fail("'%s' is required" % key)
        for key in ("issuer", "redirect_uri"):
            parts = urllib.parse.urlsplit(c[key])
            if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
                _fail("'%s' must be an https:// URL without query (%r)" % (key, c[key]))
        if not urllib.parse.urlsplit(c["redirect_uri"]).path.endswith("/login/oidc/callback"):
            _fail("'redirect_uri' must be this server's address + /login/oidc/callback, e.g. "
                  "https://xcscan.example.gov.cn/login/oidc/callback")
        for key in ("scopes", "username_claim", "groups_claim", "ca_file"):
            if not isinstance(c[key], str):
                _fail("'%s' must be a string" % key)
        if "openid" not in c["scopes"].split():
            _fail("'scopes' must include openid")
        if not c["username_claim"] or not c["groups_claim"]:
            _fail("'username_claim' and 'groups_claim' must name claims")
        if isinstance(c["timeout"], bool) or not isinstance(c["timeout"], int) or not 1 <= c["timeout"] <= 60:
            _fail("'timeout' must be a whole number of seconds from 1 to 60")
        self.issuer = c["issuer"]  # compared exactly with the discovery document's and the tokens' iss
        self.client_id, self.redirect_uri = c["client_id"], c["redirect_uri"]
        self.scopes, self.timeout = c["scopes"], c["timeout"]
        self.username_claim, self.groups_claim = c["username_claim"], c["groups_claim"]
        self.ca_file = _path(c["ca_file"], data_dir) if c["ca_file"] else None
        if self.ca_file and not os.path.isfile(self.ca_file):
            _fail("'ca_file' %s is not a file" % self.ca_file)
        secret_file = _path(c["client_secret_file"], data_dir)
        self.client_secret = groupmap.read_secret(secret_file, "client_secret_file", _fail)
        self._state_key = hmac.new(self.client_secret.encode("utf-8"), b"xcscan oidc state cookie",
                                   hashlib.sha256).digest()
        self.mapping = groupmap.parse_mapping(c.get("groups"), _fail, ROLES)
        self._lock = threading.Lock()
        self._meta = None  # (fetched at, discovery document)
        self._jwks = None  # (fetched at, KeySet)

    # --- talking to the provider ----------------------------------------------------------------------
    def _ssl(self):
        ctx = ssl.create_default_context(cafile=self.ca_file)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def _http(self, url, data=None, headers=None):
        req = urllib.request.Request(url, data=data, headers=dict({"Accept": "application/json"}, **(headers or {})))
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._ssl()) as resp:
                body = resp.read(1024 * 1024)
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode("utf-8", "replace")
            if data is not None and 400 <= exc.code < 500:
                raise Refused("the token endpoint refused the code (%d %s)" % (exc.code, detail[:300]))
            raise ProviderUnavailable("%s: HTTP %d" % (url, exc.code))
        except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
            raise ProviderUnavailable("%s: %s" % (url, str(getattr(exc, "reason", exc))[:300]))
        try:
            doc = json.loads(body)
        except ValueError:
            raise ProviderUnavailable("%s: not JSON" % url)
        if not isinstance(doc, dict):
            raise ProviderUnavailable("%s: not a JSON object" % url)
        return doc

    def metadata(self):
        """The provider's discovery document (fetched at first use, then kept for an hour)."""
        with self._lock:
            if self._meta and time.time() - self._meta[0] < 3600:
                return self._meta[1]
        doc = self._http(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if doc.get("issuer") != self.issuer:
            raise ProviderUnavailable("the discovery document names issuer %r, not %r" % (doc.get("issuer"), self.issuer))
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(key), str) or urllib.parse.urlsplit(doc[key]).scheme != "https":
                raise ProviderUnavailable("the discovery document has no https %s" % key)
        with self._lock:
            self._meta = (time.time(), doc)
        return doc

    def keys(self, refresh=False):
        """The provider's signing keys (JWKS), fetched again when a token names a key not known yet (at most
        once a minute)."""
        from joserfc.jwk import KeySet
        with self._lock:
            if self._jwks and (not refresh or time.time() - self._jwks[0] < 60):
                return self._jwks[1]
        doc = self._http(self.metadata()["jwks_uri"])
        usable = [k for k in doc.get("keys") or [] if isinstance(k, dict) and k.get("kty") in ("RSA", "EC")
                  and k.get("use", "sig") == "sig"]
        try:
            keyset = KeySet.import_key_set({"keys": usable})
        except Exception as exc:  # noqa: BLE001 - any malformed key: the provider is unusable, say why
            raise ProviderUnavailable("the JWKS cannot be read: %s" % str(exc)[:300])
        with self._lock:
            self._jwks = (time.time(), keyset)
        return keyset

    # --- the flow ---------------------------------------------------------------------------------------
    def start(self, next_page):
        """(URL of the provider's authorization endpoint, signed state cookie value)."""
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        challenge = _b64(hashlib.sha256(verifier.encode("ascii")).digest())
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                  "scope": self.scopes, "state": state, "nonce": nonce, "code_challenge": challenge,
                  "code_challenge_method": "S256"}
        endpoint = self.metadata()["authorization_endpoint"]
        url = endpoint + ("&" if "?" in endpoint else "?") + urllib.parse.urlencode(params)
        body = _b64(json.dumps({"s": state, "n": nonce, "v": verifier, "next": next_page,
                                "exp": int(time.time()) + STATE_TTL}, separators=(",", ":")).encode("utf-8"))
        return url, body + "." + _b64(hmac.new(self._state_key, body.encode("ascii"), hashlib.sha256).digest())

    def _read_state(self, cookie):
        body, _, sig = (cookie or "").partition(".")
        want = _b64(hmac.new(self._state_key, body.encode("ascii", "replace"), hashlib.sha256).digest())
        if not body or not hmac.compare_digest(want.encode("ascii"), sig.encode("ascii", "replace")):
            raise Refused("no login was started from this browser (state cookie missing or not ours)")
        data = json.loads(_unb64(body))
        if data.get("exp", 0) < time.time():
            raise Refused("the login took longer than %d seconds" % STATE_TTL)
        return data

    def next_page(self, cookie):
        try:
            return self._read_state(cookie).get("next") or "/"
        except (Refused, ValueError):
            return "/"

    def finish(self, cookie, state, code, error=None):
        """The OidcUser of a provider's redirect back; Refused, NoRole or ProviderUnavailable otherwise."""
        saved = self._read_state(cookie)
        if not isinstance(state, str) or not hmac.compare_digest(saved["s"].encode("ascii"),
                                                                 state.encode("utf-8", "replace")):
            raise Refused("the state sent back is not the one this browser was given")
        if error:
            raise Refused("the provider answered %s" % str(error)[:100])
        if not code:
            raise Refused("the provider sent no code")
        meta = self.metadata()
        basic = base64.b64encode(("%s:%s" % (urllib.parse.quote(self.client_id, safe=""),
                                             urllib.parse.quote(self.client_secret, safe=""))).encode("utf-8"))
        form = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": self.redirect_uri, "code_verifier": saved["v"],
                                       "client_id": self.client_id}).encode("ascii")
        tokens = self._http(meta["token_endpoint"], data=form, headers={
            "Authorization": "Basic " + basic.decode("ascii"), "Content-Type": "application/x-www-form-urlencoded"})
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise Refused("the token endpoint sent no ID token")
        claims = self.verify(id_token, saved["n"])
        return self.user(claims)

    def verify(self, id_token, nonce):
        """The claims of a signed, current ID token for this client with this nonce; Refused otherwise."""
        from joserfc import jwt
        from joserfc.errors import JoseError
        try:
            header = json.loads(_unb64(id_token.split(".")[0]))
        except (ValueError, IndexError):
            raise Refused("the ID token is not a JWT")
        alg = header.get("alg") if isinstance(header, dict) else None
        if alg not in ALGORITHMS:
            raise Refused("the ID token is signed with %r; only %s are accepted" % (alg, ", ".join(ALGORITHMS)))
        keys = self.keys()
        kid = header.get("kid")
        if kid and not any(k.kid == kid for k in keys.keys):
            keys = self.keys(refresh=True)
        try:
            token = jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))
        except (JoseError, ValueError) as exc:
            raise Refused("the ID token's signature does not verify with the provider's keys (%s)" % str(exc)[:200])
        claims = token.claims
        t = time.time()
        if claims.get("iss") != self.issuer:
            raise Refused("the ID token is from issuer %r" % claims.get("iss"))
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.client_id not in auds:
            raise Refused("the ID token is not for this client (aud %r)" % (aud,))
        if len(auds) > 1 and claims.get("azp") != self.client_id:
            raise Refused("the ID token has several audiences and azp is not this client")
        for key in ("exp", "iat"):
            if isinstance(claims.get(key), bool) or not isinstance(claims.get(key), (int, float)):
                raise Refused("the ID token has no %s" % key)
        if claims["exp"] + LEEWAY < t:
            raise Refused("the ID token expired")
        if claims["iat"] - LEEWAY > t or claims["iat"] + STATE_TTL + LEEWAY < t:
            raise Refused("the ID token's iat is not now")
        if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(
                claims["nonce"].encode("utf-8"), nonce.encode("utf-8")):
            raise Refused("the ID token's nonce is not the one of this login")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Refused("the ID token has no sub")
        return claims

    def map_groups(self, groups):
        return groupmap.map_groups(self.mapping, set(groups))

    def user(self, claims):
        name = claims.get(self.username_claim)
        if not isinstance(name, str) or not name:
            raise Refused("the ID token has no %s claim" % self.username_claim)
        groups = claims.get(self.groups_claim) or []
        groups = [groups] if isinstance(groups, str) else [g for g in groups if isinstance(g, str)] \
            if isinstance(groups, list) else []
        role, orgs = self.map_groups(groups)
        if role is None:
            raise NoRole(name, groups)
        return OidcUser(name, claims["sub"], groups, role, orgs)


def _path(path, data_dir):
    return path if os.path.isabs(path) else os.path.join(data_dir, path)


def from_settings(settings):
    """The Provider of ``settings.oidc``, or None when OpenID Connect login is off (the default)."""
    config = getattr(settings, "oidc", None)
    if not config:
        return None
    return Provider(config, settings.data_dir)
