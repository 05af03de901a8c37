"""TLS facts: real certificates (the shared corpus's SM2 certs read in place, and certificates made here
with `cryptography`), nginx/httpd/tomcat configs in fixture roots, and the crypto rules over them."""
import datetime
import glob
import os
import textwrap

import pytest

from corpus import require_corpus
from scanner.collect._x509 import der_is_ca, parse_pem_bundle, pem_blocks
from scanner.context import Context

NOW = datetime.datetime(2026, 11, 24, 12, 0, 0)


def openssl_sha1_cert(tmp_path, bits=1024, days=1, ca_signed=False):
    """A real RSA/SHA-1 certificate made by the openssl CLI (cryptography refuses to sign with SHA-1);
    self-signed, or issued by a throw-away CA."""
    import subprocess

    def run(*argv):
        subprocess.check_call(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    key, crt = str(tmp_path / "k.pem"), str(tmp_path / "c.pem")
    if not ca_signed:
        run("openssl", "req", "-x509", "-newkey", "rsa:%d" % bits, "-nodes", "-keyout", key, "-out", crt,
            "-days", str(days), "-subj", "/CN=legacy.example.gov.cn", "-sha1")
    else:
        cakey, cacrt, csr = str(tmp_path / "ca.key"), str(tmp_path / "ca.pem"), str(tmp_path / "r.csr")
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", cakey, "-out", cacrt,
            "-days", "30", "-subj", "/CN=Test CA")
        run("openssl", "req", "-new", "-newkey", "rsa:%d" % bits, "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=legacy.example.gov.cn")
        run("openssl", "x509", "-req", "-in", csr, "-CA", cacrt, "-CAkey", cakey, "-CAcreateserial",
            "-out", crt, "-days", str(days), "-sha1")
    with open(crt, "rb") as fh:
        return fh.read()


def make_cert(key_kind="rsa2048", digest="sha256", days=365, ca=False, cn="www.example.gov.cn", start=None):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID
    if key_kind.startswith("rsa"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(key_kind[3:]))
    else:
        key = ec.generate_private_key(ec.SECP384R1() if key_kind == "p384" else ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = start or datetime.datetime(2026, 1, 1)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(start)
               .not_valid_after(start + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    algo = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1()}[digest]
    cert = builder.sign(key, algo)
    return cert.public_bytes(serialization.Encoding.PEM)


# ---- parsing: the real SM2 certificates, in place
def test_corpus_sm2_certificates_recognised_by_oid():
    corpus = require_corpus()
    files = sorted(glob.glob(os.path.join(corpus, "certs", "*.crt")))
    assert len(files) == 6
    seen = {}
    for path in files:
        with open(path, "rb") as fh:
            parsed = parse_pem_bundle(fh.read())
        seen[os.path.basename(path)] = parsed
        for index, cert in parsed:
            assert cert["error"] is None
            assert cert["key_type"] == "sm2" and cert["sm2"] is True
            assert cert["curve_oid"] == "1.2.156.10197.1.301" and cert["key_bits"] == 256
            assert cert["signature_oid"] == "1.2.156.10197.1.501"
            assert cert["signature_algorithm"] == "SM2-with-SM3" and cert["signature_hash"] == "sm3"
    chain = seen["tongsuo-sm2-chain-ca.crt"]
    assert [c["subject"].split(",")[0] for _, c in chain] == ["CN=root ca", "CN=sub ca"]
    assert [c["is_ca"] for _, c in chain] == [True, True]
    assert chain[0][1]["self_signed"] is True and chain[1][1]["self_signed"] is False
    expired = seen["tongsuo-sm2-server-sign-expire.crt"][0][1]
    assert expired["not_after"].startswith("2001-")
    assert seen["tongsuo-sm2-server-sign.crt"][0][1]["not_after"] > "2100"
    # the DER-only CA test agrees with cryptography's BasicConstraints
    for name, parsed in seen.items():
        with open(os.path.join(corpus, "certs", name), "rb") as fh:
            ders = pem_blocks(fh.read())
        assert [der_is_ca(d) for d in ders] == [c["is_ca"] for _, c in parsed]


def test_corpus_sm2_certs_through_the_crypto_rules():
    """The expired SM2 cert fails crypto.cert.expired; all pass key strength and the SM2 rule."""
    from scanner.engine import load_ruleset
    from scanner.engine.evaluator import evaluate_rule
    corpus = require_corpus()
    certs = []
    for path in sorted(glob.glob(os.path.join(corpus, "certs", "*.crt"))):
        with open(path, "rb") as fh:
            for index, facts in parse_pem_bundle(fh.read()):
                facts.update({"path": path, "index": index, "referenced_by": []})
                certs.append(facts)
    facts = {"tls": {"certificates": certs, "servers": []}, "collection": {"tls": {"status": "ok"}}}
    rs = load_ruleset()

    def run(rid):
        return evaluate_rule(rs.get(rid), facts, None, params=rs.get(rid)["params"], now=NOW)

    expired = run("crypto.cert.expired")
    assert expired["status"] == "fail"
    assert [i["key"] for i in expired["items"] if i["status"] == "fail"] == [
        os.path.join(corpus, "certs", "tongsuo-sm2-server-sign-expire.crt")]
    assert run("crypto.cert.key-strength")["status"] == "pass"
    assert run("crypto.cert.weak-signature")["status"] == "pass"
    sm2 = run("crypto.cert.sm2")
    assert sm2["status"] == "pass" and len(sm2["items"]) == 5  # CA certificates are not server certificates


def test_generated_certificates_parse(tmp_path):
    rsa = parse_pem_bundle(openssl_sha1_cert(tmp_path))[0][1]
    assert (rsa["key_type"], rsa["key_bits"], rsa["signature_hash"], rsa["sm2"]) == ("rsa", 1024, "sha1", False)
    ec = parse_pem_bundle(make_cert("p384"))[0][1]
    assert (ec["key_type"], ec["key_bits"], ec["curve"]) == ("ec", 384, "secp384r1")
    assert ec["signature_algorithm"] == "ecdsa-with-SHA256"
    assert parse_pem_bundle(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")[0][1]["error"]
    assert parse_pem_bundle(b"not a certificate") == []


# ---- the collector on fixture roots
NGINX = textwrap.dedent("""\
    user nginx;
    http {
        include /etc/nginx/conf.d/*.conf;
        # ssl_protocols SSLv3;   (a comment, ignored)
    }
    """)
NGINX_SITE = textwrap.dedent("""\
    server {
        listen 443 ssl;
        ssl_certificate     /etc/nginx/ssl/site.crt;
        ssl_certificate_key /etc/nginx/ssl/site.key;
        ssl_protocols TLSv1 TLSv1.1 TLSv1.2;
    }
    """)
HTTPD_SSL = textwrap.dedent("""\
    Listen 443 https
    <VirtualHost _default_:443>
    SSLEngine on
    SSLProtocol all -SSLv3 -TLSv1 -TLSv1.1
    SSLCertificateFile /etc/pki/tls/certs/localhost.crt
    </VirtualHost>
    """)
TOMCAT = textwrap.dedent("""\
    <Server port="8005">
      <Service name="Catalina">
        <!-- <Connector port="8443" protocols="SSLv3"/> -->
        <Connector port="8080" protocol="HTTP/1.1"/>
        <Connector port="8443" protocol="org.apache.coyote.http11.Http11NioProtocol" SSLEnabled="true">
          <SSLHostConfig protocols="TLSv1.2+TLSv1.3">
            <Certificate certificateFile="conf/tomcat.crt" type="RSA"/>
          </SSLHostConfig>
        </Connector>
      </Service>
    </Server>
    """)


def collect_tls(root):
    from scanner.collect import tls
    ctx = Context(root=root, live=False)
    ctx.set_collector("tls")
    return tls.collect(ctx), ctx.errors


def test_collector_finds_configs_protocols_and_certs(make_root, tmp_path):
    root = make_root({
        "/etc/nginx/nginx.conf": NGINX,
        "/etc/nginx/conf.d/site.conf": NGINX_SITE,
        "/etc/nginx/ssl/site.crt": make_cert("rsa1024").decode(),
        "/etc/httpd/conf/httpd.conf": "ServerRoot /etc/httpd\nIncludeOptional conf.d/*.conf\n",
        "/etc/httpd/conf.d/ssl.conf": HTTPD_SSL,
        "/etc/pki/tls/certs/localhost.crt": make_cert("rsa2048").decode(),
        "/etc/pki/tls/certs/ca-bundle.crt": make_cert(ca=True).decode() * 3,
        "/etc/pki/tls/certs/internal-root.pem": make_cert(ca=True, cn="Internal Root").decode(),
        "/etc/pki/tls/certs/app.pem": make_cert("p256", cn="app").decode(),
        "/opt/tomcat9/conf/server.xml": TOMCAT,
        "/opt/tomcat9/conf/tomcat.crt": make_cert("rsa2048", days=10).decode(),
        "/etc/ssl/certs/0a1b2c3d.0": ("symlink", "/usr/share/ca-certificates/x.crt"),
    })
    facts, errors = collect_tls(root)
    servers = dict(((s["server"], s["directive"]), s) for s in facts["servers"])
    assert servers[("nginx", "ssl_protocols")]["protocols"] == ["TLSv1", "TLSv1.1", "TLSv1.2"]
    assert servers[("nginx", "ssl_protocols")]["config"] == "/etc/nginx/conf.d/site.conf"
    assert servers[("nginx", "ssl_protocols")]["line"] == 5
    assert servers[("httpd", "SSLProtocol")]["protocols"] == ["TLSv1.2", "TLSv1.3"]
    assert servers[("tomcat", "protocols")]["protocols"] == ["TLSv1.2", "TLSv1.3"]
    assert len(facts["servers"]) == 3  # the commented-out Tomcat connector and protocol="HTTP/1.1" are ignored
    by_path = dict((c["path"], c) for c in facts["certificates"])
    assert sorted(by_path) == ["/etc/nginx/ssl/site.crt", "/etc/pki/tls/certs/app.pem",
                               "/etc/pki/tls/certs/localhost.crt", "/opt/tomcat9/conf/tomcat.crt"]
    assert by_path["/etc/nginx/ssl/site.crt"]["referenced_by"] == ["/etc/nginx/conf.d/site.conf"]
    assert by_path["/etc/nginx/ssl/site.crt"]["key_bits"] == 1024
    assert by_path["/etc/pki/tls/certs/localhost.crt"]["referenced_by"] == ["/etc/httpd/conf.d/ssl.conf"]
    assert by_path["/etc/pki/tls/certs/app.pem"]["referenced_by"] == []
    assert errors == []


def test_collector_reports_a_missing_referenced_cert(make_root):
    root = make_root({"/etc/nginx/nginx.conf": "server { ssl_certificate /etc/nginx/ssl/gone.crt; }\n",
                      "/etc/nginx/ssl/empty.crt": "nothing here\n",
                      "/etc/nginx/conf.d/x.conf": "server { ssl_certificate ssl/empty.crt; }\n"})
    facts, errors = collect_tls(root)
    assert facts["certificates"] == []
    assert [e["path"] for e in errors] == ["/etc/nginx/ssl/gone.crt", "/etc/nginx/ssl/empty.crt"]
    assert "not found" in errors[0]["message"] and "no certificate found" in errors[1]["message"]


def test_no_web_server_gives_empty_facts(make_root):
    facts, errors = collect_tls(make_root({"/etc/hostname": "h\n"}))
    assert facts == {"config_files": [], "servers": [], "certificates": [], "crypto_policy": None} and errors == []


def test_crypto_policy(make_root):
    facts, _ = collect_tls(make_root({"/etc/crypto-policies/config": "# set by admin\nLEGACY:AD-SUPPORT\n"}))
    assert facts["crypto_policy"] == "LEGACY:AD-SUPPORT"


@pytest.fixture
def weak_web_root(make_root, tmp_path):
    return make_root({
        "/etc/os-release": 'ID="centos"\nVERSION_ID="7"\nNAME="CentOS Linux"\n',
        "/etc/nginx/nginx.conf": NGINX,
        "/etc/nginx/conf.d/site.conf": NGINX_SITE,
        "/etc/nginx/ssl/site.crt": openssl_sha1_cert(tmp_path, ca_signed=True).decode(),
        "/etc/nginx/ssl/self.crt": openssl_sha1_cert(tmp_path / "..", bits=2048).decode(),
    })


def test_scan_crypto_profile_on_weak_web_root(weak_web_root):
    from scanner.pipeline import scan_report
    report = scan_report(root=weak_web_root, profile="crypto", now=datetime.datetime(2031, 1, 1))
    status = dict((r["rule_id"], r["status"]) for r in report["results"])
    assert status["crypto.tls.protocol-versions"] == "fail"
    assert status["crypto.cert.expired"] == "fail"
    assert status["crypto.cert.key-strength"] == "fail"
    weak = [r for r in report["results"] if r["rule_id"] == "crypto.cert.weak-signature"][0]
    assert weak["status"] == "fail"
    # the CA-issued SHA-1 certificate fails; the self-signed one (a trust anchor) is not judged
    assert [(i["key"], i["status"]) for i in weak["items"]] == [("/etc/nginx/ssl/site.crt", "fail")]
    assert status["crypto.cert.sm2"] == "fail"
    assert status["crypto.ssh.weak-ciphers"] == "not_applicable"  # no sshd in this root
    assert status["crypto.sm.availability"] in ("error", "not_applicable")  # offline: SM support not probed
    tls_result = [r for r in report["results"] if r["rule_id"] == "crypto.tls.protocol-versions"][0]
    assert "TLSv1" in tls_result["items"][0]["actual"] and tls_result["items"][0]["key"] == "/etc/nginx/conf.d/site.conf"


def test_unset_protocols_are_unknown_not_safe(make_root):
    root = make_root({"/etc/nginx/nginx.conf": "http { server { listen 443 ssl; ssl_certificate /etc/nginx/a.crt; } }\n",
                      "/etc/nginx/a.crt": make_cert("rsa2048").decode()})
    facts, _ = collect_tls(root)
    assert facts["servers"] == [{"server": "nginx", "config": "/etc/nginx/nginx.conf", "line": None,
                                 "directive": "ssl_protocols", "protocols": None,
                                 "raw": facts["servers"][0]["raw"]}]
    assert "1.23.4" in facts["servers"][0]["raw"]
    from scanner.pipeline import scan_report
    res = [r for r in scan_report(root=root, profile="crypto")["results"]
           if r["rule_id"] == "crypto.tls.protocol-versions"][0]
    assert res["status"] == "error" and "unknown" in res["items"][0]["reason"]["en"]
