"""TLS: server certificates and protocol settings of nginx, Apache httpd and Tomcat.

Certificates come from the configs (``ssl_certificate``, ``SSLCertificateFile``,
Tomcat ``certificateFile``) plus a bounded set of ``.crt``/``.pem`` files in the
usual certificate directories. The system CA store is skipped: bundles,
symlinks into /usr/share/ca-certificates, hash links and files with many
certificates are trust anchors, not server certificates.

facts.tls = {"config_files": [...], "servers": [{server, config, line, directive,
protocols, raw}], "certificates": [{path, index, referenced_by, subject, ...}]}
"""
from __future__ import absolute_import

import posixpath
import re

NAME = "tls"
LIVE_ONLY = False

NGINX_MAIN = ("/etc/nginx/nginx.conf", "/usr/local/nginx/conf/nginx.conf", "/usr/local/openresty/nginx/conf/nginx.conf")
NGINX_DIRS = ("/etc/nginx/conf.d", "/etc/nginx/sites-enabled")
HTTPD_MAIN = ("/etc/httpd/conf/httpd.conf", "/etc/apache2/apache2.conf", "/usr/local/apache2/conf/httpd.conf")
HTTPD_DIRS = ("/etc/httpd/conf.d", "/etc/apache2/sites-enabled", "/etc/apache2/mods-enabled")
TOMCAT_GLOBS = ("/etc/tomcat*/server.xml", "/opt/tomcat*/conf/server.xml", "/usr/share/tomcat*/conf/server.xml",
                "/usr/local/tomcat*/conf/server.xml")
CERT_DIRS = ("/etc/pki/tls/certs", "/etc/ssl/certs", "/etc/pki/nginx", "/etc/nginx/ssl", "/etc/httpd/ssl",
             "/etc/apache2/ssl")
CA_STORE_NAMES = ("ca-bundle.crt", "ca-bundle.trust.crt", "ca-certificates.crt", "tls-ca-bundle.pem",
                  "ca-bundle.pem", "cert.pem")
HASH_LINK_RE = re.compile(r"^[0-9a-f]{8}\.\d+$")
MAX_CONFIG_FILES = 60
MAX_DIR_CERTS = 20
MAX_CERT_BYTES = 256 * 1024
MAX_CERTS_IN_DIR_FILE = 3  # more than this in one file is a bundle (trust store), not a server cert

_NGX_TOKEN = re.compile(r"(?:^|[;{}])[ \t]*(ssl_certificate|ssl_protocols|include)\s+([^;#{}]+);", re.M)
_HTTPD_TOKEN = re.compile(r"^\s*(SSLCertificateFile|SSLProtocol|Include|IncludeOptional)\s+(.+?)\s*$", re.M | re.I)


def _line_of(text, pos):
    return text.count("\n", 0, pos) + 1


def _strip_comments(text, marker="#"):
    return "\n".join(line.split(marker, 1)[0] if line.lstrip().startswith(marker) else line
                     for line in text.split("\n"))


def _expand(fs, pattern, base):
    pattern = pattern.strip().strip("\"'")
    if not pattern.startswith("/"):
        pattern = posixpath.join(base, pattern)
    if any(c in pattern for c in "*?["):
        directory, name = posixpath.split(pattern)
        if any(c in directory for c in "*?["):
            return []  # wildcards only in the last component (bounded)
        return fs.glob(pattern)
    return [pattern]


def nginx_protocols(value):
    return [p for p in value.split() if p]


def httpd_protocols(value):
    """SSLProtocol: 'all -SSLv3 -TLSv1' -> the enabled set."""
    known = ["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
    enabled = set()
    for tok in value.split():
        t = tok.strip()
        sign = "+"
        if t[:1] in "+-":
            sign, t = t[0], t[1:]
        names = known[1:] if t.lower() == "all" else [k for k in known if k.lower() == t.lower()]
        for n in names:
            if sign == "-":
                enabled.discard(n)
            else:
                enabled.add(n)
    return [k for k in known if k in enabled]


class _Scan(object):
    def __init__(self, ctx):
        self.ctx = ctx
        self.fs = ctx.fs
        self.config_files = []
        self.servers = []
        self.cert_refs = {}  # path -> [config files]

    def add_ref(self, path, config):
        refs = self.cert_refs.setdefault(path, [])
        if config not in refs:
            refs.append(config)

    def read(self, path):
        if path in self.config_files or len(self.config_files) >= MAX_CONFIG_FILES:
            return None
        text = self.fs.read_text(path)
        if text is None:
            return None
        self.config_files.append(path)
        return text

    def nginx(self, path, base):
        text = self.read(path)
        if text is None:
            return
        text = _strip_comments(text)
        for m in _NGX_TOKEN.finditer(text):
            key, value = m.group(1), m.group(2).strip()
            line = _line_of(text, m.start(1))
            if key == "include":
                for inc in _expand(self.fs, value, base):
                    self.nginx(inc, base)
            elif key == "ssl_certificate":
                if not value.startswith("data:") and "$" not in value:
                    cert = value.strip("\"'")
                    cert = cert if cert.startswith("/") else posixpath.join(base, cert)
                    self.add_ref(cert, path)
            else:
                self.servers.append({"server": "nginx", "config": path, "line": line, "directive": key,
                                     "protocols": nginx_protocols(value), "raw": value})

    def httpd(self, path, base):
        text = self.read(path)
        if text is None:
            return
        text = _strip_comments(text)
        for m in _HTTPD_TOKEN.finditer(text):
            key, value = m.group(1).lower(), m.group(2).strip()
            line = _line_of(text, m.start())
            if key in ("include", "includeoptional"):
                for inc in _expand(self.fs, value, base):
                    if self.fs.isdir(inc):
                        for name in self.fs.listdir(inc) or []:
                            if name.endswith(".conf"):
                                self.httpd(posixpath.join(inc, name), base)
                    else:
                        self.httpd(inc, base)
            elif key == "sslcertificatefile":
                cert = value.strip("\"'")
                self.add_ref(cert if cert.startswith("/") else posixpath.join(base, cert), path)
            else:
                self.servers.append({"server": "httpd", "config": path, "line": line, "directive": "SSLProtocol",
                                     "protocols": httpd_protocols(value), "raw": value})

    def tomcat(self, path):
        text = self.read(path)
        if text is None:
            return
        text = re.sub(r"<!--.*?-->", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
        base = posixpath.dirname(posixpath.dirname(path)) if path.endswith("/conf/server.xml") else "/"
        for m in re.finditer(r"\b(certificateFile|sslEnabledProtocols|protocols|sslProtocol)\s*=\s*\"([^\"]*)\"", text):
            key, value = m.group(1), m.group(2)
            line = _line_of(text, m.start())
            if key == "certificateFile":
                cert = value.replace("${catalina.base}", base).replace("${catalina.home}", base)
                self.add_ref(cert if cert.startswith("/") else posixpath.join(base, cert), path)
            elif key == "protocols" and not re.search(r"TLS|SSL", value, re.I):
                continue  # Connector protocol="HTTP/1.1"-style attributes are not TLS versions
            else:
                protos = [p.strip().lstrip("+") for p in re.split(r"[,+ ]+", value) if p.strip()]
                self.servers.append({"server": "tomcat", "config": path, "line": line, "directive": key,
                                     "protocols": protos, "raw": value})


def _dir_cert_candidates(fs):
    out = []
    for directory in CERT_DIRS:
        for name in fs.listdir(directory) or []:
            if len(out) >= MAX_DIR_CERTS:
                return out
            if not name.endswith((".crt", ".pem", ".cer")) or name in CA_STORE_NAMES or HASH_LINK_RE.match(name):
                continue
            path = posixpath.join(directory, name)
            st = fs.lstat(path)
            if st is None:
                continue
            import stat as stat_mod
            if stat_mod.S_ISLNK(st.st_mode):
                continue  # links into the CA store (/usr/share/ca-certificates, /etc/pki/ca-trust)
            if not stat_mod.S_ISREG(st.st_mode) or st.st_size > MAX_CERT_BYTES:
                continue
            out.append(path)
    return out


def collect(ctx):
    from scanner.collect._x509 import der_is_ca, parse_pem_bundle, pem_blocks
    fs = ctx.fs
    scan = _Scan(ctx)
    for main in NGINX_MAIN:
        if fs.isfile(main):
            scan.nginx(main, posixpath.dirname(main))
    for directory in NGINX_DIRS:
        for name in fs.listdir(directory) or []:
            scan.nginx(posixpath.join(directory, name), "/etc/nginx")
    for main in HTTPD_MAIN:
        if fs.isfile(main):
            root = "/etc/httpd" if main.startswith("/etc/httpd") else posixpath.dirname(main)
            scan.httpd(main, root)
    for directory in HTTPD_DIRS:
        base = "/etc/httpd" if directory.startswith("/etc/httpd") else "/etc/apache2"
        for name in fs.listdir(directory) or []:
            if name.endswith(".conf"):
                scan.httpd(posixpath.join(directory, name), base)
    from scanner.collect._paths import glob_paths
    for pattern in TOMCAT_GLOBS:
        for p in glob_paths(fs, pattern):
            scan.tomcat(p)
    certificates = []
    paths = list(scan.cert_refs)
    from_dirs = [p for p in _dir_cert_candidates(fs) if p not in scan.cert_refs]
    for path in paths + from_dirs:
        data = fs.read_bytes(path, max_bytes=MAX_CERT_BYTES, missing_ok=False)
        if data is None:
            continue
        if path in from_dirs:
            ders = pem_blocks(data)
            if not ders or len(ders) > MAX_CERTS_IN_DIR_FILE or all(der_is_ca(d) for d in ders):
                continue  # a bundle or a CA in a cert directory: trust anchors, not server certificates
        parsed = parse_pem_bundle(data)
        if not parsed:
            if path in scan.cert_refs:
                ctx.error(path, "no certificate found in the file referenced by %s" % ", ".join(scan.cert_refs[path]))
            continue
        for index, facts in parsed:
            entry = {"path": path, "index": index, "referenced_by": list(scan.cert_refs.get(path, []))}
            entry.update(facts)
            certificates.append(entry)
    _implicit_defaults(scan)
    return {"config_files": scan.config_files, "servers": scan.servers, "certificates": certificates,
            "crypto_policy": crypto_policy(fs)}


def crypto_policy(fs):
    """RHEL-family system crypto policy (/etc/crypto-policies/config: DEFAULT, LEGACY, FUTURE, FIPS[:SUB]), or None."""
    text = fs.read_text("/etc/crypto-policies/config", report=False)
    if text is None:
        return None
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            return line
    return None


# Protocol defaults depend on the server version (nginx enabled TLSv1/1.1 by default before 1.23.4; Apache
# 2.4's "all -SSLv3" includes them unless a system crypto policy removes them): unknown, never assumed safe.
IMPLICIT = {
    "nginx": ("ssl_protocols", "not set; the default depends on the nginx version (TLSv1 TLSv1.1 TLSv1.2 "
                               "before 1.23.4)"),
    "httpd": ("SSLProtocol", "not set; Apache 2.4 defaults to 'all -SSLv3' (TLS 1.0/1.1 included unless "
                             "the system crypto policy removes them)"),
}


def _implicit_defaults(scan):
    """A server that serves TLS (a certificate is configured) but never sets its protocols gets an
    entry with ``protocols: null`` so rules report it as unknown instead of passing it."""
    for server, (directive, note) in IMPLICIT.items():
        configs = [c for refs in scan.cert_refs.values() for c in refs if _server_of(c) == server]
        if configs and not any(s["server"] == server for s in scan.servers):
            scan.servers.append({"server": server, "config": configs[0], "line": None, "directive": directive,
                                 "protocols": None, "raw": note})


def _server_of(config_path):
    if "/nginx" in config_path or "openresty" in config_path:
        return "nginx"
    if "/httpd" in config_path or "/apache" in config_path:
        return "httpd"
    return None
