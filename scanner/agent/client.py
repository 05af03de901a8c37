"""HTTPS client for the aggregator (docs/api.md), stdlib only (http.client + ssl).

The server is authenticated either by a pinned CA file (normal certificate and
host name verification against that CA only) or by the SHA-256 fingerprint of
its certificate (compared before any request byte is sent).
"""
from __future__ import absolute_import

import gzip
import hashlib
import hmac
import http.client
import json
import socket
import ssl

from scanner.agent import testhook
from scanner.errors import XcscanError

try:  # Python 3.7 has it; keep a fallback for odd builds
    _CertError = ssl.SSLCertVerificationError
except AttributeError:  # pragma: no cover
    _CertError = ssl.CertificateError


class TransportError(Exception):
    """The server could not be reached or answered 5xx: try again later."""


class TrustError(Exception):
    """The server's certificate is not the one we trust: never send anything."""


class Response(object):
    def __init__(self, status, body):
        self.status = status
        self.raw = body
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except ValueError:
            self.json = None

    @property
    def error_code(self):
        return self.json.get("error") if isinstance(self.json, dict) else None

    @property
    def message(self):
        if isinstance(self.json, dict):
            for key in ("message", "detail", "error"):
                if self.json.get(key):
                    value = self.json[key]
                    return value if isinstance(value, str) else json.dumps(value)
        return self.raw[:200].decode("utf-8", "replace")


def parse_url(url):
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise XcscanError("the server URL must be https://HOST[:PORT][/PATH], got %r" % url)
    return parts.hostname, parts.port or 443, parts.path.rstrip("/")


class Client(object):
    def __init__(self, url, ca_file=None, fingerprint=None, timeout=30):
        if not ca_file and not fingerprint:
            raise XcscanError("the server cannot be authenticated: give --ca FILE or --fingerprint SHA256")
        self.url = url
        self.host, self.port, self.prefix = parse_url(url)
        self.ca_file = ca_file
        self.fingerprint = fingerprint
        self.timeout = timeout

    def _context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.ca_file:
            try:
                ctx.load_verify_locations(cafile=self.ca_file)
            except (IOError, OSError, ssl.SSLError) as exc:
                raise XcscanError("cannot load the CA certificate: %s" % (getattr(exc, "strerror", None) or exc),
                                  path=self.ca_file, hint="give the CA file made by `xcscan server init`")
            ctx.check_hostname = True
            ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the pinned fingerprint is checked instead, before sending
        return ctx

    def _connect(self):
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self._context())
        try:
            conn.connect()
        except _CertError as exc:
            conn.close()
            raise TrustError("the server certificate is not signed by the pinned CA (%s)"
                             % getattr(exc, "verify_message", exc))
        except ssl.SSLError as exc:
            conn.close()
            raise TransportError("TLS handshake failed: %s" % exc)
        except (socket.timeout, OSError) as exc:
            conn.close()
            raise TransportError("cannot connect to %s:%d: %s" % (self.host, self.port,
                                                                  getattr(exc, "strerror", None) or exc))
        if self.fingerprint and not self.ca_file:
            der = conn.sock.getpeercert(binary_form=True) or b""
            seen = hashlib.sha256(der).hexdigest()
            if not hmac.compare_digest(seen, self.fingerprint):
                conn.close()
                raise TrustError("the server certificate fingerprint is %s, expected the pinned %s"
                                 % (seen, self.fingerprint))
        return conn

    def request(self, method, path, body=None, headers=None, pause_point=None):
        conn = self._connect()
        try:
            all_headers = {"User-Agent": "xcscan-agent", "Accept": "application/json"}
            all_headers.update(headers or {})
            try:
                conn.request(method, self.prefix + path, body=body, headers=all_headers)
                if pause_point:
                    testhook.pause(pause_point)
                resp = conn.getresponse()
                data = resp.read()
            except (socket.timeout, OSError, http.client.HTTPException) as exc:
                raise TransportError("%s %s failed: %s" % (method, path, getattr(exc, "strerror", None) or exc))
            return Response(resp.status, data)
        finally:
            conn.close()

    # -- API calls -------------------------------------------------------
    def enroll(self, token, hostname, machine_id, public_key_b64):
        body = json.dumps({"token": token, "hostname": hostname, "machine_id": machine_id,
                           "public_key": public_key_b64}).encode("utf-8")
        return self.request("POST", "/api/v1/enroll", body=body,
                            headers={"Content-Type": "application/json"})

    def submit(self, host_id, timestamp, signature, body, compress=True):
        headers = {"Content-Type": "application/json", "X-Xcscan-Host": host_id,
                   "X-Xcscan-Timestamp": str(int(timestamp)), "X-Xcscan-Signature": signature}
        payload = body
        if compress:
            payload = gzip.compress(body, 6)
            headers["Content-Encoding"] = "gzip"
        return self.request("POST", "/api/v1/reports", body=payload, headers=headers,
                            pause_point="upload-sent")

    def probe(self):
        """(reachable, detail) without side effects."""
        try:
            resp = self.request("GET", "/api/v1/openapi.json")
        except (TransportError, TrustError) as exc:
            return False, str(exc)
        return True, "HTTP %d" % resp.status
