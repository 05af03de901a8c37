"""YAML loading with clear, located errors (file and line) and the fast C loader when present.

The shipped data files (the rules directory, the package's own locale and glossary) are read from a
JSON cache after the first parse (scanner/jsoncache.py, keyed by a digest of the file's bytes, so an
edit is seen even within one timestamp tick; reading is cheap, parsing is not): the
offline bundle on Python 3.7 has no libyaml, and the pure-Python loader parses ~40 KB of locale text
in a third of a second. Documents JSON cannot hold exactly (dates, non-string keys) are never cached;
files given by the user (waivers, agent configuration) are always parsed.
"""
from __future__ import absolute_import

import os

from scanner.errors import DataError

CACHE_FORMAT = "yaml-1"


def _loader():
    import yaml
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml_text(text, path="<string>"):
    import yaml
    try:
        return yaml.load(text, Loader=_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = "%s:%d:%d" % (path, mark.line + 1, mark.column + 1) if mark else path
        problem = getattr(exc, "problem", None) or str(exc)
        raise DataError("malformed YAML: %s" % problem, path=where,
                        hint="fix the syntax at that line; YAML indentation uses spaces, not tabs")


def _shipped(path):
    """True for a file of the shipped data: under the rules directory or the scanner package."""
    from scanner.paths import rules_dir
    package = os.path.dirname(os.path.abspath(__file__))
    for top in (os.path.abspath(rules_dir()), package):
        if path.startswith(top.rstrip("/") + "/"):
            return True
    return False


def _json_exact(doc):
    import json
    try:
        return json.loads(json.dumps(doc, ensure_ascii=False)) == doc
    except (TypeError, ValueError):
        return False


def load_yaml_file(path):
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except (IOError, OSError) as exc:
        raise DataError("cannot read file: %s" % (exc.strerror or exc), path=path,
                        hint="check that the path exists and is readable")
    full = os.path.abspath(path)
    fp = None
    if _shipped(full):
        import hashlib
        from scanner import jsoncache
        fp = hashlib.sha1(CACHE_FORMAT.encode("ascii") + b"\0" + raw).hexdigest()
        hit = jsoncache.read("yaml", full, fp)
        if isinstance(hit, dict) and "doc" in hit:
            return hit["doc"]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError("not valid UTF-8 at byte %d" % exc.start, path=path, hint="save the file as UTF-8")
    doc = load_yaml_text(text, path)
    if fp and _json_exact(doc):
        from scanner import jsoncache
        jsoncache.write("yaml", full, fp, {"doc": doc})
    return doc
