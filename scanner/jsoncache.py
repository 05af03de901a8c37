"""Validated data kept in the user cache directory, keyed by a fingerprint of its source files (path,
size, mtime) and of the code that validated it.

Parsing YAML costs far more than reading a cache (on Python 3.7 without libyaml, tens of times more),
so the rule set, the product catalog and the shipped YAML are validated once and read from here on
later runs. The data is what a JSON round trip keeps (text keys, lists, anything else as its str()),
stored with marshal, which reads it back ~2x faster than the json module did (a scan reads ~400 KB of
it). Any problem with a cache file (missing, stale, corrupt, unwritable directory) falls back silently
to parsing the sources; the cache is never the only copy of anything.
"""
from __future__ import absolute_import

import hashlib
import marshal
import os


def cache_dir():
    base = os.environ.get("XCSCAN_CACHE_DIR")
    if base:
        return base
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "xcscan")


def fingerprint(files, salt):
    """A digest of every file's path, size and mtime plus ``salt``; None when one cannot be stat-ed."""
    h = hashlib.sha1(salt.encode("utf-8"))
    try:
        for path in files:
            st = os.stat(path)
            h.update(("%s|%d|%d\n" % (path, st.st_size, st.st_mtime_ns)).encode("utf-8", "replace"))
    except OSError:
        return None
    return h.hexdigest()


def path_for(kind, directory):
    key = hashlib.sha1(os.path.abspath(directory).encode("utf-8", "replace")).hexdigest()[:16]
    return os.path.join(cache_dir(), "%s-%s.marshal" % (kind, key))


def json_shaped(payload):
    """``payload`` as a JSON round trip returns it (what the cache keeps)."""
    import json     # not at import: the command line imports this module before re's kept patterns are in
    return json.loads(json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str))


def trusted(fh):
    """Whether an open cache file may be believed: it and its directory belong to this process's
    user and nobody else may write them. A scan runs as root, and ``sudo`` may keep an ordinary
    user's HOME (and so their cache directory): rules, catalog or patterns read from a file that
    user could write would let them decide what a root scan reports. An untrusted file is ignored:
    the sources are parsed as if there were no cache."""
    euid = getattr(os, "geteuid", None)
    if euid is None:
        return True
    uid = euid()
    try:
        st = os.fstat(fh.fileno())
        parent = os.stat(os.path.dirname(os.path.abspath(fh.name)))
    except (OSError, AttributeError, TypeError):
        return False
    return all(s.st_uid == uid and not s.st_mode & 0o022 for s in (st, parent))


def read_bytes(path):
    """The bytes of a trusted cache file, else None (missing, unreadable, not trusted)."""
    try:
        with open(path, "rb") as fh:
            return fh.read() if trusted(fh) else None
    except Exception:  # missing, unreadable
        return None


def load(path):
    """The document of a cache file (marshal), or None when it is not one or not trusted."""
    data = read_bytes(path)
    if data is None:
        return None
    try:
        doc = marshal.loads(data)
    except Exception:  # not marshal data
        return None
    return doc if isinstance(doc, dict) else None


def store(path, doc):
    """Write ``doc`` (JSON-shaped) to ``path`` atomically; never raises."""
    try:
        data = marshal.dumps(doc)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path), 0o700)
        tmp = "%s.tmp%d" % (path, os.getpid())
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except Exception:
        pass


def read(kind, directory, fp):
    """The cached payload for ``directory`` when its fingerprint is ``fp``, else None."""
    doc = load(path_for(kind, directory))
    if doc is None or doc.get("fingerprint") != fp or "payload" not in doc:
        return None
    return doc["payload"]


def write(kind, directory, fp, payload):
    try:
        doc = {"fingerprint": fp, "payload": json_shaped(payload)}
    except Exception:
        return
    store(path_for(kind, directory), doc)
