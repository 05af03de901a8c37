"""Bounded path globbing on the target filesystem (wildcards in any component, no recursion)."""
from __future__ import absolute_import

import posixpath


def glob_paths(fs, pattern, files_only=True):
    """Target paths matching ``pattern``; each wildcard component is expanded with one listdir."""
    parts = pattern.split("/")
    for i, part in enumerate(parts[:-1]):
        if any(c in part for c in "*?["):
            base = "/".join(parts[:i]) or "/"
            out = []
            for d in fs.glob(posixpath.join(base, part)):
                if fs.isdir(d):
                    out.extend(glob_paths(fs, "/".join([d] + parts[i + 1:]), files_only))
            return out
    if any(c in parts[-1] for c in "*?["):
        found = fs.glob(pattern)
    else:
        found = [pattern] if fs.exists(pattern) else []
    return [p for p in found if fs.isfile(p)] if files_only else found
