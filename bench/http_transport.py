"""The transport's share of a report: TLS and HTTP of a report-sized POST, nothing else.

A Uvicorn worker serving an ASGI app that only reads the body and answers 200 (no routing, no
parsing, no database), over TLS with keep-alive connections from ``--clients`` threads, each request
the size of a real report on the wire (``--body-bytes``, default 82,000: ``xcscan scan --profile all``
gzip'd) with an agent's headers. Prints the server process's CPU per request for each HTTP protocol
in ``--protocols``, interleaved ``--rounds`` times (this machine's speed moves within a minute):

- ``guarded``: ``scanner.server.connguard:GuardedHttpToolsProtocol``, what ``xcscan server serve`` runs
  (httptools with the head and body deadlines, head limits and per-client cap);
- ``httptools`` and ``h11``: Uvicorn's own protocols without the guard;
- any other ``module:Class`` is passed to Uvicorn as it is, with ``--path DIR`` put first on the server's
  import path (e.g. an earlier checkout's guard: ``--path CHECKOUT/scanner/server --protocols
  guarded,connguard:GuardedH11Protocol``).

    python bench/http_transport.py [--requests 2000] [--rounds 3]

This is the part of the server's CPU per report that bench/intake_floor.py (in process) does not see
and bench/server_load.py (the whole server) does.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

PROTOCOLS = {"guarded": "scanner.server.connguard:GuardedHttpToolsProtocol", "httptools": "httptools", "h11": "h11"}

APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    n, more = 0, True
    while more:
        m = await receive()
        n += len(m.get("body", b""))
        more = m.get("more_body", False)
    body = b'{"ok":%d}' % n
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
'''


def certificate(tmp):
    """A self-signed P-256 certificate for 127.0.0.1 (as `xcscan server init` makes one)."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    paths = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    with open(paths[0], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


def one_run(protocol, tmp, cert, key, opts):
    import psutil
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("import sys; sys.path[:0] = %r; import uvicorn; uvicorn.run('transport_app:app', host='127.0.0.1', "
            "port=%d, http=%r, log_level='warning', ssl_certfile=%r, ssl_keyfile=%r)"
            % ([tmp] + ([opts.path] if opts.path else []), port, PROTOCOLS.get(protocol, protocol), cert, key))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp)
    ctx = ssl.create_default_context(cafile=cert)
    try:
        deadline = time.time() + 30
        while True:
            try:
                c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
                c.request("GET", "/")
                c.getresponse().read()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.1)
        body = os.urandom(opts.body_bytes)
        headers = {"Content-Type": "application/octet-stream", "Content-Encoding": "gzip",
                   "X-Xcscan-Signature": "a" * 88, "X-Xcscan-Timestamp": "1765000000", "X-Xcscan-Host": "h" * 36}

        def client(k):
            c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
            for _ in range(k):
                c.request("POST", "/api/v1/reports", body=body, headers=headers)
                r = c.getresponse()
                r.read()
                assert r.status == 200, r.status
            c.close()

        def load(k):
            threads = [threading.Thread(target=client, args=(k,)) for _ in range(opts.clients)]
            [t.start() for t in threads]
            [t.join() for t in threads]
        server = psutil.Process(proc.pid)
        load(20)  # warm: connections, TLS sessions, code paths
        per_client = max(1, opts.requests // opts.clients)
        c0, t0 = sum(server.cpu_times()[:2]), time.time()
        load(per_client)
        c1, t1 = sum(server.cpu_times()[:2]), time.time()
        n = per_client * opts.clients
        return {"protocol": protocol, "requests": n, "server_cpu_ms_per_request": round((c1 - c0) * 1000.0 / n, 3),
                "requests_per_s": round(n / (t1 - t0), 1)}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--body-bytes", type=int, default=82000)
    ap.add_argument("--protocols", default="guarded,httptools,h11")
    ap.add_argument("--path", help="a directory put first on the server's import path (for a module:Class protocol)")
    opts = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="xcscan-transport-")
    try:
        with open(os.path.join(tmp, "transport_app.py"), "w") as f:
            f.write(APP)
        cert, key = certificate(tmp)
        runs = {}
        for _ in range(opts.rounds):
            for protocol in opts.protocols.split(","):
                got = one_run(protocol, tmp, cert, key, opts)
                print(json.dumps(got), flush=True)
                runs.setdefault(protocol, []).append(got["server_cpu_ms_per_request"])
        print(json.dumps({"median_server_cpu_ms_per_request": {p: sorted(v)[len(v) // 2] for p, v in runs.items()},
                          "body_bytes": opts.body_bytes, "clients": opts.clients, "cpus": os.cpu_count()}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
