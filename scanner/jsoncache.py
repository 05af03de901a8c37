"""Validated data kept as compact JSON in the user cache directory, keyed by a fingerprint of its
source files (path, size, mtime) and of the code that validated it.

Parsing YAML costs far more than reading JSON (on Python 3.7 without libyaml, tens of times more),
so the rule set and the product catalog are validated once and read from here on later runs. Any
problem with a cache file (missing, stale, corrupt, unwritable directory) falls back silently to
parsing the sources; the cache is never the only copy of anything.
"""
from __future__ import absolute_import

import hashlib
import json
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
    return os.path.join(cache_dir(), "%s-%s.json" % (kind, key))


def read(kind, directory, fp):
    """The cached payload for ``directory`` when its fingerprint is ``fp``, else None."""
    try:
        with open(path_for(kind, directory), "rb") as fh:
            doc = json.loads(fh.read().decode("utf-8"))
        if doc.get("fingerprint") != fp:
            return None
        return doc["payload"]
    except Exception:  # any cache problem: parse the sources instead
        return None


def write(kind, directory, fp, payload):
    try:
        path = path_for(kind, directory)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path), 0o700)
        tmp = "%s.tmp%d" % (path, os.getpid())
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"fingerprint": fp, "payload": payload}, fh, ensure_ascii=False, separators=(",", ":"),
                      default=str)
        os.replace(tmp, path)
    except Exception:
        pass
