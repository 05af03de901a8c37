"""A copy-on-write view of the target root: the planner reads files from the root and records the
new states; ``changes()`` lists what differs. Nothing here writes to disk.

Paths are target paths ("/etc/login.defs"). Symbolic links are followed inside the root, as
``sed --follow-symlinks`` and Ansible do: editing /etc/pam.d/system-auth edits the authselect
file it points to.
"""
from __future__ import absolute_import

import glob
import os
import stat as stat_mod

from scanner.errors import XcscanError


class State(object):
    """kind: 'file' | 'dir' | 'link' | None (absent); data: bytes (file) or link target."""
    __slots__ = ("kind", "data", "mode", "uid", "gid")

    def __init__(self, kind, data=None, mode=None, uid=0, gid=0):
        self.kind, self.data, self.mode, self.uid, self.gid = kind, data, mode, uid, gid

    def __eq__(self, other):
        return isinstance(other, State) and (self.kind, self.data, self.mode, self.uid, self.gid) == (
            other.kind, other.data, other.mode, other.uid, other.gid)

    def __ne__(self, other):
        return not self == other

    def copy(self, **kw):
        st = State(self.kind, self.data, self.mode, self.uid, self.gid)
        for k, v in kw.items():
            setattr(st, k, v)
        return st

    def text(self):
        return (self.data or b"").decode("utf-8", "surrogateescape") if self.kind == "file" else None

    def to_json(self):
        out = {"kind": self.kind, "mode": "%04o" % self.mode if self.mode is not None else None,
               "uid": self.uid, "gid": self.gid}
        if self.kind == "link":
            out["target"] = self.data
        return out


ABSENT = State(None)
MAX_FILE = 4 * 1024 * 1024


class Overlay(object):
    def __init__(self, root):
        from scanner.rootfs import RootFS
        self.root = os.path.abspath(root or "/")
        self.fs = RootFS(self.root)
        self.original = {}
        self.current = {}
        self.order = []

    # -- paths
    def host(self, path):
        return path if self.root == "/" else os.path.join(self.root, path.lstrip("/"))

    def target(self, host_path):
        if self.root == "/":
            return host_path
        rel = os.path.relpath(host_path, self.root)
        return "/" + ("" if rel == "." else rel)

    def resolve(self, path):
        """Follow symlinks inside the root (the overlay's own new links are not followed)."""
        try:
            return self.target(self.fs.resolve(path))
        except (OSError, ValueError) as exc:
            raise XcscanError("cannot resolve %s inside the root: %s" % (path, exc), path=path)

    def glob(self, pattern):
        found = sorted(self.target(p) for p in glob.glob(self.host(pattern)))
        created = [p for p in self.current if self.current[p].kind and p not in found
                   and _fnmatch(p, pattern)]
        return sorted(found + created)

    # -- states
    def _read(self, path):
        host = self.host(path)
        try:
            st = os.lstat(host)
        except OSError:
            return ABSENT
        mode = stat_mod.S_IMODE(st.st_mode)
        if stat_mod.S_ISLNK(st.st_mode):
            return State("link", os.readlink(host), None, st.st_uid, st.st_gid)
        if stat_mod.S_ISDIR(st.st_mode):
            return State("dir", None, mode, st.st_uid, st.st_gid)
        if not stat_mod.S_ISREG(st.st_mode):
            raise XcscanError("not a regular file: %s" % path, hint="the fix edits regular files only")
        if st.st_size > MAX_FILE:
            raise XcscanError("file too large to edit (%d bytes): %s" % (st.st_size, path))
        with open(host, "rb") as fh:
            return State("file", fh.read(), mode, st.st_uid, st.st_gid)

    def get(self, path):
        if path not in self.current:
            state = self._read(path)
            self.original[path] = state
            self.current[path] = state
        return self.current[path]

    def put(self, path, state):
        self.get(path)
        if path not in self.order:
            self.order.append(path)
        self.current[path] = state

    def read_text(self, path):
        st = self.get(path)
        return st.text() if st.kind == "file" else None

    def write_text(self, path, text, mode=0o644, uid=0, gid=0):
        st = self.get(path)
        data = text.encode("utf-8", "surrogateescape")
        if st.kind == "file":
            if st.data != data:
                self.put(path, st.copy(data=data))
        elif st.kind is None:
            self.ensure_dir(os.path.dirname(path))
            self.put(path, State("file", data, mode, uid, gid))
        else:
            raise XcscanError("%s is a %s, not a file" % (path, st.kind), path=path)

    def ensure_dir(self, path):
        if path in ("/", ""):
            return
        st = self.get(path)
        if st.kind == "dir":
            return
        if st.kind is not None:
            raise XcscanError("%s exists and is not a directory" % path, path=path)
        self.ensure_dir(os.path.dirname(path))
        self.put(path, State("dir", None, 0o755, 0, 0))

    def changes(self):
        """[(path, before, after)] in the order first touched; directories before their contents."""
        out = []
        for path in self.order:
            before, after = self.original[path], self.current[path]
            if before != after:
                out.append((path, before, after))
        return out


def _fnmatch(path, pattern):
    import fnmatch
    return fnmatch.fnmatchcase(path, pattern)
