"""The registry of known fact paths (scanner/engine/fact_paths.yaml).

``xcscan rules lint`` rejects a rule that reads a fact no collector provides.
The registry is data: each collector owner lists the paths their facts have.
Pattern segments: a literal key, ``*`` (any one key), ``**`` (any rest, at
least one key), and ``[]`` after a segment for "each element of this list".
"""
from __future__ import absolute_import

import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def registry_file():
    return os.path.join(_HERE, "fact_paths.yaml")


def _split(path):
    """'a.b[].c' -> ['a', 'b', '[]', 'c']"""
    out = []
    for seg in path.split("."):
        while seg.endswith("[]"):
            seg = seg[:-2]
            if seg:
                out.append(seg)
            out.append("[]")
            seg = ""
        if seg:
            out.append(seg)
    return out


class Registry(object):
    def __init__(self, patterns):
        self.patterns = [_split(p) for p in patterns]

    def known(self, path):
        segs = _split(path)
        # a numeric index in a rule path means an element of a list
        segs = ["[]" if s.isdigit() else s for s in segs]
        return any(_match(p, segs) for p in self.patterns)


def _match(pat, segs):
    if not pat:
        return not segs
    head = pat[0]
    if head == "**":
        return len(segs) >= 1
    if not segs:
        # a path may stop at any prefix of a registered pattern (a whole mapping or list)
        return True
    if head == "[]":
        return segs[0] == "[]" and _match(pat[1:], segs[1:])
    if head == "*" or head == segs[0]:
        if _match(pat[1:], segs[1:]):
            return True
        # keys may contain dots: let one pattern key absorb several path segments
        if head != "*":
            return False
        return False
    # a literal pattern key that contains dots matched against several segments
    if "." in head:
        n = head.count(".") + 1
        if ".".join(segs[:n]) == head:
            return _match(pat[1:], segs[n:])
    return False


_DEFAULT = {}


def default_registry():
    path = registry_file()
    if path not in _DEFAULT:
        from scanner.yamlio import load_yaml_file
        doc = load_yaml_file(path) or {}
        patterns = []
        for group in (doc.get("facts") or {}).values():
            patterns.extend(group or [])
        _DEFAULT[path] = Registry(patterns)
    return _DEFAULT[path]
