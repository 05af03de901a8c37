"""Air-gap transfer, server side: `xcscan server import BUNDLE` (bundle format: scanner/agent/transfer.py).

Every report in a bundle goes through the same Intake.submit as an online upload — host known and not
retired, Ed25519 signature over host id, timestamp and body, host binding (machine id), report id
de-duplication, the body parser and its limits — so a bundle can never carry in what the API would
refuse. Two differences, both stated: the bundle's checksums are checked first (a damaged or altered
file is refused per report, the others still count), and the signature timestamp may be as old as
``import_max_past`` (default 90 days) instead of ``max_past``, because a bundle travels by hand; a
replayed report is still a duplicate by its id. The receipt lists each report's outcome and reason.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time

from sqlalchemy import select

from scanner.agent.transfer import RECEIPT_FORMAT, TransferError, checksums, read_bundle, receipt_digest
from scanner.server.errors import ApiError
from scanner.server.intake.ingest import UUID_RE, Intake, decode_public_key, enroll, verify_signature
from scanner.server.store import db
from scanner.server.store.audit import audit


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _entry_problem(entry, members, sums):
    """(header, body) of a manifest entry, or raise ValueError(code, reason)."""
    name = entry.get("file") if isinstance(entry, dict) else None
    raw = members.get(name) if isinstance(name, str) else None
    if raw is None:
        raise ValueError("missing", "the manifest names a file the bundle does not hold")
    if sums.get(name) != _sha(raw):
        raise ValueError("checksum_mismatch", "the file does not match SHA256SUMS: damaged or altered in transit")
    line, sep, body = raw.partition(b"\n")
    try:
        header = json.loads(line.decode("utf-8")) if sep else None
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or not all(k in header for k in ("report_id", "host_id", "timestamp",
                                                                       "signature", "length")):
        raise ValueError("bad_entry", "not a spooled report (no header line)")
    if header["length"] != len(body) or _sha(body) != entry.get("sha256"):
        raise ValueError("checksum_mismatch", "the body does not match the manifest")
    if header["report_id"] != entry.get("report_id") or header["host_id"] != entry.get("host_id"):
        raise ValueError("bad_entry", "the header and the manifest disagree on report or host")
    return header, body


def import_bundle(engine, settings, path, actor="cli", ip=None, max_bytes=None):
    """Import every report of the bundle at ``path``; return the receipt (a dict). ``max_bytes``: the
    most the bundle may unpack to (default read_bundle's; the web upload passes its own)."""
    manifest, members = read_bundle(path, **({"max_bytes": max_bytes} if max_bytes else {}))
    if manifest["entries"] and not members.get("SHA256SUMS"):
        raise TransferError("the bundle has no SHA256SUMS", path=path)
    sums = checksums(members)
    if sums.get("manifest.json") != _sha(members["manifest.json"]):
        raise TransferError("manifest.json does not match SHA256SUMS: the bundle is damaged or was altered",
                            path=path)
    intake = Intake(engine, dataclasses.replace(settings, max_past=max(settings.max_past,
                                                                       settings.import_max_past)))
    enrollments = [_enroll_one(engine, req, actor, ip) for req in manifest.get("enrollments") or []]
    results = []
    counts = {"accepted": 0, "duplicate": 0, "refused": 0}
    for entry in manifest["entries"]:
        # only strings from the manifest go into the receipt (a malformed entry's fields become null)
        out = dict((k, entry.get(k)[:128] if isinstance(entry, dict) and isinstance(entry.get(k), str) else None)
                   for k in ("report_id", "host_id", "sha256"))
        try:
            header, body = _entry_problem(entry, members, sums)
            with engine.connect() as conn:
                existed = conn.execute(select(db.reports.c.id).where(
                    db.reports.c.id == str(header["report_id"]).lower())).first() is not None
            intake.submit(body, None, header["host_id"], str(header["timestamp"]), header["signature"])
            out["status"] = "duplicate" if existed else "accepted"
        except ValueError as exc:
            out.update(status="refused", code=exc.args[0], reason=exc.args[1])
        except ApiError as exc:
            out.update(status="refused", code=exc.code, reason=exc.message)
        counts[out["status"]] += 1
        results.append(out)
    receipt = {"format": RECEIPT_FORMAT, "bundle_id": manifest.get("bundle_id"),
               "imported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "counts": counts,
               "enrollments": enrollments, "results": results}
    receipt["sha256"] = receipt_digest(receipt)  # the agent refuses a receipt damaged on the way back
    with db.write_tx(engine) as conn:
        audit(conn, actor, "transfer.import", manifest.get("bundle_id"), counts, ip)
    return receipt


def _enroll_one(engine, req, actor, ip):
    """Register a host from an offline enrollment request (scanner/agent/enroll.py enroll_offline): the
    request is signed with the host's new key over the host id it chose, a timestamp and a body naming
    the one-time token; the token is consumed exactly as online enrollment does."""
    out = {"host_id": req.get("host_id") if isinstance(req, dict) else None}
    try:
        if not isinstance(req, dict) or req.get("format") != "xcscan-enroll-request/1" \
                or not isinstance(req.get("host_id"), str) or not UUID_RE.match(req["host_id"]) \
                or not isinstance(req.get("body"), str) or not isinstance(req.get("timestamp"), int):
            raise ValueError("bad_request", "not an enrollment request")
        body = req["body"].encode("utf-8")
        try:
            fields = json.loads(req["body"])
        except ValueError:
            raise ValueError("bad_request", "the request body is not JSON")
        if not isinstance(fields, dict) or not isinstance(fields.get("public_key"), str):
            raise ValueError("bad_request", "the request names no public key")
        public_key = decode_public_key(fields["public_key"])
        verify_signature(public_key, req["host_id"], str(req["timestamp"]), body, req.get("signature"))
        with engine.connect() as conn:
            row = conn.execute(select(db.hosts.c.public_key).where(db.hosts.c.id == req["host_id"])).first()
        if row is not None:
            if row[0] != public_key:
                raise ValueError("host_id_taken", "another host already has this id")
            out["status"] = "duplicate"
            return out
        enroll(engine, fields.get("token"), fields.get("hostname"), fields.get("machine_id"), public_key,
               ip=ip, host_id=req["host_id"])
        out["status"] = "accepted"
    except ValueError as exc:
        out.update(status="refused", code=exc.args[0], reason=exc.args[1])
    except ApiError as exc:
        out.update(status="refused", code=exc.code, reason=exc.message)
    return out

