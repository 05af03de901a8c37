"""Intake's fast primitives keep the slow ones' meaning: ISA-L's inflate refuses and bounds exactly
what zlib's does, the row digests tell every change, and the host-key cache reads the fleet once
without hiding a host enrolled later (scanner/server/intake/ingest.py)."""
from __future__ import annotations

import base64
import copy
import gzip
import os
import zlib

import pytest
from sqlalchemy import event

from fleet import Agent, make_report
from scanner.server.access import accounts
from scanner.server.errors import ApiError
from scanner.server.intake import ingest
from scanner.server.store.scope import Scope

LIMIT = 1 << 20


def _backends():
    out = [("zlib", zlib.decompressobj, (zlib.error,))]
    try:
        from isal import isal_zlib
    except ImportError:
        if os.environ.get("CI") == "true":
            raise  # the server's lock installs it: CI measures what production runs
        return out
    return out + [("isal", isal_zlib.decompressobj, (zlib.error, isal_zlib.error))]


@pytest.fixture(params=_backends(), ids=lambda b: b[0])
def inflate(request, monkeypatch):
    _name, factory, errors = request.param
    monkeypatch.setattr(ingest, "_INFLATE", factory)
    monkeypatch.setattr(ingest, "_INFLATE_ERRORS", errors)
    return lambda raw, limit=LIMIT: ingest.decompress(raw, "gzip", limit)


BODY = b'{"schema": "xcscan.report/1", "pad": "' + b"x" * 50000 + b'"}'


def _refused(call, status, code):
    with pytest.raises(ApiError) as info:
        call()
    assert (info.value.status, info.value.code) == (status, code)


def test_the_installed_inflate_is_isa_l_when_the_server_extra_is_installed():
    try:
        from isal import isal_zlib
    except ImportError:
        pytest.skip("isal not installed (the server extra brings it)")
    assert ingest._INFLATE is isal_zlib.decompressobj


def test_inflate_gives_the_exact_body(inflate):
    assert inflate(gzip.compress(BODY)) == BODY
    assert inflate(gzip.compress(b"")) == b""


def test_inflate_stops_at_the_limit(inflate):
    bomb = gzip.compress(b"\0" * (LIMIT * 8))
    _refused(lambda: inflate(bomb), 413, "too_large")
    _refused(lambda: inflate(gzip.compress(b"y" * (LIMIT + 1))), 413, "too_large")
    assert len(inflate(gzip.compress(b"y" * LIMIT))) == LIMIT


@pytest.mark.parametrize("damage", ["truncated", "trailing", "second member", "garbage", "bad crc", "empty"])
def test_inflate_refuses_what_is_not_exactly_one_gzip_member(inflate, damage):
    gz = gzip.compress(BODY)
    raw = {"truncated": gz[:-10], "trailing": gz + b"junk", "second member": gz + gzip.compress(b"{}"),
           "garbage": b"\x1f\x8bnot gzip at all" * 4, "bad crc": gz[:-8] + b"\0\0\0\0" + gz[-4:],
           "empty": b""}[damage]
    _refused(lambda: inflate(raw), 400, "bad_gzip")


def _result_digests(doc):
    return [row["row_hash"] for row in ingest.derive(doc, lazy=True)["results"]]


def test_row_digest_changes_with_any_field_of_a_result_and_only_then():
    doc = make_report("host-a", fail_rules=["mlps.ia.password-max-age"])
    first = _result_digests(doc)
    assert all(len(d) == 11 and len(base64.urlsafe_b64decode(d + "=")) == 8 for d in first)
    assert _result_digests(copy.deepcopy(doc)) == first
    changes = {"status": "error", "severity": "low", "category": "x", "title": {"zh": "新", "en": "new"},
               "actual": [1], "expected": {"a": 1}, "evidence": ["e"], "reason": {"en": "r"}, "waiver": {"id": "w"}}
    for key, value in changes.items():
        changed = copy.deepcopy(doc)
        changed["results"][0][key] = value
        digests = _result_digests(changed)
        assert digests[0] != first[0], key
        assert digests[1:] == first[1:], key


def test_row_digest_falls_back_to_blake2b_of_the_same_width(monkeypatch):
    row = {k: "v" for k in ingest.HASHED}
    fast = ingest.result_hash(row)
    monkeypatch.setattr(ingest, "_DIGEST", lambda data=b"": __import__("hashlib").blake2b(data, digest_size=8))
    slow = ingest.result_hash(row)
    assert len(fast) == len(slow) == 11 and fast != slow
    assert ingest.result_hash(dict(row, status="w")) != slow


def _enroll(engine, name):
    a = Agent(name, machine_id="m-" + name)
    a.host_id = ingest.enroll(engine, accounts.create_token(engine, "/keys", scope=Scope.everything())["token"],
                              a.hostname, a.machine_id, a.public_key)["host_id"]
    return a


def test_host_keys_are_read_once_for_the_fleet_and_later_hosts_are_still_found(db_engine):
    agents = [_enroll(db_engine, "keys-%d" % i) for i in range(5)]
    statements = []
    event.listen(db_engine, "before_cursor_execute", lambda *a: statements.append(a[2]) if a[2].lstrip().upper().startswith("SELECT") else None)
    keys = ingest.HostKeys(db_engine)
    first = keys.get(agents[0].host_id)
    assert first[1] == agents[0].machine_id and first[2] is None
    assert len(statements) == 1  # the whole fleet in one query
    for a in agents[1:]:
        assert keys.get(a.host_id)[1] == a.machine_id
    assert len(statements) == 1
    assert keys.cached(agents[3].host_id) is not None
    late = _enroll(db_engine, "keys-late")  # enrolled after the read: asked of the database
    n = len(statements)
    assert keys.get(late.host_id)[1] == late.machine_id
    assert len(statements) == n + 1
    unknown = "00000000-0000-4000-8000-000000000000"
    assert keys.get(unknown) is None and keys.get(unknown) is None
    assert len(statements) == n + 3  # an unknown id is asked every time, never cached
    import base64
    assert keys.get(agents[2].host_id)[0].public_bytes_raw() == base64.b64decode(agents[2].public_key)
