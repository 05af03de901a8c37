"""Single sign-on with OpenID Connect, through a real running aggregator and a browser-like httpx client that
follows the redirects.

No real OpenID Connect provider can run on this machine, so the provider is a TEST DOUBLE: a real HTTPS server
in a thread on loopback (certificate from a CA made here) serving the discovery document, the JWKS, the
authorization endpoint (it "logs in" whoever the test chose and redirects back with a code) and the token
endpoint (client secret, redirect_uri and the PKCE verifier checked), signing real ID tokens (RS256 / ES256) with
keys made in the test. What it gets wrong on purpose (nonce, audience, expiry, signature, alg none, HS256 with
the public key, groups no mapping knows) must each be refused with nothing created; local accounts keep working."""
from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import ssl
import threading
import time
import urllib.parse

import httpx
import pytest
from sqlalchemy import func, select

from server_support import ADMIN, OFFICER, Server, fresh_pg_database

from scanner.server.store import db

CLIENT_ID, CLIENT_SECRET = "xcscan-aggregator", "client-secret-%s" % secrets.token_hex(8)


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _make_tls(tmp):
    """A CA and a certificate for 127.0.0.1 signed by it (files under ``tmp``)."""
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test OIDC CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {name: str(tmp / name) for name in ("ca.pem", "cert.pem", "key.pem")}
    with open(paths["ca.pem"], "wb") as fh:
        fh.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths["cert.pem"], "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["key.pem"], "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return paths


class ProviderDouble(object):
    """The OIDC provider test double (see the module docstring). ``who``: the claims of the person who logs in
    next; ``forge``: how the next ID token is made wrong (None: a correct one)."""

    def __init__(self, tls):
        from joserfc.jwk import ECKey, RSAKey
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"})
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"})
        self.other = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})  # not published: a forger's key
        self.who, self.forge, self.alg = None, None, "RS256"
        self.codes, self.authorize_requests, self.token_requests = {}, [], []
        double = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, status, doc):
                body = json.dumps(doc).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                if url.path == "/.well-known/openid-configuration":
                    return self._json(200, {"issuer": double.issuer, "authorization_endpoint": double.issuer + "/authorize",
                                            "token_endpoint": double.issuer + "/token", "jwks_uri": double.issuer + "/jwks",
                                            "response_types_supported": ["code"],
                                            "id_token_signing_alg_values_supported": ["RS256", "ES256"]})
                if url.path == "/jwks":
                    return self._json(200, {"keys": [double.rsa.as_dict(private=False),
                                                     double.ec.as_dict(private=False)]})
                if url.path == "/authorize":
                    q = dict(urllib.parse.parse_qsl(url.query))
                    double.authorize_requests.append(q)
                    code = secrets.token_urlsafe(16)
                    double.codes[code] = q
                    self.send_response(302)
                    self.send_header("Location", q["redirect_uri"] + "?" + urllib.parse.urlencode(
                        {"code": code, "state": q["state"]}))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                return self._json(404, {"error": "not_found"})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("ascii")
                form = dict(urllib.parse.parse_qsl(body))
                double.token_requests.append(form)
                basic = "Basic " + base64.b64encode(("%s:%s" % (CLIENT_ID, CLIENT_SECRET)).encode()).decode()
                q = double.codes.pop(form.get("code"), None)
                if self.headers.get("Authorization") != basic:
                    return self._json(401, {"error": "invalid_client"})
                if q is None or form.get("redirect_uri") != q["redirect_uri"] \
                        or _b64(hashlib.sha256(form.get("code_verifier", "").encode()).digest()) != q["code_challenge"]:
                    return self._json(400, {"error": "invalid_grant"})
                return self._json(200, {"access_token": "at", "token_type": "Bearer",
                                        "id_token": double.id_token(q["nonce"])})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls["cert.pem"], tls["key.pem"])
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.issuer = "https://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def id_token(self, nonce):
        from joserfc import jwt
        t = int(time.time())
        claims = dict({"iss": self.issuer, "aud": CLIENT_ID, "iat": t, "exp": t + 300, "nonce": nonce,
                       "sub": "sub-" + self.who["preferred_username"]}, **self.who)
        forge = self.forge
        if forge == "nonce":
            claims["nonce"] = "not-the-nonce"
        elif forge == "aud":
            claims["aud"] = "another-client"
        elif forge == "expired":
            claims.update(iat=t - 4000, exp=t - 3600)
        elif forge == "issuer":
            claims["iss"] = "https://idp.attacker.example"
        if forge == "signature":
            return jwt.encode({"alg": "RS256", "kid": "rsa-1"}, claims, self.other)
        if forge == "none":
            return "%s.%s." % (_b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()),
                               _b64(json.dumps(claims).encode()))
        if forge == "hs256":  # the published RSA public key used as an HMAC secret (the classic confusion)
            from cryptography.hazmat.primitives import serialization
            pem = self.rsa.public_key.public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
            signing = "%s.%s" % (_b64(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode()),
                                 _b64(json.dumps(claims).encode()))
            return signing + "." + _b64(hmac.new(pem, signing.encode(), hashlib.sha256).digest())
        if self.alg == "ES256":
            return jwt.encode({"alg": "ES256", "kid": "ec-1"}, claims, self.ec)
        return jwt.encode({"alg": "RS256", "kid": "rsa-1"}, claims, self.rsa)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    tls = _make_tls(tmp_path_factory.mktemp("oidc-tls"))
    p = ProviderDouble(tls)
    p.tls = tls
    yield p
    p.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory, provider):
    with (fresh_pg_database() if request.param == "postgres" else contextlib.nullcontext()) as pg:
        data = tmp_path_factory.mktemp("srv-oidc")
        srv = Server(data, pg, request.param)
        srv.cli("server", "init", env={"XCSCAN_ADMIN_PASSWORD": ADMIN[1]})
        with open(os.path.join(srv.data_dir, "oidc-secret"), "w", encoding="utf-8") as fh:
            fh.write(CLIENT_SECRET + "\n")
        cfg = os.path.join(srv.data_dir, "server.json")
        with open(cfg, encoding="utf-8") as fh:
            values = json.load(fh)
        values.update({"login_max_failures": 3, "oidc": {
            "issuer": provider.issuer, "client_id": CLIENT_ID, "client_secret_file": "oidc-secret",
            "redirect_uri": srv.base_url + "/login/oidc/callback", "ca_file": provider.tls["ca.pem"], "timeout": 5,
            "groups": [{"group": "xcscan-admins", "role": "admin", "orgs": ["/"]},
                       {"group": "finance-officers", "role": "officer", "orgs": ["/gov/finance"]},
                       {"group": "tax-auditors", "role": "auditor", "orgs": ["/gov/finance/tax"]},
                       {"group": "health-auditors", "role": "auditor", "orgs": ["/gov/health"]}]}})
        with open(cfg, "w", encoding="utf-8") as fh:
            json.dump(values, fh)
        srv.cli("server", "user", "add", OFFICER[0], "--role", "officer", env={"XCSCAN_USER_PASSWORD": OFFICER[1]})
        srv.start()
        yield srv
        srv.stop()


def browser(server, provider):
    """An httpx client trusting both the aggregator's and the provider's CA, following redirects like a browser."""
    ctx = ssl.create_default_context(cafile=server.ca)
    ctx.load_verify_locations(provider.tls["ca.pem"])
    return httpx.Client(base_url=server.base_url, verify=ctx, timeout=30, follow_redirects=True)


def state_of(server):
    with server.engine.connect() as conn:
        users = {r.username: (r.role, r.password_hash) for r in conn.execute(select(db.users))}
        orgs = {}
        for r in conn.execute(select(db.users.c.username, db.user_orgs.c.org_path)
                              .select_from(db.user_orgs.join(db.users, db.users.c.id == db.user_orgs.c.user_id))):
            orgs.setdefault(r.username, []).append(r.org_path)
        sessions = conn.execute(select(func.count()).select_from(db.sessions)).scalar()
        audit = [(r.actor, r.action, json.loads(r.detail) if r.detail else {}) for r in conn.execute(
            select(db.audit_log).order_by(db.audit_log.c.id.desc()).limit(5))]
    return users, {k: sorted(v) for k, v in orgs.items()}, sessions, audit


def sso(server, provider, who, forge=None, alg="RS256", next_page="/hosts", lang="en"):
    provider.who, provider.forge, provider.alg = who, forge, alg
    with browser(server, provider) as c:
        c.headers["Accept-Language"] = "zh-CN" if lang == "zh" else "en"
        resp = c.get("/login/oidc", params={"next": next_page})
        return resp, c


def test_sso_maps_role_and_orgs_and_uses_pkce_state_nonce(server, provider):
    # the login page offers single sign-on
    with browser(server, provider) as c:
        page = c.get("/login?lang=en")
        assert 'id="login-sso"' in page.text and "single sign-on" in page.text
    resp, c = sso(server, provider, {"preferred_username": "bob", "groups": ["finance-officers", "printer-users"]})
    assert resp.status_code == 200 and str(resp.url) == server.base_url + "/hosts", (resp.status_code, resp.url)
    # the hops: aggregator -> provider /authorize -> aggregator callback -> /hosts
    hops = [str(r.url).split("?")[0] for r in resp.history]
    assert hops == [server.base_url + "/login/oidc", provider.issuer + "/authorize",
                    server.base_url + "/login/oidc/callback"], hops
    q = provider.authorize_requests[-1]
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert q["client_id"] == CLIENT_ID and "openid" in q["scope"].split() and len(q["state"]) >= 20
    assert len(q["nonce"]) >= 20 and q["nonce"] != q["state"]
    assert provider.token_requests[-1]["code_verifier"]  # the token endpoint checked it against the challenge
    users, orgs, _sessions, audit = state_of(server)
    assert users["bob"] == ("officer", "!oidc") and orgs["bob"] == ["/gov/finance"]
    assert any(a[1] == "login" and a[0] == "bob" and (a[2] or {}).get("via") == "oidc" for a in audit), audit
    # the session cookie works for the API's page routes, and for what this officer may see only
    assert "xcscan_session" in c.cookies
    c.close()
    # two mapped groups of one role: both subtrees; ES256 tokens are accepted too
    resp, c = sso(server, provider, {"preferred_username": "carol", "groups": ["tax-auditors", "health-auditors"]},
                  alg="ES256")
    c.close()
    assert resp.status_code == 200, resp.text[:500]
    users, orgs, _s, _a = state_of(server)
    assert users["carol"][0] == "auditor" and orgs["carol"] == ["/gov/finance/tax", "/gov/health"]
    # the mapping is applied again at every login: bob moved to the admins
    resp, c = sso(server, provider, {"preferred_username": "bob", "groups": ["xcscan-admins"]})
    c.close()
    users, orgs, _s, _a = state_of(server)
    assert resp.status_code == 200 and users["bob"][0] == "admin" and orgs["bob"] == ["/"]


@pytest.mark.parametrize("forge,why", [
    ("nonce", "nonce"), ("aud", "not for this client"), ("expired", "expired"), ("issuer", "issuer"),
    ("signature", "signature does not verify"), ("none", "'none'"), ("hs256", "'HS256'")])
def test_forged_or_stale_id_tokens_are_refused_with_nothing_created(server, provider, forge, why):
    before = state_of(server)
    name = "mallory-" + forge
    resp, c = sso(server, provider, {"preferred_username": name, "groups": ["xcscan-admins"]}, forge=forge)
    c.close()
    assert resp.status_code == 401, (forge, resp.status_code)
    assert 'id="login-error"' in resp.text and "not accepted" in resp.text
    assert "xcscan_session" not in c.cookies
    users, orgs, sessions, audit = state_of(server)
    assert name not in users and users == before[0] and orgs == before[1] and sessions == before[2]
    failed = [a for a in audit if a[1] == "login.failed"]
    assert failed and failed[0][2]["via"] == "oidc" and why in failed[0][2]["reason"], (why, audit)


def test_unmapped_user_is_told_and_nothing_is_created(server, provider):
    before = state_of(server)
    resp, c = sso(server, provider, {"preferred_username": "dave", "groups": ["printer-users"]}, lang="zh")
    c.close()
    assert resp.status_code == 403 and "不属于任何已授予角色的组" in resp.text
    users, orgs, sessions, audit = state_of(server)
    assert "dave" not in users and users == before[0] and sessions == before[2]
    assert audit[0][1] == "login.no_role" and audit[0][2]["groups"] == ["printer-users"]
    # a token without any groups claim is the same
    resp, c = sso(server, provider, {"preferred_username": "dave"})
    c.close()
    assert resp.status_code == 403 and "no group that is given a role" in resp.text
    assert "dave" not in state_of(server)[0]


def test_state_must_match_the_browser(server, provider):
    """A callback with a code but no login started in this browser, or another state, is refused."""
    before = state_of(server)
    provider.who, provider.forge = {"preferred_username": "eve", "groups": ["xcscan-admins"]}, None
    with browser(server, provider) as victim, browser(server, provider) as attacker:
        # the attacker starts a login and stops at the provider's redirect back
        start = attacker.get("/login/oidc", follow_redirects=False)
        at_idp = attacker.get(start.headers["location"], follow_redirects=False)
        callback = at_idp.headers["location"]
        # ... and makes the victim's browser (no state cookie) follow it: refused
        resp = victim.get(callback)
        assert resp.status_code == 401 and "not accepted" in resp.text
        # the attacker's own browser with the state changed: refused too
        wrong = re.sub(r"state=[^&]+", "state=" + secrets.token_urlsafe(24), callback)
        resp = attacker.get(wrong)
        assert resp.status_code == 401
    users, _o, sessions, audit = state_of(server)
    assert "eve" not in users and sessions == before[2]
    assert any(a[1] == "login.failed" and "state" in a[2]["reason"] for a in audit), audit


def test_a_locked_name_stays_locked_for_sso_and_local_login_still_works(server, provider):
    with server.client() as c:
        # local accounts (break-glass admin, an officer) log in as before
        assert c.post("/api/v1/session", json={"username": ADMIN[0], "password": ADMIN[1]}).status_code == 200
        page = c.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        ok = c.post("/login", data={"username": OFFICER[0], "password": OFFICER[1], "csrf_token": csrf, "next": "/"},
                    follow_redirects=False)
        assert ok.status_code == 303 and "xcscan_session" in ok.headers.get("set-cookie", "")
        # a single sign-on account has no password here
        assert c.post("/api/v1/session", json={"username": "bob", "password": "!oidc"}).status_code == 401
        # nor can an admin give it one (it would turn into a local account)
        admin = c.post("/api/v1/session", json={"username": ADMIN[0], "password": ADMIN[1]}).json()
        reset = c.post("/api/v1/users/bob/password", json={"password": "A-new-local-pw-42"},
                       headers={"Authorization": "Bearer " + admin["token"]})
        assert reset.status_code == 409 and reset.json()["error"] == "directory_user", reset.text
        # three wrong passwords lock the name "frank" (login_max_failures 3) ...
        for _ in range(3):
            assert c.post("/api/v1/session", json={"username": "frank", "password": "wrong"}).status_code == 401
    # ... and single sign-on as frank is refused while it is locked
    resp, c2 = sso(server, provider, {"preferred_username": "frank", "groups": ["finance-officers"]})
    c2.close()
    assert resp.status_code == 429 and "locked" in resp.text
    assert "frank" not in state_of(server)[0]
    # a single sign-on name that is a local account never takes it over
    resp, c3 = sso(server, provider, {"preferred_username": OFFICER[0], "groups": ["xcscan-admins"]})
    c3.close()
    assert resp.status_code == 403
    users = state_of(server)[0]
    assert users[OFFICER[0]][0] == "officer" and users[OFFICER[0]][1] != "!oidc"


def _config(provider, tmp_path, **over):
    secret = tmp_path / "secret"
    secret.write_text(CLIENT_SECRET + "\n")
    return dict({"issuer": provider.issuer, "client_id": CLIENT_ID, "client_secret_file": str(secret),
                 "redirect_uri": "https://127.0.0.1:1/login/oidc/callback", "ca_file": provider.tls["ca.pem"],
                 "timeout": 2, "groups": [{"group": "g", "role": "officer", "orgs": ["/gov"]}]}, **over)


def test_setting_is_checked_at_start_up(provider, tmp_path):
    from scanner.errors import DataError
    from scanner.server.access.oidc import Provider
    for over, says in (({"issuer": "http://127.0.0.1:1"}, "https"), ({"client_secret_file": str(tmp_path / "none")},
                       "cannot read"), ({"groups": [{"group": "g", "role": "root"}]}, "role must be"),
                       ({"scopes": "profile"}, "openid"), ({"redirect_uri": "https://x.example/elsewhere"}, "callback"),
                       ({"alg": "HS256"}, "unknown key")):
        with pytest.raises(DataError) as err:
            Provider(_config(provider, tmp_path, **over), str(tmp_path))
        assert says in str(err.value), (over, str(err.value))


def test_provider_down_or_not_the_issuer_is_unavailable(provider, tmp_path):
    import socket
    from scanner.server.access.oidc import Provider, ProviderUnavailable
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    down = Provider(_config(provider, tmp_path, issuer="https://127.0.0.1:%d" % port), str(tmp_path))
    with pytest.raises(ProviderUnavailable):
        down.start("/")
    # the discovery document must name the configured issuer exactly
    other = Provider(_config(provider, tmp_path, issuer=provider.issuer + "/"), str(tmp_path))
    with pytest.raises(ProviderUnavailable) as err:
        other.metadata()
    assert "names issuer" in str(err.value)
    # a CA that did not sign the provider's certificate: refused
    (tmp_path / "other-ca").mkdir()
    wrong_ca = Provider(_config(provider, tmp_path, ca_file=_make_tls(tmp_path / "other-ca")["ca.pem"]), str(tmp_path))
    with pytest.raises(ProviderUnavailable) as err:
        wrong_ca.metadata()
    assert "certificate verify failed" in str(err.value).lower(), str(err.value)


def test_oidc_check_reads_the_provider_and_names_a_broken_setting(server, provider, tmp_path):
    """`xcscan server oidc check`: what an operator runs after editing server.json, before any user tries."""
    out = server.cli("server", "oidc", "check")
    assert "issuer %s: discovery document read over TLS" % provider.issuer in out.stdout
    assert "jwks_uri https://" in out.stdout and "signing keys: " in out.stdout
    assert "/login/oidc/callback" in out.stdout
    # the provider's certificate is not signed by the configured CA: refused, named, non-zero exit
    cfg = os.path.join(server.data_dir, "server.json")
    with open(cfg, encoding="utf-8") as fh:
        saved = fh.read()
    values = json.loads(saved)
    (tmp_path / "other-ca").mkdir()
    values["oidc"]["ca_file"] = _make_tls(tmp_path / "other-ca")["ca.pem"]
    try:
        with open(cfg, "w", encoding="utf-8") as fh:
            json.dump(values, fh)
        bad = server.cli("server", "oidc", "check", check=False)
    finally:
        with open(cfg, "w", encoding="utf-8") as fh:
            fh.write(saved)
    assert bad.returncode != 0
    assert "the provider cannot be used" in bad.stderr and "certificate verify failed" in bad.stderr.lower()
