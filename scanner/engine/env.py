"""The evaluation environment: fact lookup with collection status, params, the clock.

A fact path is dotted (``sshd.effective.permitrootlogin``). Its first segment
names a collector's facts (or ``inventory`` for the classified inventory).
Keys that contain dots themselves (sysctl names) resolve too: at each mapping
the longest run of remaining segments that is a key wins.

Inside a ``for_each`` paths are relative to the current item; a path starting
with ``$.`` is always resolved from the top.
"""
from __future__ import absolute_import

import datetime

from scanner.engine.text import reason
from scanner.i18n import message

# Why a fact could not be read. Collector-level kinds come from facts.collection.
MISS_NOT_COLLECTED = "not_collected"   # live-only fact on an offline root -> not_applicable
MISS_UNKNOWN = "unknown"               # the collector ran but could not establish it -> error
MISS_FAILED = "failed"                 # the collector crashed -> error
MISS_NO_COLLECTOR = "no_collector"     # nothing in this scan provides it -> error
MISS_ABSENT = "absent"                 # the collector ran; this key is not there (setting unset)
MISS_NULL = "null"                     # the key is there with an unknown (null) value
MISS_TYPE = "type"                     # a path step went through a non-mapping value

COLLECTOR_LEVEL = (MISS_NOT_COLLECTED, MISS_UNKNOWN, MISS_FAILED, MISS_NO_COLLECTOR)


class Missing(object):
    __slots__ = ("kind", "path", "reason")

    def __init__(self, kind, path, why):
        self.kind = kind
        self.path = path
        self.reason = why


def _collection(raw):
    """facts.collection as {name: {"status": ...}}; tolerates stored reports with other shapes."""
    out = {}
    if isinstance(raw, dict):
        for name, status in raw.items():
            if isinstance(status, dict):
                out[name] = status
            elif isinstance(status, str):
                out[name] = {"status": status}
    return out


EVIDENCE_ITEMS = 20


def bounded(value, limit=EVIDENCE_ITEMS):
    """Evidence stays small: long lists keep their first entries plus a count (the facts hold the rest)."""
    if isinstance(value, list) and len(value) > limit:
        return value[:limit] + ["... %d more (see facts)" % (len(value) - limit)]
    if isinstance(value, dict) and len(value) > 2 * limit:
        keys = list(value)[:2 * limit]
        out = dict((k, value[k]) for k in keys)
        out["..."] = "%d more keys (see facts)" % (len(value) - len(keys))
        return out
    return value


def utcnow():
    return datetime.datetime.utcnow().replace(microsecond=0)


class Env(object):
    """Everything a check may look at."""

    def __init__(self, facts, inventory=None, params=None, now=None, catalog=None, live=None,
                 evidence_limit=40, collection=None):
        self.facts = facts or {}
        self.inventory = inventory
        # ``collection``: _collection(facts["collection"]) made once for every rule of one evaluation
        self.collection = collection if collection is not None else _collection(self.facts.get("collection"))
        self.params = params or {}
        self.now = now or utcnow()
        self.catalog = catalog
        self.live = live
        self.items = []          # stack of (list_path, item) for for_each
        self.evidence = []       # [{"fact": path, "value": v}] read by the top-level check
        self._seen = set()
        self.evidence_limit = evidence_limit
        self.terse = False       # True while evaluating a `where` filter: no texts, no evidence

    # -- params ---------------------------------------------------------
    def value(self, spec):
        """Resolve a check's ``value``: {param: name}, {now: days} or a literal."""
        if isinstance(spec, dict) and len(spec) == 1:
            if "param" in spec:
                name = spec["param"]
                if name not in self.params:
                    raise KeyError(name)
                return self.value(self.params[name])
            if "now" in spec:
                days = self.value(spec["now"])
                return self.now + datetime.timedelta(days=float(days or 0))
        if isinstance(spec, list) and not _plain(spec):
            return [self.value(v) for v in spec]
        return spec

    # -- facts ----------------------------------------------------------
    def record(self, path, value):
        if self.terse or path in self._seen or len(self.evidence) >= self.evidence_limit:
            return
        self._seen.add(path)
        self.evidence.append({"fact": path, "value": bounded(value)})

    def display_path(self, path):
        if path.startswith("$."):
            return path[2:]
        if self.items:
            return "%s[%s].%s" % (self.items[-1][0], self.items[-1][2], path)
        return path

    def resolve(self, path, record=True):
        """Return (value, Missing|None); ``record`` adds the value to the evidence."""
        if path.startswith("$.") or not self.items:
            full = path[2:] if path.startswith("$.") else path
            return self._resolve_top(full, record)
        item = self.items[-1][1]
        shown = self.display_path(path)
        value, miss = _walk(item, path.split("."), shown)
        if miss is None and record:
            self.record(shown, value)
        return value, miss

    def _resolve_top(self, path, record=True):
        segs = path.split(".")
        head = segs[0]
        if head == "inventory":
            if self.inventory is None:
                return None, Missing(MISS_NO_COLLECTOR, path, reason("scan.reason.no_inventory"))
            value, miss = _walk(self.inventory, segs[1:], path) if len(segs) > 1 else (self.inventory, None)
            return value, miss
        if head not in self.facts:
            status = self.collection.get(head) or {}
            if status.get("status") == "not_collected":
                return None, Missing(MISS_NOT_COLLECTED, path, reason(
                    "scan.reason.not_collected", fact=head, why=status.get("reason") or "",
                    why_zh=message(status.get("reason") or "", "zh")))
            return None, Missing(MISS_NO_COLLECTOR, path, reason("scan.reason.no_collector", fact=head))
        top = self.facts[head]
        if top is None:
            status = self.collection.get(head) or {}
            kind = status.get("status")
            if kind == "not_collected":
                return None, Missing(MISS_NOT_COLLECTED, path, reason(
                    "scan.reason.not_collected", fact=head, why=status.get("reason") or "",
                    why_zh=message(status.get("reason") or "", "zh")))
            why = status.get("reason") or self._collector_errors(head)
            why_zh = message(status["reason"], "zh") if status.get("reason") else self._collector_errors(head, "zh")
            if kind == "failed":
                return None, Missing(MISS_FAILED, path, reason("scan.reason.collector_failed", fact=head, why=why,
                                                               why_zh=why_zh))
            return None, Missing(MISS_UNKNOWN, path, reason("scan.reason.collector_unknown", fact=head, why=why,
                                                            why_zh=why_zh))
        value, miss = _walk(top, segs[1:], path) if len(segs) > 1 else (top, None)
        if miss is None and record:
            self.record(path, value)
        return value, miss

    def _collector_errors(self, head, lang="en"):
        msgs = []
        for err in self.facts.get("errors") or []:
            if isinstance(err, dict) and err.get("collector") == head:
                text = message(err.get("message"), lang)
                msgs.append(("%s：%s" if lang == "zh" else "%s: %s") % (err.get("path"), text) if err.get("path")
                            else str(text))
        return ("；" if lang == "zh" else "; ").join(msgs[:3]) or "-"


_PLAIN = {}


def _plain(values):
    """True when a list holds no mappings or lists (no params inside); cached per list object."""
    hit = _PLAIN.get(id(values))
    if hit is not None and hit[0] is values:
        return hit[1]
    plain = not any(isinstance(v, (dict, list)) for v in values)
    if len(_PLAIN) > 4096:
        _PLAIN.clear()
    _PLAIN[id(values)] = (values, plain)
    return plain


# A collector may say why a value it leaves null is unknown: ``{"unknown_why": {key: {"key": <one of
# these locale keys>, "args": {name: int}}}}`` next to it (special_files: a walk stopped at its budget;
# file_perms: a log file rsyslog has not created yet, with a umask nothing on the host states).
_UNKNOWN_WHY = {"scan.reason.walk_partial": ("covered", "total"),
                "scan.reason.walk_partial_no_total": ("covered", "total"),
                "scan.reason.log_create_mode_unknown": (),
                "scan.reason.pwquality_default_unknown": ()}


def _why_unknown(parent, key, shown):
    why = parent.get("unknown_why") if isinstance(parent, dict) else None
    entry = why.get(key) if isinstance(why, dict) else None
    if not isinstance(entry, dict) or entry.get("key") not in _UNKNOWN_WHY:
        return reason("scan.reason.null", path=shown)
    wanted = _UNKNOWN_WHY[entry["key"]]
    args = entry.get("args") if isinstance(entry.get("args"), dict) else {}
    fields = dict((k, int(v)) for k, v in args.items()
                  if k in wanted and isinstance(v, int) and not isinstance(v, bool))
    if len(fields) != len(wanted):
        return reason("scan.reason.null", path=shown)
    return reason(entry["key"], path=shown, **fields)


def _walk(node, segs, shown):
    i = 0
    n = len(segs)
    parent = key = None
    while i < n:
        if isinstance(node, dict):
            # longest run of segments that is a key (keys may contain dots)
            for j in range(n, i, -1):
                key = ".".join(segs[i:j])
                if key in node:
                    parent = node
                    node = node[key]
                    i = j
                    break
            else:
                return None, Missing(MISS_ABSENT, shown, reason("scan.reason.absent", path=shown))
            if node is None and i < n:
                return None, Missing(MISS_NULL, shown, reason("scan.reason.null", path=shown))
        elif isinstance(node, list) and segs[i].isdigit():
            idx = int(segs[i])
            if idx >= len(node):
                return None, Missing(MISS_ABSENT, shown, reason("scan.reason.absent", path=shown))
            node = node[idx]
            parent = None
            i += 1
        else:
            return None, Missing(MISS_TYPE, shown, reason("scan.reason.not_mapping", path=shown))
    if node is None:
        return None, Missing(MISS_NULL, shown, _why_unknown(parent, key, shown))
    return node, None
