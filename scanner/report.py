"""The report document (schema xcscan.report/1), shared by inventory, scan and the aggregator."""
from __future__ import absolute_import

import datetime
import json
import uuid

from scanner import __version__
from scanner.errors import DataError

SCHEMA = "xcscan.report/1"


def utc_now_iso():
    return datetime.datetime.utcnow().replace(microsecond=0).isoformat() + "Z"


def host_section(facts, root, live, collected_at):
    host = facts.get("host") or {}
    return {
        "hostname": host.get("hostname"),
        "machine_id": host.get("machine_id"),
        "root": root,
        "live": bool(live),
        "collected_at": collected_at,
        "virtualization": (host.get("virtualization") or {}).get("kind"),
    }


def build_report(facts, inventory, root="/", live=True, collected_at=None, results=None, summary=None):
    report = {
        "schema": SCHEMA,
        "report_id": str(uuid.uuid4()),
        "scanner": {"version": __version__},
        "host": host_section(facts, root, live, collected_at or utc_now_iso()),
        "facts": facts,
        "inventory": inventory,
    }
    if results is not None:
        report["results"] = results
        report["summary"] = summary
    return report


def dumps(report, indent=2, separators=None):
    return json.dumps(report, indent=indent, separators=separators, ensure_ascii=False, sort_keys=False,
                      default=str)


def load_report(path):
    """Read a saved JSON report, with a clear error for anything that is not one."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except (IOError, OSError) as exc:
        raise DataError("cannot read report: %s" % (exc.strerror or exc), path=path)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError("report is not UTF-8 (byte %d)" % exc.start, path=path)
    except ValueError as exc:
        raise DataError("report is not valid JSON: %s" % exc, path=path,
                        hint="the file may be truncated or corrupt; re-run the scan")
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise DataError("not an xcscan report (schema %r, expected %r)" % (
            doc.get("schema") if isinstance(doc, dict) else None, SCHEMA), path=path)
    for key in ("host", "facts", "inventory"):
        if not isinstance(doc.get(key), dict):
            raise DataError("report lacks its %r section" % key, path=path)
    return doc
