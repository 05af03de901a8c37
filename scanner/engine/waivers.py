"""Waivers: accepted risks that turn a failure into ``waived`` until they expire.

File format (YAML)::

    waivers:
      - rule: xinchuang.foreign.database     # rule id or glob
        hosts: ["db-*", "4f2c...machine-id"] # hostname globs or machine ids; ["*"] = every host
        justification: Oracle stays until the DM migration in Q3
        approver: 张三 (security officer)
        expires: 2027-06-30                  # YYYY-MM-DD; the waiver applies through that day

An expired waiver stops applying on its own: the result keeps its real status
and carries the waiver with ``expired: true`` so reports can show it.
"""
from __future__ import absolute_import

import datetime
import fnmatch

from scanner.errors import DataError

WAIVER_KEYS = ("rule", "hosts", "justification", "approver", "expires", "id", "ticket")
WAIVABLE = ("fail",)  # an error is "could not judge": never hidden by a waiver


class Waiver(object):
    def __init__(self, doc, index, source):
        self.doc = doc
        self.index = index
        self.source = source
        self.rule = doc["rule"]
        self.hosts = doc["hosts"]
        self.expires = doc["expires"]

    def matches(self, rule_id, host):
        if not fnmatch.fnmatchcase(rule_id, self.rule):
            return False
        host = host or {}
        names = [v for v in (host.get("hostname"), host.get("machine_id")) if v]
        for sel in self.hosts:
            if sel == "*":
                return True
            if any(fnmatch.fnmatchcase(n, sel) for n in names):
                return True
        return False

    def expired(self, now):
        return now.date() > self.expires

    def as_dict(self, expired):
        out = {
            "id": self.doc.get("id") or "%s#%d" % (self.source or "waivers", self.index + 1),
            "rule": self.rule,
            "hosts": list(self.hosts),
            "justification": self.doc["justification"],
            "approver": self.doc["approver"],
            "expires": self.expires.isoformat(),
            "expired": bool(expired),
        }
        if self.doc.get("ticket"):
            out["ticket"] = str(self.doc["ticket"])
        return out


def _date(value, where):
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.datetime.strptime(value.strip(), "%Y-%m-%d").date()
        except ValueError:
            pass
    raise DataError("'expires' must be a date YYYY-MM-DD, got %r" % (value,), path=where,
                    hint="every waiver needs an expiry date; e.g. expires: 2027-06-30")


def parse_waivers(doc, source="<waivers>", line_of=None):
    """Validate a waivers document; return [Waiver]. Raises DataError naming the entry and line."""
    def where(i, field=None):
        line = line_of(("waivers", i, field) if field else ("waivers", i)) if line_of else None
        loc = "%s:%d" % (source, line) if line else source
        return "%s: waivers[%d]%s" % (loc, i, (" (%s)" % field) if field else "")

    if doc is None:
        return []
    if isinstance(doc, list):
        entries = doc
    elif isinstance(doc, dict) and isinstance(doc.get("waivers"), list):
        entries = doc["waivers"]
    else:
        raise DataError("a waivers file holds a top-level 'waivers' list", path=source,
                        hint="see docs/scan.md (Waivers) for the format")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DataError("a waiver is a mapping with rule, hosts, justification, approver, expires",
                            path=where(i))
        for key in entry:
            if key not in WAIVER_KEYS:
                raise DataError("unknown waiver field %r; allowed: %s" % (key, ", ".join(WAIVER_KEYS)),
                                path=where(i, key))
        for key in ("rule", "hosts", "justification", "approver", "expires"):
            if key not in entry or entry[key] in (None, "", []):
                raise DataError("missing %r" % key, path=where(i),
                                hint="a waiver needs rule, hosts, justification, approver and expires")
        if not isinstance(entry["rule"], str):
            raise DataError("'rule' must be a rule id (or glob)", path=where(i, "rule"))
        hosts = entry["hosts"]
        if isinstance(hosts, str):
            hosts = [hosts]
        if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
            raise DataError("'hosts' must be a list of hostname globs or machine ids ('*' for all)",
                            path=where(i, "hosts"))
        for key in ("justification", "approver"):
            if not isinstance(entry[key], str) or not entry[key].strip():
                raise DataError("%r must be non-empty text" % key, path=where(i, key))
        doc_i = dict(entry)
        doc_i["hosts"] = hosts
        doc_i["expires"] = _date(entry["expires"], where(i, "expires"))
        out.append(Waiver(doc_i, i, source))
    return out


def load_waivers(path):
    from scanner.yamlio import load_yaml_file
    if path is None:
        return []
    if isinstance(path, list):
        return [w if isinstance(w, Waiver) else parse_waivers([w])[0] for w in path]
    doc = load_yaml_file(path)

    def line_of(where):
        from scanner.engine.yamlpos import locate_file
        return locate_file(path, tuple(w for w in where if w is not None))
    return parse_waivers(doc, path, line_of)


def apply_waivers(result, waivers, host, now):
    """Turn a failing result into ``waived`` when a live waiver matches; note expired ones."""
    result.setdefault("waiver", None)
    if not waivers:
        return result
    expired_match = None
    for waiver in waivers:
        if not waiver.matches(result["rule_id"], host):
            continue
        if waiver.expired(now):
            expired_match = expired_match or waiver
            continue
        if result["status"] in WAIVABLE:
            result["waiver"] = waiver.as_dict(False)
            result["waiver"]["original_status"] = result["status"]
            result["status"] = "waived"
            return result
    if expired_match is not None and result["status"] in WAIVABLE:
        result["waiver"] = expired_match.as_dict(True)
    return result
