"""Files and transport (#12 item 8): init tightens an existing data directory, the CA private key can
stay offline while the real server runs, and answers carrying secrets or evidence are not cached."""
from __future__ import annotations

import os
import shutil
import stat
import uuid

from fleet import Agent
from server_support import ADMIN, Server, run_cli

SECRETS = ("xcscan.db", "server.json", "server.key", "ca.key")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_init_into_an_existing_directory_makes_it_private(tmp_path):
    data = tmp_path / "srv"
    data.mkdir(mode=0o755)
    os.chmod(str(data), 0o755)  # an administrator made it with the usual umask
    env = {"XCSCAN_ADMIN_PASSWORD": ADMIN[1]}
    out = run_cli(["server", "init", "--data-dir", str(data)], env=env).stdout
    assert mode(str(data)) == 0o700
    for name in SECRETS:
        assert mode(str(data / name)) == 0o600, name
    assert "keep it offline" in out and "ca.key" in out
    # loosened later (a restore, a copy): init over it again tightens everything, keeps the data
    os.chmod(str(data), 0o755)
    for name in SECRETS:
        os.chmod(str(data / name), 0o644)
    run_cli(["server", "init", "--data-dir", str(data)], env=env)
    assert mode(str(data)) == 0o700 and all(mode(str(data / n)) == 0o600 for n in SECRETS)
    assert mode(str(data / "ca.pem")) == 0o644  # public: agents pin it


def test_the_server_runs_with_the_ca_key_kept_offline(tmp_path):
    data = tmp_path / "srv"
    run_cli(["server", "init", "--data-dir", str(data)], env={"XCSCAN_ADMIN_PASSWORD": ADMIN[1]})
    offline = tmp_path / "usb"
    offline.mkdir()
    shutil.move(str(data / "ca.key"), str(offline / "ca.key"))
    srv = Server(data, None, "sqlite").start()
    try:
        with srv.login() as c:
            assert c.get("/api/v1/overview").status_code == 200
        assert not (data / "ca.key").exists()
    finally:
        srv.stop()


def test_secrets_and_evidence_are_never_cached(server):
    a = Agent("nocache-%s" % uuid.uuid4().hex[:6])
    with server.client() as c:
        r = c.post("/api/v1/session", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
        assert a.enroll(c, server.token(org="/nocache")).status_code == 201
        doc = a.report()
        assert a.submit(c, doc).status_code == 200
    with server.login() as c:
        for resp in (c.post("/api/v1/tokens", json={"org": "/nocache", "uses": 1}),
                     c.get("/api/v1/reports/%s" % doc["report_id"]),
                     c.get("/api/v1/export/findings", params={"format": "csv"}),
                     c.get("/api/v1/export/inventory", params={"format": "json"}),
                     c.get("/api/v1/findings"), c.get("/hosts/%s" % a.host_id)):
            assert resp.status_code in (200, 201) and resp.headers["Cache-Control"] == "no-store", resp.request.url


def test_behind_a_trusted_proxy_cookies_stay_secure_and_hsts_is_sent(tmp_path):
    """`serve --insecure-http` behind a TLS-terminating proxy at 127.0.0.1 (trusted_proxies): what the
    proxy says (X-Forwarded-Proto https, X-Forwarded-For) is believed from it and from nobody else."""
    import json
    import subprocess
    import sys
    import time
    import httpx
    from server_support import free_port
    data = tmp_path / "srv"
    run_cli(["server", "init", "--data-dir", str(data)], env={"XCSCAN_ADMIN_PASSWORD": ADMIN[1]})
    cfg = json.loads((data / "server.json").read_text())
    cfg.update(trusted_proxies="127.0.0.1", max_connections_per_client=0)
    (data / "server.json").write_text(json.dumps(cfg))
    port = free_port()
    log = open(str(data / "serve.log"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "scanner", "server", "serve", "--data-dir", str(data), "--port",
                             str(port), "--insecure-http", "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT)
    base = "http://127.0.0.1:%d" % port
    try:
        for _ in range(150):
            try:
                httpx.get(base + "/login", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
        with httpx.Client(base_url=base) as via_proxy:
            page = via_proxy.get("/login", headers=proxied)
            assert "secure" in page.headers["set-cookie"].lower()
            assert page.headers["Strict-Transport-Security"].startswith("max-age=")
            token = via_proxy.post("/api/v1/session", json={"username": ADMIN[0], "password": ADMIN[1]},
                                   headers=proxied).json()["token"]
        with httpx.Client(base_url=base, transport=httpx.HTTPTransport(local_address="127.0.0.7")) as direct:
            page = direct.get("/login", headers=proxied)  # not the proxy: its forwarded headers mean nothing
            assert "secure" not in page.headers["set-cookie"].lower()
            assert "Strict-Transport-Security" not in page.headers
            assert direct.post("/api/v1/session", json={"username": ADMIN[0], "password": ADMIN[1]},
                               headers=proxied).status_code == 200
            rows = direct.get("/api/v1/audit", headers={"Authorization": "Bearer " + token}).json()
        ips = [r["ip"] for r in rows if r["action"] == "login"]
        assert "203.0.113.9" in ips and "127.0.0.7" in ips
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
