"""Stored report documents."""
from __future__ import annotations

import zlib

from scanner.server.errors import ApiError
from scanner.server.store import jsondoc

# Intake stores at most settings.max_body (16 MiB by default) per report; an older or hand-written
# row is still inflated no further than this.
MAX_STORED = 64 * 1024 * 1024


def inflate(blob, limit=MAX_STORED):
    """The bytes of one stored gzip member, at most ``limit`` of them; Unreadable otherwise."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(blob, limit + 1)
    except zlib.error as exc:
        raise jsondoc.Unreadable("stored gzip data is corrupt: %s" % exc)
    if len(out) > limit or d.unconsumed_tail:
        raise jsondoc.Unreadable("stored report inflates beyond %d bytes" % limit)
    if not d.eof:
        raise jsondoc.Unreadable("stored gzip data is truncated")
    return out


def report_document(row):
    """The stored document: re-evaluated when available, else the original signed body (inline gzip, or
    compacted and put in ``row["body"]`` by store/bodies.py ``load``).
    Unreadable when the stored bytes cannot be read back within the readers' limits."""
    if row.get("pruned_at"):
        raise Pruned("the stored body was dropped by the retention setting (report_retention_days)")
    if row.get("evaluated_gz"):
        return jsondoc.decode(inflate(row["evaluated_gz"]))
    if row.get("body_error") is not None:  # a compacted body that does not reconstruct (store/bodies.py)
        raise row["body_error"]
    if row.get("body") is not None:  # a compacted body, reconstructed and checked (store/bodies.py load)
        return jsondoc.decode(row["body"])
    if row.get("body_kind") == 1:
        raise jsondoc.Unreadable("the compacted body was not read (store/bodies.py load)")
    return jsondoc.decode(inflate(row["body_gz"]))


class Pruned(jsondoc.Unreadable):
    """A report whose body retention dropped (store/retention.py); its scalars are still there."""


def readable_document(row):
    """``report_document`` for a view of one report: an unreadable one is a clear error, not a 500."""
    try:
        return report_document(row)
    except Pruned as exc:
        raise ApiError(410, "report_pruned", "report %s is older than the retention period; its score and counts "
                       "are kept, its body is not (%s)" % (row.get("id"), exc))
    except jsondoc.Unreadable as exc:
        jsondoc.skipped("report", row, exc)
        raise ApiError(422, "unreadable_report", "stored report %s cannot be read back (%s); it is kept in the "
                       "database for the administrator" % (row.get("id"), exc))
