"""A small, real HTTPS aggregator for agent tests, implementing docs/api.md's checks.

It exists so the agent's spool/lock/sign/upload behaviour can be tested
without the full FastAPI aggregator (which has its own end-to-end test in
test_e2e_server.py). It verifies exactly what the real server verifies:
size limits, known host, Ed25519 signature over the uncompressed body,
timestamp window, JSON/schema, machine id; and it deduplicates on report_id
with an identical acknowledgement. It can be stopped and restarted on the same
port to simulate an outage.
"""
import base64
import datetime
import gzip
import json
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

MAX_BODY = 16 * 1024 * 1024


def make_pki(directory, hosts=("127.0.0.1", "localhost")):
    """CA + server certificate (EC P-256) in ``directory``; returns dict of paths and fingerprint."""
    import ipaddress
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xcscan test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": str(directory / "ca.pem"), "cert": str(directory / "server.pem"),
             "key": str(directory / "server.key")}
    with open(paths["ca"], "wb") as fh:
        fh.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths["cert"], "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["key"], "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    paths["fingerprint"] = cert.fingerprint(hashes.SHA256()).hex()
    return paths


class State(object):
    def __init__(self):
        self.lock = threading.RLock()
        self.tokens = {}       # token -> org
        self.hosts = {}        # host_id -> {"public_key", "machine_id", "hostname", "org"}
        self.reports = []      # stored reports in arrival order: {"report_id", "host_id", "report", "ack"}
        self.acks = {}         # (host_id, report_id) -> ack
        self.requests = []     # (path, status)
        self.window = 14 * 86400
        self.fail_next = 0     # answer this many report submissions with 503 (a struggling server)


def _handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, status, doc):
            data = json.dumps(doc).encode()
            with state.lock:  # recorded before the client can see the answer (no race with asserts)
                state.requests.append((self.path, status))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status, code, message):
            self._send(status, {"error": code, "message": message})

        def do_GET(self):
            if self.path == "/api/v1/openapi.json":
                return self._send(200, {"openapi": "3.1.0"})
            self._error(404, "not_found", self.path)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self._error(413, "too_large", "body over limit")
            raw = self.rfile.read(length)
            if self.path == "/api/v1/enroll":
                return self._enroll(raw)
            if self.path == "/api/v1/reports":
                return self._report(raw)
            self._error(404, "not_found", self.path)

        def _enroll(self, raw):
            try:
                doc = json.loads(raw)
                key = base64.b64decode(doc["public_key"])
                Ed25519PublicKey.from_public_bytes(key)
            except Exception as exc:
                return self._error(400, "bad_request", str(exc))
            with state.lock:
                org = state.tokens.get(doc.get("token"))
                if org is None:
                    return self._error(401, "unknown_token", "unknown enrollment token")
                host_id = str(uuid.uuid4())
                state.hosts[host_id] = {"public_key": key, "machine_id": doc.get("machine_id"),
                                        "hostname": doc.get("hostname"), "org": org}
            self._send(201, {"host_id": host_id, "org": org, "server_time": int(time.time())})

        def _report(self, raw):
            with state.lock:
                if state.fail_next > 0:
                    state.fail_next -= 1
                    return self._error(503, "unavailable", "database is busy")
            if self.headers.get("Content-Encoding") == "gzip":
                try:
                    raw = gzip.decompress(raw)
                except Exception:
                    return self._error(400, "bad_encoding", "not gzip")
            if len(raw) > MAX_BODY:
                return self._error(413, "too_large", "decompressed body over limit")
            host_id = self.headers.get("X-Xcscan-Host") or ""
            with state.lock:
                host = state.hosts.get(host_id)
            if host is None:
                return self._error(401, "unknown_host", "unknown host")
            ts = self.headers.get("X-Xcscan-Timestamp") or ""
            try:
                sig = base64.b64decode(self.headers.get("X-Xcscan-Signature") or "")
                msg = b"xcscan-report/1\n" + host_id.encode() + b"\n" + ts.encode() + b"\n" + raw
                Ed25519PublicKey.from_public_bytes(host["public_key"]).verify(sig, msg)
            except Exception:
                return self._error(401, "bad_signature", "signature does not verify")
            now = time.time()
            if not ts.isdigit() or int(ts) < now - state.window or int(ts) > now + 300:
                return self._error(401, "stale_timestamp", "timestamp outside the window")
            try:
                report = json.loads(raw)
                assert report["schema"] == "xcscan.report/1"
                uuid.UUID(report["report_id"])
            except Exception:
                return self._error(422, "bad_report", "not an xcscan.report/1 document")
            if host["machine_id"] and (report.get("host") or {}).get("machine_id") != host["machine_id"]:
                return self._error(403, "host_mismatch", "machine id differs from enrollment")
            key = (host_id, report["report_id"])
            with state.lock:
                ack = state.acks.get(key)
                if ack is None:
                    ack = {"report_id": report["report_id"], "host_id": host_id,
                           "received_at": datetime.datetime.utcnow().isoformat() + "Z", "status": "accepted"}
                    state.acks[key] = ack
                    state.reports.append({"report_id": report["report_id"], "host_id": host_id,
                                          "report": report, "ack": ack, "timestamp": int(ts)})
            self._send(200, ack)

    return Handler


class StubAggregator(object):
    def __init__(self, pki, state=None, port=0):
        self.pki = pki
        self.state = state or State()
        self.port = port
        self.httpd = None
        self.thread = None

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    def start(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki["cert"], self.pki["key"])
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self.state))
        httpd.allow_reuse_address = True
        httpd.daemon_threads = True
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        self.port = httpd.server_address[1]
        self.httpd = httpd
        self.thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
