"""Air-gap transfer end to end: a real aggregator (`xcscan server init/serve`, SQLite, TLS), an agent enrolled
while it could reach it, then cut off: it runs twice, exports a bundle, the bundle is imported with
`xcscan server import`, the receipt carried back clears the spool. Tampered bundles are refused per report."""
import gzip
import io
import json
import os
import shutil
import tarfile

import pytest

from conftest import FIXTURE_FILES, Agent, xcscan
from test_e2e_server import RealServer, free_port

pytestmark = pytest.mark.skipif(__import__("importlib").util.find_spec("fastapi") is None,
                                reason="the server extra is not installed")


@pytest.fixture
def offline_agent(tmp_path, scan_root):
    srv = RealServer(tmp_path / "server").init()
    srv.start()
    a = Agent(tmp_path / "agent", srv.url, srv.ca, scan_root)
    res = a.enroll(token=srv.token())
    assert res.returncode == 0, res.stderr
    srv.stop()                                   # import works on the data directory, served or not
    a.set(server="https://127.0.0.1:%d" % free_port(), retries=0, backoff=0)   # no route any more
    yield srv, a


def rewrite(src, dst, change):
    """Copy a bundle, letting ``change(name, data)`` return new bytes for a member."""
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for m in tin.getmembers():
            data = change(m.name, tin.extractfile(m).read())
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))


def import_(srv, bundle, receipt):
    return xcscan(["server", "import", "--data-dir", srv.data_dir, bundle, "--receipt", receipt])


def test_export_import_receipt_round_trip(offline_agent, tmp_path):
    srv, a = offline_agent
    for _ in range(2):
        res = a.run()
        assert res.returncode == 4, res.stderr          # spooled, not delivered
    spooled = a.spooled()
    assert len(spooled) == 2
    bundle = str(tmp_path / "usb" / "finance.xcb")
    os.makedirs(os.path.dirname(bundle))
    res = xcscan(["agent", "export", "--config", a.config, "-o", bundle])
    assert res.returncode == 0 and "exported 2 report(s)" in res.stderr, res.stderr
    assert a.spooled() == spooled, "exported reports stay until a receipt confirms them"
    res = xcscan(["agent", "export", "--config", a.config, "-o", str(tmp_path / "again.xcb")])
    assert "nothing to export" in res.stderr and not os.path.exists(str(tmp_path / "again.xcb"))

    receipt = str(tmp_path / "receipt.json")
    res = import_(srv, bundle, receipt)
    assert res.returncode == 0, res.stderr
    assert "accepted 2, duplicate 0, refused 0" in res.stderr
    doc = json.load(open(receipt))
    ids = [r["report_id"] for r in doc["results"]]
    host_id = a.get()["host_id"]
    assert srv.arrival_order(host_id) == ids, "stored once each, oldest first"
    spool_ids = [json.loads(open(os.path.join(a.spool, n), "rb").readline())["report_id"] for n in spooled]
    assert ids == spool_ids

    res = import_(srv, bundle, str(tmp_path / "receipt2.json"))
    assert "accepted 0, duplicate 2, refused 0" in res.stderr
    assert srv.arrival_order(host_id) == ids

    res = xcscan(["agent", "confirm", "--config", a.config, receipt])
    assert res.returncode == 0 and "cleared 2 report(s)" in res.stderr, res.stderr
    assert a.spooled() == []


def test_tampered_bundles_are_refused_per_report_with_reasons(offline_agent, tmp_path):
    srv, a = offline_agent
    for _ in range(2):
        assert a.run().returncode == 4
    bundle = str(tmp_path / "b.xcb")
    assert xcscan(["agent", "export", "--config", a.config, "-o", bundle]).returncode == 0
    with tarfile.open(bundle, "r:gz") as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    first, second = manifest["entries"]

    # 1. a report file changed in transit, checksums not updated: that report is refused, the other accepted
    def flip(name, data):
        return data.replace(b'"hostname"', b'"hostnamE"', 1) if name == first["file"] else data
    damaged = str(tmp_path / "damaged.xcb")
    rewrite(bundle, damaged, flip)
    res = import_(srv, damaged, str(tmp_path / "r1.json"))
    assert "accepted 1, duplicate 0, refused 1" in res.stderr, res.stderr
    r1 = {r["report_id"]: r for r in json.load(open(str(tmp_path / "r1.json")))["results"]}
    assert r1[first["report_id"]]["code"] == "checksum_mismatch"
    assert r1[second["report_id"]]["status"] == "accepted"

    # 2. altered with every checksum recomputed: the signature still catches it (and it is not a "duplicate")
    import hashlib
    raw = {}

    def alter(name, data):
        if name == second["file"]:
            head, _, body = data.partition(b"\n")
            body = body.replace(b'"pass"', b'"fail"', 1)
            h = json.loads(head)
            h["length"] = len(body)
            data = json.dumps(h).encode() + b"\n" + body
            raw["body_sha"] = hashlib.sha256(body).hexdigest()
        raw[name] = data
        return data
    stage = str(tmp_path / "stage.xcb")
    rewrite(bundle, stage, alter)

    def fix(name, data):
        if name == "manifest.json":
            m = json.loads(data)
            m["entries"][1]["sha256"] = raw["body_sha"]
            data = json.dumps(m).encode()
            raw[name] = data
        if name == "SHA256SUMS":
            lines = ["%s  %s" % (hashlib.sha256(raw[n]).hexdigest(), n)
                     for n in ("manifest.json", first["file"], second["file"])]
            data = ("\n".join(lines) + "\n").encode()
        return data
    forged = str(tmp_path / "forged.xcb")
    rewrite(stage, forged, lambda n, d: fix(n, raw.get(n, d)) if n != "SHA256SUMS" else d)
    rewrite(forged, str(tmp_path / "forged2.xcb"), fix)
    res = import_(srv, str(tmp_path / "forged2.xcb"), str(tmp_path / "r2.json"))
    r2 = {r["report_id"]: r for r in json.load(open(str(tmp_path / "r2.json")))["results"]}
    assert r2[second["report_id"]]["status"] == "refused", res.stderr
    assert r2[second["report_id"]]["code"] == "bad_signature"
    assert r2[first["report_id"]]["status"] == "accepted"

    # 3. not a bundle at all
    junk = tmp_path / "junk.xcb"
    junk.write_bytes(gzip.compress(b"hello"))
    res = import_(srv, str(junk), str(tmp_path / "r3.json"))
    assert res.returncode == 1 and "not a transfer bundle" in res.stderr


def test_a_collector_merges_bundles_without_duplicates(offline_agent, tmp_path):
    srv, a = offline_agent
    assert a.run().returncode == 4
    one = str(tmp_path / "one.xcb")
    assert xcscan(["agent", "export", "--config", a.config, "-o", one]).returncode == 0
    assert a.run().returncode == 4
    two = str(tmp_path / "two.xcb")
    assert xcscan(["agent", "export", "--config", a.config, "-o", two]).returncode == 0
    shutil.copy(one, str(tmp_path / "one-again.xcb"))
    merged = str(tmp_path / "merged.xcb")
    res = xcscan(["agent", "export", "-o", merged, "--merge", one, "--merge", two,
                  "--merge", str(tmp_path / "one-again.xcb")])
    assert res.returncode == 0 and "merged 2 report(s)" in res.stderr, res.stderr
    res = import_(srv, merged, str(tmp_path / "r.json"))
    assert "accepted 2, duplicate 0, refused 0" in res.stderr


def test_offline_enrollment_completes_through_import(tmp_path, make_root):
    srv = RealServer(tmp_path / "server").init()
    enroll_file = str(tmp_path / "usb" / "enroll-finance.json")
    os.makedirs(os.path.dirname(enroll_file))
    dead = "https://127.0.0.1:%d" % free_port()
    res = xcscan(["server", "token", "create", "--data-dir", srv.data_dir, "--org", "/gov/finance/secret",
                  "--uses", "1", "--offline-bundle", enroll_file, "--url", dead])
    assert res.returncode == 0, res.stderr
    assert oct(os.stat(enroll_file).st_mode & 0o777) == "0o600"

    agents = []
    for n in range(2):   # the second host reuses the one-use bundle: its enrollment must be refused
        files = dict(FIXTURE_FILES)
        files["/etc/machine-id"] = "%032x\n" % (n + 1)
        files["/etc/hostname"] = "isolated-%d\n" % n
        a = Agent(tmp_path / ("agent%d" % n), dead, None, make_root(files, root=tmp_path / ("root%d" % n)))
        res = xcscan(["agent", "enroll", "--offline", enroll_file, "--config", a.config, "--spool-dir", a.spool,
                      "--state-dir", a.state, "--root", a.scan_root, "--splay", "0"])
        assert res.returncode == 0 and "enrolled offline" in res.stderr, res.stderr
        a.set(retries=0, backoff=0)
        assert a.run().returncode == 4
        agents.append(a)
    bundles = []
    for n, a in enumerate(agents):
        b = str(tmp_path / ("h%d.xcb" % n))
        assert xcscan(["agent", "export", "--config", a.config, "-o", b]).returncode == 0
        bundles.append(b)
    merged = str(tmp_path / "collected.xcb")
    assert xcscan(["agent", "export", "-o", merged, "--merge", bundles[0], "--merge", bundles[1]]).returncode == 0
    receipt = str(tmp_path / "receipt.json")
    res = import_(srv, merged, receipt)
    assert res.returncode == 0, res.stderr
    doc = json.load(open(receipt))
    by_host = {e["host_id"]: e for e in doc["enrollments"]}
    ids = [a.get()["host_id"] for a in agents]
    # the import takes one enrollment first (its order, not the list's): that host gets the one-use token
    won = [h for h in ids if by_host[h]["status"] == "accepted"]
    assert len(won) == 1
    first, second = won[0], [h for h in ids if h != won[0]][0]
    agents = sorted(agents, key=lambda a: a.get()["host_id"] != first)
    assert by_host[second]["status"] == "refused" and "token" in by_host[second]["reason"]
    outcome = {r["host_id"]: (r["status"], r.get("code")) for r in doc["results"]}
    assert outcome[first] == ("accepted", None)
    assert outcome[second] == ("refused", "unknown_host")
    assert len(srv.arrival_order(first)) == 1

    res = xcscan(["agent", "confirm", "--config", agents[0].config, receipt])
    assert res.returncode == 0 and "cleared 1 report(s)" in res.stderr, res.stderr
    assert agents[0].spooled() == [] and not os.path.exists(os.path.join(agents[0].state,
                                                                         "enrollment-request.json"))
    res = xcscan(["agent", "export", "--config", agents[0].config, "-o", str(tmp_path / "after.xcb")])
    assert "nothing to export" in res.stderr
    # re-importing the same bundle: the enrollment is a duplicate, not a second host
    res = import_(srv, merged, str(tmp_path / "receipt2.json"))
    doc2 = json.load(open(str(tmp_path / "receipt2.json")))
    assert {e["host_id"]: e["status"] for e in doc2["enrollments"]}[first] == "duplicate"


def test_a_damaged_receipt_is_refused_and_changes_nothing(offline_agent, tmp_path):
    srv, a = offline_agent
    for _ in range(2):
        assert a.run().returncode == 4
    bundle = str(tmp_path / "b.xcb")
    assert xcscan(["agent", "export", "--config", a.config, "-o", bundle]).returncode == 0
    receipt = str(tmp_path / "receipt.json")
    assert import_(srv, bundle, receipt).returncode == 0
    good = open(receipt, "rb").read()
    doc = json.loads(good.decode("utf-8"))
    assert len(doc["sha256"]) == 64 and [r["status"] for r in doc["results"]] == ["accepted", "accepted"]

    def snapshot():
        files = {}
        for base in (a.spool, a.state):
            for dirpath, _dirs, names in os.walk(base):
                for n in names:
                    if n != "agent.lock":
                        p = os.path.join(dirpath, n)
                        files[p] = open(p, "rb").read()
        return files
    before = snapshot()
    assert any(p.endswith("exported.json") for p in before)

    def altered(change):
        d = json.loads(good.decode("utf-8"))
        change(d)
        return json.dumps(d).encode("utf-8")

    def flip_digest(d):
        d["results"][0]["sha256"] = ("0" if d["results"][0]["sha256"][0] != "0" else "1") + d["results"][0]["sha256"][1:]

    def accepted_to_refused(d):  # a damaged receipt must not move a stored report to rejected/
        d["results"][1]["status"] = "refused"

    def garbage_without_checksum(d):
        d.pop("sha256")
        d["results"][0] = "accepted"
    cases = [("truncated", good[:len(good) // 2], "not JSON"),
             ("digest", altered(flip_digest), "sha256 does not match"),
             ("status", altered(accepted_to_refused), "sha256 does not match"),
             ("entry", altered(garbage_without_checksum), "result 1 is not a report outcome"),
             ("not a receipt", b'{"format": "something else", "results": []}', "not an xcscan-receipt/1 receipt")]
    for label, data, message in cases:
        bad = str(tmp_path / ("bad-%s.json" % label.replace(" ", "-")))
        with open(bad, "wb") as fh:
            fh.write(data)
        res = xcscan(["agent", "confirm", "--config", a.config, bad])
        assert res.returncode == 1, (label, res.returncode, res.stderr)
        assert message in res.stderr and bad in res.stderr and "Traceback" not in res.stderr, (label, res.stderr)
        assert snapshot() == before, label  # nothing cleared, rejected or forgotten
    res = xcscan(["agent", "confirm", "--config", a.config, receipt])
    assert res.returncode == 0 and "cleared 2 report(s)" in res.stderr, res.stderr
    assert a.spooled() == []


def _count(srv, table):
    import sqlite3
    conn = sqlite3.connect(os.path.join(srv.data_dir, "xcscan.db"))
    try:
        return conn.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
    finally:
        conn.close()


def _read_fifo_while(fifo, action):
    import threading
    got = []

    def reader():
        with open(fifo, "rb") as fh:
            got.append(fh.read())
    thread = threading.Thread(target=reader)
    thread.start()
    res = action()
    thread.join(30)
    assert not thread.is_alive()
    return res, b"".join(got)


def test_offline_bundle_and_receipt_never_replace_what_their_path_is(tmp_path):
    """`token create --offline-bundle F` and `server import --receipt F` write like every -o: a FIFO is
    written in place, a link planted at F.part is never followed (both wrote F.part with O_TRUNC, then
    renamed it over F), a dangling link is refused before a token is made or a report imported."""
    srv = RealServer(tmp_path / "server").init()
    url = "https://127.0.0.1:%d" % free_port()
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "precious"
    victim.write_text("precious")

    def create(target):
        return xcscan(["server", "token", "create", "--data-dir", srv.data_dir, "--org", "/gov/finance",
                       "--offline-bundle", target, "--url", url])

    enroll = str(out / "enroll.json")
    os.symlink(str(victim), enroll + ".part")
    res = create(enroll)
    assert res.returncode == 0, res.stderr
    assert victim.read_text() == "precious"
    assert not os.path.islink(enroll) and oct(os.stat(enroll).st_mode & 0o777) == "0o600"
    assert json.load(open(enroll))["format"] == "xcscan-enrollment/1"

    fifo = str(out / "enroll.pipe")
    os.mkfifo(fifo)
    res, data = _read_fifo_while(fifo, lambda: create(fifo))
    assert res.returncode == 0, res.stderr
    assert json.loads(data.decode("utf-8"))["token"] == res.stdout.strip().splitlines()[0]

    tokens = _count(srv, "enroll_tokens")
    dangling = str(out / "gone.json")
    os.symlink("nowhere/gone.json", dangling)
    res = create(dangling)
    assert res.returncode == 1 and "refusing to write output" in res.stderr
    assert _count(srv, "enroll_tokens") == tokens                # no token made for nothing

    from scanner.agent.transfer import write_bundle
    body = b'{"report_id": "r-1"}'
    header = {"report_id": "r-1", "host_id": "h-1", "timestamp": 1700000000, "length": len(body)}
    bundle = str(tmp_path / "b.xcb")
    write_bundle(bundle, [("0001-r-1.json", json.dumps(header).encode("utf-8") + b"\n" + body, header)])
    receipt = str(out / "receipt.json")
    os.symlink(str(victim), receipt + ".part")
    res = import_(srv, bundle, receipt)
    assert res.returncode == 0, res.stderr
    assert victim.read_text() == "precious" and not os.path.islink(receipt)
    assert [r["report_id"] for r in json.load(open(receipt))["results"]] == ["r-1"]
    fifo = str(out / "receipt.pipe")
    os.mkfifo(fifo)
    res, data = _read_fifo_while(fifo, lambda: import_(srv, bundle, fifo))
    assert res.returncode == 0, res.stderr
    assert [r["report_id"] for r in json.loads(data.decode("utf-8"))["results"]] == ["r-1"]
    res = import_(srv, bundle, dangling)
    assert res.returncode == 1 and "refusing to write output" in res.stderr
    assert "r-1" not in res.stderr                                # refused before the import
