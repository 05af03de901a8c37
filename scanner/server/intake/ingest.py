"""Enrollment and signed report intake (the server side of docs/api.md).

Checks run in the documented order and each refusal happens before anything is written, so bad
input leaves the database unchanged.
"""
from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import re
import threading
import uuid
import zlib

from sqlalchemy import delete, insert, select, update

from scanner.server.store import aggregates, db, jsondoc
from scanner.server.errors import ApiError, bad_request, forbidden, unauthorized
from scanner.server.access.accounts import consume_token
from scanner.server.store.audit import audit
from scanner.server.util import clean_text, dumps, iso, now

SCHEMA = "xcscan.report/1"
SIGN_PREFIX = b"xcscan-report/1\n"
AGENTLESS_PREFIX = b"xcscan-agentless-enroll/1\n"  # a station's request to enroll a host without an agent
AGENTLESS_WINDOW = 600  # seconds a signed agentless enrollment request stays valid
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$")  # ASCII only: str.isdigit() also accepts other scripts' digits
STATUSES = ("pass", "fail", "error", "not_applicable", "manual", "waived")


def too_large(limit):
    return ApiError(413, "too_large", "report body exceeds the %d byte limit" % limit)


# --- enrollment ------------------------------------------------------------------------------------
def decode_public_key(text):
    try:
        raw = base64.b64decode(text or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        raw = b""
    if len(raw) != 32:
        raise bad_request("bad_public_key", "public_key must be the base64 of a 32-byte raw Ed25519 public key")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise bad_request("bad_public_key", "public_key is not a valid Ed25519 public key")
    return base64.b64encode(raw).decode("ascii")


def enroll(engine, token, hostname, machine_id, public_key, ip=None, host_id=None):
    """Register a host; ``host_id`` is given only by an offline enrollment (the agent chose it and signed
    its request with the new key, scanner/server/intake/transfer.py), otherwise a new one is made."""
    return _enroll(engine, token, hostname, machine_id, public_key, ip, host_id)


def _enroll(engine, token, hostname, machine_id, public_key, ip=None, host_id=None, station=None):
    key = decode_public_key(public_key)
    hostname = clean_text(hostname, 255)
    if not hostname or not hostname.strip():
        raise bad_request("bad_hostname", "hostname must be a non-empty string")
    machine_id = clean_text(machine_id, 128) if machine_id else None
    host_id = host_id or str(uuid.uuid4())
    t = now()
    with db.write_tx(engine) as conn:
        if station is not None:
            # the station's row, locked: its agentless enrollments queue here (PostgreSQL), so a request
            # sent twice at once enrolls one host
            conn.execute(select(db.hosts.c.id).where(db.hosts.c.id == station).with_for_update()).first()
            h = db.hosts
            same = conn.execute(select(h.c.id, h.c.org_path).where(
                h.c.station_id == station, h.c.machine_id == machine_id, h.c.retired_at.is_(None))).first()
            if same is not None:  # the request again (replayed, or the station lost its state): no token used
                return {"host_id": same.id, "org": same.org_path, "server_time": t, "station": station}
        tok = consume_token(conn, token)
        conn.execute(insert(db.hosts).values(
            id=host_id, hostname=hostname, machine_id=machine_id, org_path=tok["org_path"], public_key=key,
            token_id=tok["id"], enrolled_at=t, loc_domestic=0, loc_foreign=0, loc_unknown=0, station_id=station))
        aggregates.adjust_orgs(conn, [host_id], +1, profiles=False)
        if station is None:
            audit(conn, "agent:" + host_id, "host.enroll", hostname, {"org": tok["org_path"], "token": tok["id"]}, ip)
        else:
            audit(conn, "agent:" + station, "host.enroll", hostname, {"org": tok["org_path"], "token": tok["id"],
                                                                      "agentless": host_id}, ip, org=tok["org_path"])
    out = {"host_id": host_id, "org": tok["org_path"], "server_time": t}
    if station is not None:
        out["station"] = station
    return out


def enroll_agentless(engine, settings, station, timestamp, signature, body, ip=None):
    """A scanning station (an enrolled agent) enrolls a host it scans over SSH as "agentless" under
    itself (scanner/agent/agentless.py). The request is signed by the station's key over its host id, the
    timestamp and the body with its own context (never valid as a report signature), at most
    AGENTLESS_WINDOW old; the body names the token, host name and machine id. The new host's reports are
    verified with the station's key; a retired station, or an agentless host, enrolls nothing."""
    h = db.hosts
    if not isinstance(station, str) or not UUID_RE.match(station):
        raise unauthorized("unknown_host", "X-Xcscan-Host must be the scanning station's host id")
    if not isinstance(timestamp, str) or not TIMESTAMP_RE.match(timestamp):
        raise unauthorized("bad_signature", "X-Xcscan-Timestamp must be integer unix seconds (ASCII digits)")
    sig = decode_signature(signature)
    with engine.connect() as conn:
        row = conn.execute(select(h.c.public_key, h.c.retired_at, h.c.station_id).where(h.c.id == station)).first()
    if row is None:
        raise unauthorized("unknown_host", "unknown station host id; enroll the scanning station first")
    ts, t = int(timestamp), now()
    if ts < t - AGENTLESS_WINDOW or ts > t + settings.max_future:
        raise unauthorized("stale_timestamp", "the request's timestamp is outside the accepted window (%d seconds); "
                           "check the station's clock" % AGENTLESS_WINDOW)
    verify_signature(row.public_key, station, timestamp, body, sig, prefix=AGENTLESS_PREFIX)
    if row.retired_at is not None:
        raise forbidden("station_retired", "this scanning station was retired by the aggregator's administrator")
    if row.station_id is not None:
        raise forbidden("not_a_station", "an agentless host cannot enroll other hosts")
    try:
        fields = jsondoc.parse(body)
    except jsondoc.JsonLimitError:
        fields = None
    if not isinstance(fields, dict) or not all(isinstance(fields.get(k), str) for k in ("token", "hostname",
                                                                                           "machine_id")):
        raise bad_request("bad_request", "the body must be a JSON object with token, hostname and machine_id strings")
    machine_id = clean_text(fields["machine_id"], 128)
    if not machine_id or not machine_id.strip():
        raise bad_request("bad_machine_id", "an agentless host needs its machine id (the report's host.machine_id), "
                          "which binds its reports to it")
    return _enroll(engine, fields["token"], fields["hostname"], machine_id, row.public_key, ip, station=station)


# --- body handling ---------------------------------------------------------------------------------
def decompress(raw, encoding, limit):
    """The uncompressed body: exactly one gzip member, nothing after it, stopped at ``limit``
    while inflating (a zip bomb never grows past it)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        if len(raw) > limit:
            raise too_large(limit)
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise ApiError(415, "unsupported_encoding", "Content-Encoding must be gzip or identity")
    d = _INFLATE(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(raw, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise too_large(limit)
        out += d.flush()
    except _INFLATE_ERRORS:
        raise bad_request("bad_gzip", "body is not valid gzip data")
    if len(out) > limit:
        raise too_large(limit)
    if not d.eof:
        raise bad_request("bad_gzip", "gzip stream is truncated")
    if d.unused_data:
        # a second member or trailing bytes: gzip readers would see a different document than the
        # one whose signature was checked
        raise bad_request("bad_gzip", "%d byte(s) after the end of the gzip member; send exactly one gzip "
                          "member and nothing after it" % len(d.unused_data))
    return out


def _inflater():
    """(decompressobj factory, its errors): ISA-L's inflate when installed (the server's extra
    ``isal``: the same gzip format and the same ``decompressobj`` interface, about 2.7x faster than
    zlib on a report body, bench/intake_floor.py), else the standard library's zlib."""
    try:
        from isal import isal_zlib
    except ImportError:
        return zlib.decompressobj, (zlib.error,)
    return isal_zlib.decompressobj, (zlib.error, isal_zlib.error)


_INFLATE, _INFLATE_ERRORS = _inflater()


def load_public_key(public_key_b64):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))


def decode_signature(signature):
    """The 64 raw bytes of a base64 Ed25519 signature header."""
    try:
        sig = base64.b64decode(signature or "", validate=True)
    except (binascii.Error, ValueError):
        sig = b""
    if len(sig) != 64:
        raise unauthorized("bad_signature", "X-Xcscan-Signature must be a base64 Ed25519 signature")
    return sig


def verify_signature(key, host_id, timestamp, body, signature, prefix=SIGN_PREFIX):
    """Check the Ed25519 signature (``key``: a loaded public key or its base64 text; ``signature``:
    the header text or its decoded bytes; ``prefix``: the context, a report's unless said)."""
    from cryptography.exceptions import InvalidSignature
    sig = signature if isinstance(signature, bytes) else decode_signature(signature)
    if isinstance(key, str):
        key = load_public_key(key)
    message = prefix + host_id.encode("ascii") + b"\n" + timestamp.encode("ascii") + b"\n" + body
    try:
        key.verify(sig, message)
    except InvalidSignature:
        raise unauthorized("bad_signature", "signature does not verify for this host and body")


def parse_report(body):
    """The report document, read by the parser and limits every later reader uses (jsondoc)."""
    try:
        doc = jsondoc.parse(body)
    except jsondoc.JsonLimitError as exc:
        if exc.limit:
            raise ApiError(413, "over_limit", "report refused: %s (limits: depth %d, %d characters per string, "
                           "%d items per array or object; docs/server.md)" % (exc, jsondoc.MAX_DEPTH,
                                                                             jsondoc.MAX_STRING, jsondoc.MAX_ITEMS))
        raise bad_request("bad_json", "body is %s" % exc)
    if not isinstance(doc, dict):
        raise ApiError(422, "bad_schema", "report must be a JSON object")
    if doc.get("schema") != SCHEMA:
        raise ApiError(422, "bad_schema", "schema must be %r (got %r)" % (SCHEMA, str(doc.get("schema"))[:64]))
    rid = doc.get("report_id")
    if not isinstance(rid, str) or not UUID_RE.match(rid):
        raise ApiError(422, "bad_schema", "report_id must be a UUID")
    for key in ("host", "facts", "inventory"):
        if not isinstance(doc.get(key), dict):
            raise ApiError(422, "bad_schema", "report lacks its %r object" % key)
    inv = doc["inventory"]
    if not isinstance(inv.get("components", []), list):
        raise ApiError(422, "bad_schema", "inventory.components must be a list")
    for comp in inv.get("components", []):
        if not isinstance(comp, dict) or not isinstance(comp.get("category"), str):
            raise ApiError(422, "bad_schema", "each inventory component needs a category")
    if "results" in doc:
        if not isinstance(doc["results"], list):
            raise ApiError(422, "bad_schema", "results must be a list")
        for res in doc["results"]:
            if not isinstance(res, dict) or not isinstance(res.get("rule_id"), str) or not res["rule_id"] \
                    or res.get("status") not in STATUSES:
                raise ApiError(422, "bad_schema", "each result needs a rule_id and a status in %s"
                               % "/".join(STATUSES))
        if not isinstance(doc.get("summary"), dict):
            raise ApiError(422, "bad_schema", "a report with results needs its summary object")
    return doc


# --- derived rows ----------------------------------------------------------------------------------
def _pair(value, lang):
    if isinstance(value, dict):
        return clean_text(value.get(lang) or value.get("en") or value.get("zh"), 255)
    return clean_text(value, 255) if value is not None else None


LATEST_ITEMS = 100  # per result in the latest-state row; the stored report keeps them all
LATEST_EVIDENCE = 50
QUIET = ("pass", "not_applicable")


def _latest_evidence(result):
    """What the fleet views keep of a verdict: the explanation always; evidence and the items
    that did not pass only for results that need attention, bounded. The whole signed report,
    with every item and every piece of evidence, stays in ``reports`` (GET /api/v1/reports/{id}).
    The agent's local waiver is kept only when there is one (``"waiver": null`` was 14 bytes of
    nearly every row)."""
    out = {"reason": _reason(result.get("reason"))}
    if result.get("waiver") is not None:
        out["waiver"] = result["waiver"]
    if result.get("status") in QUIET:
        return out
    items = result.get("items") if isinstance(result.get("items"), list) else []
    open_items = [i for i in items if not (isinstance(i, dict) and i.get("status") in QUIET)]
    evidence = result.get("evidence") if isinstance(result.get("evidence"), list) else None
    out.update(items=open_items[:LATEST_ITEMS], items_total=len(items),
               evidence=evidence[:LATEST_EVIDENCE] if evidence is not None else result.get("evidence"))
    return out


def _reason(value):
    """The verdict's explanation {zh, en} as the agent wrote it, bounded."""
    if not isinstance(value, dict):
        return None
    return {lang: clean_text(value.get(lang), 2000) for lang in ("zh", "en") if isinstance(value.get(lang), str)} or None


HASHED = ("title_zh", "title_en", "category", "severity", "status", "actual", "expected", "evidence")
COMPONENT_HASHED = ("category", "product_id", "name_zh", "name_en", "vendor_zh", "vendor_en", "origin", "version",
                    "evidence", "substitutes")


def _digest():
    """A new 64-bit digest object (``update``, ``digest``) for telling a changed latest row from an
    unchanged one: XXH3-64 when the server's extra ``xxhash`` is installed (many times faster than
    BLAKE2b over a report's results), else BLAKE2b cut to 8 bytes. Not a security boundary: a host's
    digests are compared only with its own stored rows, whose content the same host's signed reports
    decide anyway; what an accidental collision would cost (one stale latest row until the result
    changes again) is 2**-64 likely per comparison: at 10,000 hosts x 160 rows a day, about once in
    30 billion years."""
    try:
        import xxhash
    except ImportError:
        return lambda data=b"": hashlib.blake2b(data, digest_size=8)
    return xxhash.xxh3_64


def _text(h):
    """A digest as the ``row_hash`` text: 11 characters of URL-safe base64 (12 bytes stored, where the
    32 hex digits of a 128-bit digest took 33: 21 bytes less in each latest result and component row)."""
    return base64.urlsafe_b64encode(h.digest())[:11].decode("ascii")


_DIGEST = _digest()


def result_hash(row, keys=HASHED):
    """Digest of what a latest result row (or, ``keys`` COMPONENT_HASHED, a component row) holds from
    the report (not the server's waiver pointer): intake rewrites a row only when it changed
    (intake/batch.py)."""
    h = _DIGEST()
    for key in keys:
        value = row[key]
        data = b"\xff" if value is None else value.encode("utf-8", "surrogatepass")
        h.update(b"%d:" % len(data))
        h.update(data)
    return _text(h)


LATEST_TEXT = ("title_zh", "title_en", "actual", "expected", "evidence")
SOURCE_DIGEST = b"xcscan-latest-result/3\n"  # change when what a row keeps of its result changes


def source_hash(result):
    """A latest result row's ``row_hash``: the digest of the report's result object it is made from
    (every field of the row is a function of it), so intake can tell an unchanged row without
    making it. One serialization and one digest, in C."""
    try:
        data = _ORJSON_DUMPS(result) if _ORJSON_DUMPS is not None else None
    except TypeError:  # e.g. an integer beyond 64 bits: the standard library writes it
        data = None
    if data is None:
        data = dumps(result).encode("utf-8", "surrogatepass")
    h = _DIGEST(SOURCE_DIGEST)
    h.update(data)
    return _text(h)


def _orjson_dumps():
    try:
        import orjson
    except ImportError:
        return None
    return orjson.dumps


_ORJSON_DUMPS = _orjson_dumps()


def latest_texts(r):
    """The report texts of a latest result row, from its result object."""
    title = r.get("title")
    return {"title_zh": _pair(title, "zh"), "title_en": _pair(title, "en"), "actual": dumps(r.get("actual")),
            "expected": dumps(r.get("expected")), "evidence": dumps(_latest_evidence(r))}


class LatestRow(dict):
    """A latest result row (rule_id, category, severity, status, row_hash, and what the writer adds)
    whose report texts (LATEST_TEXT) are made from ``source``, its result object, when first read."""
    __slots__ = ("source",)

    def __missing__(self, key):
        if key in LATEST_TEXT and self.source is not None:
            self.complete()
            return dict.__getitem__(self, key)
        raise KeyError(key)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def complete(self):
        """Make the report texts now (once)."""
        src, self.source = self.source, None
        if src is not None:
            self.update(latest_texts(src))
        return self

    def with_values(self, **values):
        """A copy with ``values`` added, still made lazily."""
        out = LatestRow(self, **values)
        out.source = self.source
        return out


def _num(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def derive(doc, lazy=False):
    """Scalar and latest-state rows of one report document (original or re-evaluated). ``lazy``:
    the result rows' report texts (titles, actual, expected, evidence) are made only when read
    (LatestRow), i.e. for the rows intake writes; an unchanged row is compared by its digest."""
    inv = doc.get("inventory") or {}
    comps = []
    counts = {"domestic": 0, "foreign": 0, "unknown": 0}
    by_cat = {}  # {category: [domestic, foreign, unknown]} (reports.loc_cats: the daily history per category)
    for seq, c in enumerate(inv.get("components") or []):
        origin = c.get("origin") if c.get("origin") in ("domestic", "foreign") else "unknown"
        counts[origin] += 1
        by_cat.setdefault(clean_text(c.get("category"), 32), [0, 0, 0])[("domestic", "foreign", "unknown").index(origin)] += 1
        comps.append({
            "seq": seq, "category": clean_text(c.get("category"), 32), "product_id": clean_text(c.get("product_id"), 64),
            "name_zh": _pair(c.get("name"), "zh"), "name_en": _pair(c.get("name"), "en"),
            "vendor_zh": _pair(c.get("vendor"), "zh"), "vendor_en": _pair(c.get("vendor"), "en"),
            "origin": origin, "version": clean_text(c.get("version"), 255),
            "evidence": dumps(c.get("evidence") or []), "substitutes": dumps(c.get("substitutes") or []),
        })
        comps[-1]["row_hash"] = result_hash(comps[-1], COMPONENT_HASHED)
    judged = counts["domestic"] + counts["foreign"]
    loc_rate = round(counts["domestic"] / judged, 4) if judged else None
    os_name = os_family = None
    facts_os = (doc.get("facts") or {}).get("os")
    if isinstance(facts_os, dict):
        os_name = clean_text(facts_os.get("pretty_name") or facts_os.get("name"), 255)
        os_family = clean_text(facts_os.get("family"), 32)
    results = None
    profile = score = fail_count = None
    summary = doc.get("summary") if isinstance(doc.get("summary"), dict) else None
    if isinstance(doc.get("results"), list) and summary is not None:
        profile = clean_text(summary.get("profile") or "default", 64)
        score = _num(summary.get("score"))
        seen = {}
        for r in doc["results"]:
            rid = clean_text(r["rule_id"], 128)
            row = seen[rid] = LatestRow(rule_id=rid, category=clean_text(r.get("category"), 32),
                                        severity=clean_text(r.get("severity"), 16), status=r["status"],
                                        row_hash=source_hash(r))
            row.source = r
            if not lazy:
                row.complete()
        results = list(seen.values())
        tally = dict.fromkeys(STATUSES, 0)
        for r in results:
            tally[r["status"]] += 1
        fail_count = tally["fail"]
        profile_row = {"profile": profile, "score": score,
                       "score_without_waivers": _num(summary.get("score_without_waivers")),
                       "passed": tally["pass"], "failed": tally["fail"], "errors": tally["error"],
                       "other": len(results) - tally["pass"] - tally["fail"] - tally["error"]}
    else:
        profile_row = None
    return {"components": comps, "counts": counts, "loc_cats": dumps(by_cat), "loc_rate": loc_rate, "os_name": os_name,
            "os_family": os_family, "results": results, "profile": profile, "score": score,
            "fail_count": fail_count, "profile_row": profile_row}


def apply_latest(conn, host_id, report_id, collected_at, derived, host=None, extra_host_values=None):
    """Replace the host's latest-state rows with ``derived`` when this report is the newest.

    ``host`` is the host row (org_path, latest_collected, retired_at) read, locked, in this transaction."""
    if host is None:
        host = lock_host(conn, host_id)
    aggregates.adjust_orgs(conn, [host_id], -1)  # the host's share of the org sums, recounted after
    _apply_latest(conn, host_id, report_id, collected_at, derived, host, extra_host_values)
    aggregates.adjust_orgs(conn, [host_id], +1)


def _apply_latest(conn, host_id, report_id, collected_at, derived, host, extra_host_values):
    from scanner.server.store import changes
    from scanner.server.workflow.waivers import attach_waivers
    if host.retired_at is not None:
        return  # a retired host has no latest state (re-evaluation still updates its history)
    values = dict(extra_host_values or {})
    fresh = host.latest_collected is None  # the host's first report: no change recorded (it joined)
    if fresh or collected_at >= host.latest_collected:
        if not fresh:
            changes.write_conn(conn, [], changes.component_changes(
                host_id, collected_at, changes.read_components(conn, host_id),
                changes.component_state(derived["components"])))
        aggregates.adjust_components(conn, [host_id], -1)
        conn.execute(delete(db.components).where(db.components.c.host_id == host_id))
        if derived["components"]:
            conn.execute(insert(db.components), [dict(c, host_id=host_id) for c in derived["components"]])
        aggregates.adjust_components(conn, [host_id], +1)
        c = derived["counts"]
        values.update(latest_report_id=report_id, latest_collected=collected_at, os_name=derived["os_name"],
                      os_family=derived["os_family"], loc_domestic=c["domestic"], loc_foreign=c["foreign"],
                      loc_unknown=c["unknown"], loc_rate=derived["loc_rate"])
    if values:
        conn.execute(update(db.hosts).where(db.hosts.c.id == host_id).values(**values))
    row = derived["profile_row"]
    if row is None:
        return
    hp = db.host_profiles
    cur = conn.execute(select(hp.c.collected_at, hp.c.report_id)
                       .where(hp.c.host_id == host_id, hp.c.profile == row["profile"])).first()
    if cur is not None and collected_at < cur.collected_at:
        return  # an older report from a spool backlog: history only
    if not fresh:
        changes.write_conn(conn, changes.result_changes(
            host_id, row["profile"], collected_at, changes.read_results(conn, host_id, row["profile"]),
            derived["results"]), [])
    aggregates.adjust_hosts(conn, [host_id], -1)  # the host's share of the aggregates, recounted below
    if cur is None:
        conn.execute(insert(hp).values(host_id=host_id, report_id=report_id, collected_at=collected_at, **row))
    else:
        conn.execute(update(hp).where(hp.c.host_id == host_id, hp.c.profile == row["profile"])
                     .values(report_id=report_id, collected_at=collected_at, **row))
        conn.execute(delete(db.results).where(db.results.c.host_id == host_id, db.results.c.profile == row["profile"]))
    rows = [dict(r, host_id=host_id, profile=row["profile"], waiver_id=None, waiver_until=None)
            for r in derived["results"]]
    attach_waivers(conn, host_id, host.org_path, rows)
    if rows:
        conn.execute(insert(db.results), rows)
    aggregates.adjust_hosts(conn, [host_id], +1)
    aggregates.refresh_profiles(conn, [host_id], orgs=False)  # apply_latest recounts the org sums


def lock_host(conn, host_id):
    """The host row, locked for this transaction (PostgreSQL; SQLite's write lock covers it)."""
    return conn.execute(select(db.hosts.c.latest_collected, db.hosts.c.org_path, db.hosts.c.retired_at)
                        .where(db.hosts.c.id == host_id).with_for_update()).first()


# --- submission ------------------------------------------------------------------------------------
def ack(report_id, host_id, received_at):
    return {"report_id": report_id, "host_id": host_id, "received_at": iso(received_at), "status": "accepted"}


class Sender(object):
    """Who sent a report, from its headers: checked before the body is read."""
    __slots__ = ("host_id", "timestamp", "signature", "key", "machine_id")

    def __init__(self, host_id, timestamp, signature, key, machine_id):
        self.host_id, self.timestamp, self.signature, self.key, self.machine_id = \
            host_id, timestamp, signature, key, machine_id


class HostKeys(object):
    """Enrolled hosts' public keys and machine ids, read once per process.

    A host id's key and machine id never change (re-enrolling makes a new host), so a positive
    lookup can be kept. The first lookup that misses reads every enrolled host's row in one query
    (up to ``max_entries``; the keys themselves are loaded when first used), so a worker that
    starts into a fleet draining its spools does not query once per host; an id still unknown
    after that is asked of the database every time, so a host enrolled through another worker
    process is found at once."""

    def __init__(self, engine, max_entries=200000):
        self.engine = engine
        self.max_entries = max_entries
        self._known = {}
        self._rows = None  # host id -> (public key text, machine id, station id), read at the first miss
        self._lock = threading.Lock()

    def cached(self, host_id):
        """``get``'s answer when this process has it already, else None (no database)."""
        return self._known.get(host_id)

    def get(self, host_id):
        """(loaded Ed25519 public key, machine id or None, station id or None) of an enrolled host, or None."""
        hit = self._known.get(host_id)
        if hit is not None:
            return hit
        if self._rows is None:
            self._preload()
        row = self._rows.pop(host_id, None)
        if row is None:
            with self.engine.connect() as conn:
                row = conn.execute(select(db.hosts.c.public_key, db.hosts.c.machine_id, db.hosts.c.station_id)
                                   .where(db.hosts.c.id == host_id)).first()
        if row is None:
            return None
        if len(self._known) >= self.max_entries:
            self._known.clear()
        hit = self._known[host_id] = (load_public_key(row[0]), row[1], row[2])
        return hit

    def _preload(self):
        with self._lock:
            if self._rows is not None:
                return
            h = db.hosts
            with self.engine.connect() as conn:
                rows = conn.execute(select(h.c.id, h.c.public_key, h.c.machine_id, h.c.station_id)
                                    .limit(self.max_entries)).all()
            self._rows = {r[0]: (r[1], r[2], r[3]) for r in rows}


class Intake(object):
    """Report intake of one server process: verify, parse and derive on the request's thread,
    then store through the process's batch writer."""

    def __init__(self, engine, settings, writer=None):
        from scanner.server.intake.batch import BatchWriter
        self.engine = engine
        self.settings = settings
        self.writer = writer or BatchWriter(engine)
        self.hosts = HostKeys(engine)
        self.cpu = threading.Lock()

    def check_headers(self, host_id, timestamp, signature, cached_only=False):
        """The sender, from the headers alone (before any body is read or inflated): the host id,
        timestamp and signature well-formed, the host enrolled and the timestamp in the window.
        Returns what ``submit_body`` needs. ``cached_only``: decide without the database or return
        None (an unknown or agentless host: ask again without it), so the event loop can call it."""
        settings = self.settings
        if not isinstance(host_id, str) or not UUID_RE.match(host_id):
            raise unauthorized("unknown_host", "X-Xcscan-Host is missing or not a host id; enroll first")
        if not isinstance(timestamp, str) or not TIMESTAMP_RE.match(timestamp):
            raise unauthorized("bad_signature", "X-Xcscan-Timestamp must be integer unix seconds (ASCII digits)")
        sig = decode_signature(signature)
        if cached_only:
            host = self.hosts.cached(host_id)
            if host is None or host[2] is not None:
                return None
        else:
            host = self.hosts.get(host_id)
        if host is None:
            raise unauthorized("unknown_host", "unknown host id; enroll first")
        if host[2] is not None:
            # an agentless host speaks through its station: not once the station is retired (asked every
            # time: a retirement applies at once)
            with self.engine.connect() as conn:
                station_retired = conn.execute(select(db.hosts.c.retired_at).where(db.hosts.c.id == host[2])).first()
            if station_retired is None or station_retired[0] is not None:
                raise forbidden("station_retired", "the scanning station that signs this agentless host's reports "
                                "was retired; enroll the host under another station")
        ts = int(timestamp)
        t = now()
        if ts < t - settings.max_past or ts > t + settings.max_future:
            raise unauthorized("stale_timestamp", "signature timestamp is outside the accepted window "
                               "(%d days old to %d seconds ahead); check the host clock"
                               % (settings.max_past // 86400, settings.max_future))
        return Sender(host_id, timestamp, sig, host[0], host[1])

    def submit(self, raw, encoding, host_id, timestamp, signature):
        """Verify and store one report; return the acknowledgement."""
        return self.submit_body(self.check_headers(host_id, timestamp, signature), raw, encoding)

    def submit_body(self, sender, raw, encoding):
        """Inflate (bounded), verify the signature over exactly the bytes that are stored, parse
        with the readers' limits, derive and store.

        One request thread of the process at a time does this CPU work (``self.cpu``): they would
        share one interpreter lock anyway, and threads contending for it hand it over at every
        release (hashing, inflating, verifying release it), costing CPU for nothing. The parsed
        document is let go before the batch commits, so it is not kept alive while waiting."""
        from scanner.server.intake.batch import Item
        settings = self.settings
        if len(raw) > settings.max_body:
            raise too_large(settings.max_body)
        # the writer waits for announced reports before it commits (group commit, intake/batch.py):
        # announced before queueing for the CPU, ended when the item is queued or this fails
        announce = getattr(self.writer, "announce", None)
        if announce is not None:
            announce()
        try:
            with self.cpu:
                body = decompress(raw, encoding, settings.max_body)
                verify_signature(sender.key, sender.host_id, sender.timestamp, body, sender.signature)
                doc = parse_report(body)
                report_id = doc["report_id"].lower()
                if sender.machine_id and doc["host"].get("machine_id") != sender.machine_id:
                    raise forbidden("host_mismatch", "the report's host.machine_id does not match the enrolled host")
                derived = derive(doc, lazy=True)
                del doc
                stored = raw if encoding and encoding.strip().lower() in ("gzip", "x-gzip") else gzip.compress(body, 6)
                item = Item(report_id, sender.host_id, now(), int(sender.timestamp), derived, stored, len(body),
                            hashlib.sha256(body).hexdigest())
                del body
        except BaseException:
            if announce is not None:
                self.writer.withdraw()
            raise
        if announce is None:
            return self.writer.write(item)
        return self.writer.write(item, announced=True)
