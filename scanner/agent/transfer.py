"""Air-gap transfer, agent side: `xcscan agent export` and `xcscan agent confirm`.

A host on a network with no path to the aggregator (政务内网) carries its spooled, signed reports
over in one file — a transfer bundle — and gets a receipt back:

  bundle (tar, gzip):  manifest.json   {"format": "xcscan-transfer/1", "bundle_id", "created_at",
                                        "created_by", "entries": [{"file", "report_id", "host_id",
                                        "timestamp", "sha256", "length"}]}   oldest first
                       reports/NAME.xcr the spool files byte for byte (header line + the signed body)
                       SHA256SUMS       sha256 of manifest.json and of every report file
  receipt (JSON):      {"format": "xcscan-receipt/1", "bundle_id", "imported_at",
                        "results": [{"report_id", "sha256", "status": accepted|duplicate|refused,
                        "code", "reason"}], "sha256": receipt_digest(the rest)}

Nothing leaves the spool at export: exported reports are remembered in the state directory
(exported.json) and kept until a receipt confirms them, so a lost USB stick loses nothing; a later
export leaves them out unless --all. `confirm` deletes only reports whose id *and* body digest the
receipt names as accepted or duplicate, and moves refused ones to rejected/ with the server's reason.
Several hosts' bundles can be merged into one by a collector (`xcscan agent export --merge`).

Python 3.7 compatible; standard library only.
"""
from __future__ import absolute_import

import hashlib
import io
import json
import os
import socket
import tarfile
import time
import uuid

from scanner.errors import XcscanError

BUNDLE_FORMAT = "xcscan-transfer/1"
RECEIPT_FORMAT = "xcscan-receipt/1"
STATE_NAME = "exported.json"
MAX_RECEIPT = 64 * 1024 * 1024


class TransferError(XcscanError):
    pass


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _load_state(state_dir):
    path = os.path.join(state_dir, STATE_NAME)
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        return doc if isinstance(doc, dict) else {}
    except (IOError, OSError, ValueError):
        return {}


def _save_state(state_dir, doc):
    path = os.path.join(state_dir, STATE_NAME)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def write_bundle(output, files, created_by=None, enrollments=()):
    """files: [(name, raw spool bytes, header dict)] oldest first -> (bundle_id, entry count)."""
    bundle_id = str(uuid.uuid4())
    entries = []
    sums = []
    for name, raw, header in files:
        body_sha = _sha(raw.partition(b"\n")[2])
        entries.append({"file": "reports/" + name, "report_id": header["report_id"], "host_id": header["host_id"],
                        "timestamp": header["timestamp"], "sha256": body_sha, "length": header["length"]})
        sums.append("%s  reports/%s" % (_sha(raw), name))
    manifest = json.dumps({"format": BUNDLE_FORMAT, "bundle_id": bundle_id, "created_at": _iso(time.time()),
                           "created_by": created_by or socket.gethostname(), "entries": entries,
                           "enrollments": list(enrollments)},
                          indent=1, ensure_ascii=False).encode("utf-8")
    sums.insert(0, "%s  manifest.json" % _sha(manifest))
    # a regular file is replaced atomically; /dev/null, a FIFO or a symlink is written through, never
    # replaced; anything else is refused (scanner/render/output_target.py)
    from scanner.render.output_target import open_output
    with open_output(output) as fh:
        with tarfile.open(fileobj=fh, mode="w|gz") as tar:
            _add(tar, "manifest.json", manifest)
            for name, raw, _h in files:
                _add(tar, "reports/" + name, raw)
            _add(tar, "SHA256SUMS", ("\n".join(sums) + "\n").encode("ascii"))
    return bundle_id, len(entries)


def export(cfg, output, include_exported=False):
    """Write every spooled report not yet exported (all with include_exported) into ``output``."""
    from scanner.agent.lock import RunLock
    from scanner.agent.spool import CorruptEntry, Spool
    spool = Spool(cfg.spool_path, max_bytes=cfg.spool_max_bytes, max_reports=cfg.spool_max_reports)
    spool.ensure()
    from scanner.agent.enroll import pending_request
    with RunLock(os.path.join(cfg.state_path, "agent.lock")):
        state = _load_state(cfg.state_path)
        exported = state.setdefault("exported", {})
        request = pending_request(cfg.state_path)   # an offline enrollment travels until it is confirmed
        files, skipped = [], []
        for name in spool.names():
            if name in exported and not include_exported:
                continue
            try:
                entry = spool.read(name)
            except (CorruptEntry, IOError, OSError) as exc:
                skipped.append((name, str(exc)))
                continue
            with open(entry.path, "rb") as fh:
                files.append((name, fh.read(), entry.header))
        if not files and request is None:
            return {"bundle_id": None, "reports": 0, "skipped": skipped, "output": None}
        bundle_id, count = write_bundle(output, files, enrollments=[request] if request else [])
        at = _iso(time.time())
        for name, _raw, _h in files:
            exported[name] = {"bundle_id": bundle_id, "at": at}
        _save_state(cfg.state_path, state)
    return {"bundle_id": bundle_id, "reports": count, "skipped": skipped, "output": output,
            "enrollment": request is not None}


def merge(output, bundles):
    """A collector's bundle: the reports of several hosts' bundles in one (each verified first)."""
    files, seen, enrollments = [], set(), {}
    for path in bundles:
        manifest, members = read_bundle(path)
        for req in manifest.get("enrollments") or []:
            if isinstance(req, dict) and isinstance(req.get("host_id"), str):
                enrollments.setdefault(req["host_id"], req)
        for e in manifest["entries"]:
            raw = members.get(e["file"])
            name = e["file"].split("/", 1)[1]
            if raw is None or e["report_id"] in seen:
                continue
            seen.add(e["report_id"])
            files.append((name, raw, {"report_id": e["report_id"], "host_id": e["host_id"],
                                      "timestamp": e["timestamp"], "length": e["length"]}))
    files.sort(key=lambda f: f[0])   # spool names start with nanoseconds: scan order across hosts
    if not files and not enrollments:
        raise TransferError("the bundles hold no report")
    return write_bundle(output, files, created_by="collector:%s" % socket.gethostname(),
                        enrollments=[enrollments[k] for k in sorted(enrollments)])


def read_bundle(path, max_members=100000, max_bytes=8 * 1024 ** 3):
    """(manifest, {file: raw bytes}) after checking SHA256SUMS; a TransferError names what is wrong."""
    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, IOError, OSError, EOFError) as exc:
        raise TransferError("not a transfer bundle: %s" % exc, path=path)
    members, total = {}, 0
    with tar:
        for n, m in enumerate(tar):
            if n >= max_members:
                raise TransferError("more than %d files in the bundle" % max_members, path=path)
            if not m.isfile():
                continue
            total += m.size
            if total > max_bytes:
                raise TransferError("the bundle holds more than %d bytes" % max_bytes, path=path)
            members[m.name] = tar.extractfile(m).read()
    try:
        manifest = json.loads(members["manifest.json"].decode("utf-8"))
    except (KeyError, ValueError, UnicodeDecodeError):
        raise TransferError("the bundle has no readable manifest.json", path=path)
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT \
            or not isinstance(manifest.get("entries"), list):
        raise TransferError("not an %s bundle" % BUNDLE_FORMAT, path=path)
    return manifest, members


def checksums(members):
    """{file: expected sha256} from SHA256SUMS (empty when absent or unreadable)."""
    out = {}
    for line in members.get("SHA256SUMS", b"").decode("ascii", "replace").splitlines():
        digest, _, name = line.partition("  ")
        if len(digest) == 64 and name:
            out[name] = digest
    return out


OUTCOMES = ("accepted", "duplicate", "refused")


def receipt_digest(receipt):
    """The receipt's own checksum: sha256 of its canonical JSON without the ``sha256`` key (written by
    `xcscan server import`, checked by `xcscan agent confirm`)."""
    body = dict((k, v) for k, v in receipt.items() if k != "sha256")
    return _sha(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii"))


def _check_receipt(receipt, receipt_path):
    """Refuse a damaged receipt as a whole, before anything in the spool changes."""
    hint = ("copy the receipt again from the aggregator side, or import the bundle again: a re-import writes a "
            "new receipt (each report 'duplicate'); nothing was cleared")
    if "sha256" in receipt and receipt["sha256"] != receipt_digest(receipt):
        raise TransferError("the receipt is damaged or was altered: its sha256 does not match its contents",
                            path=receipt_path, hint=hint)
    for i, r in enumerate(receipt["results"]):
        ok = isinstance(r, dict) and r.get("status") in OUTCOMES and (
            isinstance(r.get("report_id"), str) or (r.get("report_id") is None and r.get("status") == "refused")) \
            and (r.get("sha256") is None or isinstance(r.get("sha256"), str))
        if not ok:
            raise TransferError("the receipt is damaged: result %d is not a report outcome" % (i + 1),
                                path=receipt_path, hint=hint)
    if not isinstance(receipt.get("enrollments") or [], list):
        raise TransferError("the receipt is damaged: 'enrollments' is not a list", path=receipt_path, hint=hint)


def confirm(cfg, receipt_path):
    """Apply a receipt: delete accepted/duplicate reports, move refused ones to rejected/. A damaged
    receipt (its checksum, or an entry that is not a report outcome) is refused whole, changing nothing."""
    from scanner.agent.lock import RunLock
    from scanner.agent.spool import CorruptEntry, Spool
    try:
        with open(receipt_path, "rb") as fh:
            raw = fh.read(MAX_RECEIPT + 1)
        receipt = json.loads(raw.decode("utf-8"))
    except (IOError, OSError) as exc:
        raise TransferError("cannot read the receipt: %s" % (exc.strerror or exc), path=receipt_path)
    except (ValueError, UnicodeDecodeError):
        raise TransferError("the receipt is not JSON", path=receipt_path)
    if not isinstance(receipt, dict) or receipt.get("format") != RECEIPT_FORMAT \
            or not isinstance(receipt.get("results"), list):
        raise TransferError("not an %s receipt" % RECEIPT_FORMAT, path=receipt_path,
                            hint="give the file `xcscan server import` wrote")
    _check_receipt(receipt, receipt_path)
    verdicts = {}
    for r in receipt["results"]:
        if isinstance(r, dict) and isinstance(r.get("report_id"), str):
            verdicts[(r["report_id"].lower(), r.get("sha256"))] = r
    spool = Spool(cfg.spool_path, max_bytes=cfg.spool_max_bytes, max_reports=cfg.spool_max_reports)
    spool.ensure()
    done = {"cleared": 0, "rejected": 0, "unknown": 0, "enrolled": False}
    from scanner.agent.enroll import request_done
    with RunLock(os.path.join(cfg.state_path, "agent.lock")):
        for e in receipt.get("enrollments") or []:
            if isinstance(e, dict) and e.get("host_id") == cfg.host_id and e.get("status") in ("accepted",
                                                                                               "duplicate"):
                request_done(cfg.state_path)
                done["enrolled"] = True
        state = _load_state(cfg.state_path)
        exported = state.setdefault("exported", {})
        for name in spool.names():
            try:
                entry = spool.read(name)
            except (CorruptEntry, IOError, OSError):
                continue
            r = verdicts.get((entry.report_id.lower(), _sha(entry.body)))
            if r is None:
                continue
            if r.get("status") in ("accepted", "duplicate"):
                spool.delete(name)
                done["cleared"] += 1
            elif r.get("status") == "refused":
                spool.reject(name, "%s: %s" % (r.get("code"), r.get("reason")))
                done["rejected"] += 1
            else:
                done["unknown"] += 1
                continue
            exported.pop(name, None)
        _save_state(cfg.state_path, state)
    return done
