"""The admin page's upload form for air-gap transfer bundles, against a real server over TLS: the
import is the same as `xcscan server import` (accepted, duplicate, refused with reasons; a receipt to
download that `xcscan agent confirm` accepts), only a logged-in fleet-wide admin's body is read at
all, the CSRF token is required, and an upload over the size limit is refused before it is read."""
from __future__ import annotations

import json
import os
import re
import socket
import ssl
import time
import uuid

import pytest

from fleet import Agent, body_of
from server_support import ADMIN, OFFICER, make_server

STRONG = "Plum-Orchard-Lantern-7"


def web_login(server, who=ADMIN):
    c = server.client(follow_redirects=False)
    form = c.get("/login", params={"lang": "en"})
    r = c.post("/login", data={"username": who[0], "password": who[1], "csrf_token": csrf_of(form), "next": "/"})
    assert r.status_code == 303, r.text
    return c


def csrf_of(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def make_bundle(tmp_path, signed):
    """A bundle as `xcscan agent export` writes it, from [(agent, doc, forge)] (oldest first)."""
    from scanner.agent.spool import Spool
    from scanner.agent.transfer import write_bundle
    spool = Spool(str(tmp_path / ("spool-%s" % uuid.uuid4().hex[:6])))
    spool.ensure()
    files = []
    for agent, doc, forge in signed:
        body = body_of(doc)
        h = agent.headers(body)
        signature = h["X-Xcscan-Signature"][:-4] + "AAA=" if forge else h["X-Xcscan-Signature"]
        name = spool.write(doc["report_id"], agent.host_id, int(h["X-Xcscan-Timestamp"]), signature, body)
        entry = spool.read(name)
        with open(entry.path, "rb") as fh:
            files.append((name, fh.read(), entry.header))
        time.sleep(0.001)
    out = str(tmp_path / ("b-%s.xcb" % uuid.uuid4().hex[:6]))
    write_bundle(out, files)
    return out


def upload(client, path, csrf, name="b.xcb"):
    data = {"csrf_token": csrf} if csrf is not None else {}
    with open(path, "rb") as fh:
        return client.post("/admin/transfer", data=data, files={"bundle": (name, fh, "application/octet-stream")})


def test_upload_imports_like_the_command_line_and_gives_a_receipt(server, tmp_path):
    from scanner.agent.transfer import receipt_digest
    org = "/upload-%s" % uuid.uuid4().hex[:6]
    a = Agent("up-%s" % uuid.uuid4().hex[:6], machine_id=uuid.uuid4().hex)
    with server.client() as c:
        assert a.enroll(c, server.token(org=org)).status_code == 201
    docs = [a.report(), a.report(), a.report()]
    bundle = make_bundle(tmp_path, [(a, docs[0], False), (a, docs[1], False), (a, docs[2], True)])
    w = web_login(server)
    page = w.get("/admin/transfer")
    assert page.status_code == 200 and 'id="transfer-form"' in page.text
    assert 'href="/admin/transfer"' in w.get("/admin").text
    before = server.counts()
    # no CSRF token: refused, nothing imported
    r = upload(w, bundle, None)
    assert r.status_code == 403
    r = upload(w, bundle, "x" * 32)
    assert r.status_code == 403
    assert server.counts() == before

    r = upload(w, bundle, csrf_of(page))
    assert r.status_code == 200, r.text
    counts = re.search(r'id="transfer-counts" data-accepted="(\d+)" data-duplicate="(\d+)" data-refused="(\d+)"', r.text)
    assert counts.groups() == ("2", "0", "1"), r.text
    assert r.text.count('<tr data-status="refused">') == 1 and "bad_signature" in r.text
    with server.login() as c:
        ids = [h["id"] for h in c.get("/api/v1/hosts/%s/history" % a.host_id).json()]
        audit = [e for e in c.get("/api/v1/audit", params={"limit": 500}).json() if e["action"] == "transfer.import"]
    assert sorted(ids) == sorted([docs[0]["report_id"], docs[1]["report_id"]])
    assert audit and audit[0]["actor"] == ADMIN[0] and audit[0]["detail"] == {"accepted": 2, "duplicate": 0, "refused": 1}

    link = re.search(r'href="(/admin/transfer/receipts/[0-9a-f]{32}\.json)"', r.text).group(1)
    got = w.get(link)
    assert got.status_code == 200 and "attachment" in got.headers["content-disposition"]
    receipt = got.json()
    assert receipt["sha256"] == receipt_digest(receipt)
    assert [x["status"] for x in receipt["results"]] == ["accepted", "accepted", "refused"]
    assert [x["report_id"] for x in receipt["results"]] == [d["report_id"] for d in docs]
    assert w.get("/admin/transfer/receipts/../server.json").status_code == 404
    assert w.get("/admin/transfer/receipts/%s.json" % ("0" * 32)).status_code == 404

    again = upload(w, bundle, csrf_of(page))
    assert re.search(r'data-accepted="0" data-duplicate="2" data-refused="1"', again.text), again.text
    bad = tmp_path / "not-a-bundle.xcb"
    bad.write_bytes(os.urandom(4096))
    r = upload(w, str(bad), csrf_of(page))
    assert r.status_code == 400 and 'id="transfer-error"' in r.text and "not a transfer bundle" in r.text
    assert not [n for n in os.listdir(server.data_dir) if n.startswith(".upload-")]  # no upload left behind
    w.close()

    # an officer, an auditor and a department's admin may not import (nor download receipts)
    off = web_login(server, OFFICER)
    assert off.get("/admin/transfer").status_code == 403
    assert upload(off, bundle, csrf_of(off.get("/"))).status_code == 403
    assert off.get(link).status_code == 403
    off.close()
    dept = "dadm%s" % uuid.uuid4().hex[:6]
    with server.login() as c:
        assert c.post("/api/v1/users", json={"username": dept, "password": STRONG, "role": "admin",
                                             "orgs": [org]}).status_code == 201
    d = web_login(server, (dept, STRONG))
    assert d.get("/admin/transfer").status_code == 403
    assert upload(d, bundle, csrf_of(d.get("/admin"))).status_code == 403
    assert 'href="/admin/transfer"' not in d.get("/admin").text
    d.close()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A server (SQLite) that takes bundle uploads of at most 64 KiB."""
    srv = make_server(tmp_path_factory, "sqlite", settings={"max_bundle_upload": 64 * 1024})
    yield srv
    srv.stop()


def raw_post(server, path, head_extra, body=b"", wait=10):
    """Send a request head (and ``body``) on a TLS socket; return (status, seconds to the answer)."""
    ctx = ssl.create_default_context(cafile=server.ca)
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            t0 = time.monotonic()
            s.sendall(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" % (path, head_extra)).encode() + body)
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return int(data.split(b" ")[1]), time.monotonic() - t0


def test_an_upload_over_the_limit_is_refused_before_it_is_read(small, tmp_path):
    w = web_login(small)
    cookie = "; ".join("%s=%s" % (k, v) for k, v in w.cookies.items())
    csrf = csrf_of(w.get("/admin/transfer"))
    # declared: answered at once, although not one byte of the 200 MiB follows the head
    status, took = raw_post(small, "/admin/transfer", "Cookie: %s\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                            "Content-Length: %d\r\n" % (cookie, 200 * 1024 * 1024))
    assert status == 413 and took < 5
    # anonymous: sent to the login page, the body never read
    status, took = raw_post(small, "/admin/transfer", "Content-Type: multipart/form-data; boundary=x\r\n"
                            "Content-Length: %d\r\n" % (200 * 1024 * 1024))
    assert status == 303 and took < 5

    # undeclared (chunked): cut off once it passes the limit
    def chunks():
        yield ('--x\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n%s\r\n'
               '--x\r\nContent-Disposition: form-data; name="bundle"; filename="big.xcb"\r\n'
               'Content-Type: application/octet-stream\r\n\r\n' % csrf).encode()
        for _ in range(64):
            yield os.urandom(4096)
        yield b"\r\n--x--\r\n"
    before = small.counts()
    r = w.post("/admin/transfer", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and "64 KiB" in r.text and "xcscan server import" in r.text
    assert small.counts() == before
    # a bundle within the limit still goes through
    a = Agent("small-%s" % uuid.uuid4().hex[:6], machine_id=uuid.uuid4().hex)
    with small.client() as c:
        assert a.enroll(c, small.token(org="/small")).status_code == 201
    bundle = make_bundle(tmp_path, [(a, a.report(), False)])
    assert os.path.getsize(bundle) < 64 * 1024
    w2 = web_login(small)
    r = upload(w2, bundle, csrf_of(w2.get("/admin/transfer")))
    assert r.status_code == 200 and 'data-accepted="1"' in r.text, r.text
    assert not [n for n in os.listdir(small.data_dir) if n.startswith(".upload-")]
    w.close()
    w2.close()
    with open(os.path.join(small.data_dir, "receipts", os.listdir(os.path.join(small.data_dir, "receipts"))[0])) as fh:
        assert json.load(fh)["counts"]["accepted"] == 1
    assert oct(os.stat(os.path.join(small.data_dir, "receipts")).st_mode & 0o777) == "0o700"
