"""Compiled regular expressions kept between runs of the command line.

A scan compiles a few hundred regular expressions (collectors, the catalog signatures a host needs,
rule operators, the modules imported on demand, the YAML resolver). Python's ``re`` compiles a pattern
in pure Python (parse, then code generation) and only then hands the code to the C engine
(``_sre.compile``); on this machine that was ~100 M instructions of a scan's ~930 M. What the C engine
receives is plain data (the pattern, flags, a list of integers, group names), so it is kept here, in
the user cache directory, and ``re``'s cache is given a fallback: a pattern it does not hold is looked
up here and, if kept, built by ``_sre.compile`` from the kept data -- the pattern object ``re`` itself
would build, since the data was recorded from this same Python's compiler (the file name holds a digest
of ``sys.version``, ``_sre.MAGIC`` and the marshal version). Only the patterns a run asks for are built.

Anything unexpected (another ``re`` layout, a corrupt or missing file, an unwritable directory) leaves
``re`` compiling as usual; the file is never the only copy of anything.
"""
from __future__ import absolute_import

import hashlib
import marshal
import os
import re
import sys

MAX_ENTRIES = 600   # the file's patterns; those no run asked for since they were added go first
_kept = {}          # (pattern, flags) -> marshalled _sre.compile arguments, not yet asked for
_file = {}          # what the file held at start-up (same keys)


def _compiler():
    """re's compiler module (re._compiler on 3.11+, sre_compile before), or None."""
    mod = getattr(re, "_compiler", None)
    if mod is None:
        try:
            import sre_compile as mod
        except ImportError:
            return None
    return mod if hasattr(mod, "compile") and hasattr(mod, "_sre") else None


class _Cache(dict):
    """re's own cache of compiled patterns (it looks up ``_cache[type(pattern), pattern, flags]`` and
    compiles on a KeyError) with the kept patterns as the fallback of a miss."""
    __slots__ = ()

    def __missing__(self, key):
        blob = _kept.pop(key[1:], None) if len(key) == 3 else None
        if blob is None:
            raise KeyError(key)
        compiled = _compiler()._sre.compile(*marshal.loads(blob))
        self[key] = compiled
        return compiled


def path():
    from scanner.jsoncache import cache_dir
    sre = _compiler()._sre
    tag = "%s|%s|%s|%s" % (sys.version, getattr(sre, "MAGIC", "?"), getattr(sre, "CODESIZE", "?"), marshal.version)
    return os.path.join(cache_dir(), "regex-%s.marshal" % hashlib.sha1(tag.encode("utf-8")).hexdigest()[:16])


def installed():
    """Whether re's cache already has the kept patterns as its fallback (``install`` ran)."""
    return type(getattr(re, "_cache", None)) is _Cache


def install():
    """Read the kept patterns and give re's cache its fallback; the number kept (0 on any problem)."""
    try:
        if _compiler() is None or type(getattr(re, "_cache", None)) not in (dict, _Cache):
            return 0
        from scanner.jsoncache import read_bytes
        data = read_bytes(path())       # None: missing, or a file another user could have written
        if data is None:
            return 0
        entries = marshal.loads(data)
        if not isinstance(entries, dict):
            return 0
        _file.clear()
        _file.update(entries)
        _kept.clear()
        _kept.update(entries)
        if type(re._cache) is dict:
            re._cache = _Cache(re._cache)
        return len(entries)
    except Exception:  # no file yet, another layout, a corrupt file: re compiles as usual
        return 0


class _Capture(object):
    """Stands in for the ``_sre`` module inside re's compiler while it compiles: records the arguments
    of ``_sre.compile`` (and calls it), delegates everything else."""

    def __init__(self, sre):
        self._sre = sre
        self.args = None

    def compile(self, *args):
        self.args = args
        return self._sre.compile(*args)

    def __getattr__(self, name):
        return getattr(self._sre, name)


def _engine_args(pattern, flags):
    """The arguments re's compiler passes to ``_sre.compile`` for ``pattern``, as plain data."""
    compiler = _compiler()
    real = compiler._sre
    capture = _Capture(real)
    compiler._sre = capture
    try:
        compiler.compile(pattern, flags)
    finally:
        compiler._sre = real
    if capture.args is None:
        return None
    # the code holds the compiler's named int constants (opcodes): marshal keeps plain ints only
    return tuple([int(c) for c in a] if isinstance(a, list) else int(a) if isinstance(a, int) else a
                 for a in capture.args)


def save():
    """Add the patterns this run compiled that the file lacks (none: nothing is written); the number added."""
    try:
        cache = getattr(re, "_cache", None)
        if _compiler() is None or not isinstance(cache, dict):
            return 0
        new = [key[1:] for key in list(cache) if isinstance(key, tuple) and len(key) == 3
               and isinstance(key[1], (str, bytes)) and type(key[2]) is int and key[1:] not in _file]
        if not new:
            return 0
        entries = dict(_file)
        for key in new:
            args = _engine_args(*key)
            if args is not None:
                entries[key] = marshal.dumps(args)
        while len(entries) > MAX_ENTRIES:
            stale = next((k for k in entries if k in _kept), None) or next(iter(entries))
            del entries[stale]
        data = marshal.dumps(entries)
        target = path()
        directory = os.path.dirname(target)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        tmp = "%s.tmp%d" % (target, os.getpid())
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _file.clear()
        _file.update(entries)
        return len(new)
    except Exception:
        return 0
