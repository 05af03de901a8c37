"""Root-aware, read-only file layer.

Every file read made by a collector goes through :class:`RootFS`, so that
``--root /mnt/image`` scans an offline image exactly like the live host:

* paths are always given as they appear on the target ("/etc/os-release");
* symbolic links are resolved *inside* the root: an absolute link target is
  re-rooted and ``..`` never climbs above the root, so an image can never make
  the scanner read the live host's files;
* reads are bounded (``max_bytes``) and never raise: a problem becomes an
  entry in the shared error list and the caller gets ``None``.

Python 3.7 compatible on purpose (the agent runs on the system Python of
Kylin V10 / UOS 20 / openEuler 20.03).
"""
from __future__ import absolute_import

import errno
import os
import posixpath
import re
import stat as stat_mod

from scanner.globmatch import fnmatchcase  # fnmatch's, without a regex per pattern

_GLOB_HEAD = re.compile(r"[*?\[]")
DEFAULT_MAX_BYTES = 1024 * 1024  # 1 MiB: no fact we read legitimately needs more
MAX_SYMLINK_HOPS = 40


def _normpath(path):
    """posixpath.normpath(path), without its work for a path that is already normal (a scan asks ~1,300
    times, nearly always for one): absolute, no empty component ("//"), none starting with "." (".", "..",
    and, to keep the test simple, hidden names) and no trailing slash."""
    if path.startswith("/") and "//" not in path and "/." not in path and (not path.endswith("/") or path == "/"):
        return path
    return posixpath.normpath(path)


class RootFS(object):
    """Read-only view of a target filesystem rooted at ``root``."""

    def __init__(self, root="/", errors=None):
        root = os.path.abspath(root or "/")
        self.root = root
        self.is_host_root = root == "/"
        # errors: list of {"collector", "path", "message"} dicts shared with the Context
        self.errors = errors if errors is not None else []
        self._collector = "fs"

    # -- error handling -------------------------------------------------
    def set_collector(self, name):
        """Name used in error entries for reads made by the running collector."""
        self._collector = name

    def error(self, path, message, collector=None):
        self.errors.append({
            "collector": collector or self._collector,
            "path": path,
            "message": message,
        })

    # -- path mapping ---------------------------------------------------
    def resolve(self, path):
        """Map a target path to a host path, following symlinks inside the root.

        Returns the host path (which may not exist). Raises OSError(ELOOP) on
        a symlink loop.
        """
        if not path.startswith("/"):
            raise ValueError("target paths must be absolute: %r" % (path,))
        if self.is_host_root:
            return _normpath(path)
        parts = [p for p in path.split("/") if p and p != "."]
        resolved = []  # components below the root, already resolved
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = os.path.join(self.root, *(resolved + [name]))
            try:
                is_link = stat_mod.S_ISLNK(os.lstat(candidate).st_mode)
            except OSError:
                is_link = False
            if not is_link:
                resolved.append(name)
                continue
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
        return os.path.join(self.root, *resolved) if resolved else self.root

    def host_path(self, path):
        """Host path for ``path`` or None when it cannot be resolved."""
        try:
            return self.resolve(path)
        except (OSError, ValueError):
            return None

    # -- queries that never raise ----------------------------------------
    def exists(self, path):
        hp = self.host_path(path)
        return bool(hp) and os.path.exists(hp)

    def isdir(self, path):
        hp = self.host_path(path)
        return bool(hp) and os.path.isdir(hp)

    def isfile(self, path):
        hp = self.host_path(path)
        return bool(hp) and os.path.isfile(hp)

    def stat(self, path, report=False):
        """os.stat result of the resolved path, or None."""
        try:
            return os.stat(self.resolve(path))
        except (OSError, ValueError) as exc:
            if report:
                self._report(path, exc)
            return None

    def lstat(self, path):
        """os.lstat of the path itself (its parent resolved inside the root)."""
        try:
            parent, name = posixpath.split(_normpath(path))
            return os.lstat(os.path.join(self.resolve(parent), name))
        except (OSError, ValueError):
            return None

    def readlink(self, path):
        """Raw target of a symlink at ``path`` (not resolved), or None."""
        try:
            parent, name = posixpath.split(_normpath(path))
            return os.readlink(os.path.join(self.resolve(parent), name))
        except (OSError, ValueError):
            return None

    def listdir(self, path, report=False):
        """Sorted entries of a directory, or None (missing or unreadable)."""
        try:
            return sorted(os.listdir(self.resolve(path)))
        except (OSError, ValueError) as exc:
            if report:
                self._report(path, exc)
            return None

    def glob(self, pattern):
        """Target paths matching a glob whose wildcards are in the last component (sorted)."""
        directory, base = posixpath.split(pattern)
        try:
            names = os.listdir(self.resolve(directory))
        except (OSError, ValueError):
            return []
        # a match starts with the glob's literal head: /usr/lib/x86_64-linux-gnu/libssl.so.* meets ~1,250
        # names, of which a handful get the full test (and only the matches are sorted)
        head = _GLOB_HEAD.split(base, 1)[0]
        return [posixpath.join(directory, n) for n in sorted(n for n in names if n.startswith(head)
                                                             and fnmatchcase(n, base))]

    def read_bytes(self, path, max_bytes=DEFAULT_MAX_BYTES, report=True, missing_ok=True):
        """File content (at most ``max_bytes``) or None.

        A missing file is silent when ``missing_ok``; any other problem
        (permission, loop, directory, I/O error) is recorded when ``report``.
        """
        try:
            hp = self.resolve(path)
            with open(hp, "rb") as fh:
                data = fh.read(max_bytes + 1)
        except (OSError, IOError, ValueError) as exc:
            missing = isinstance(exc, (OSError, IOError)) and exc.errno in (errno.ENOENT, errno.ENOTDIR)
            if report and not (missing and missing_ok):
                self._report(path, exc)
            return None
        if len(data) > max_bytes:
            if report:
                self.error(path, "file larger than %d bytes; only the first %d bytes were read"
                           % (max_bytes, max_bytes))
            data = data[:max_bytes]
        return data

    def read_text(self, path, max_bytes=DEFAULT_MAX_BYTES, report=True, missing_ok=True):
        """File content decoded as UTF-8 (invalid bytes replaced) or None."""
        data = self.read_bytes(path, max_bytes=max_bytes, report=report, missing_ok=missing_ok)
        if data is None:
            return None
        return data.decode("utf-8", "replace")

    def read_first_line(self, path, report=False):
        text = self.read_text(path, max_bytes=64 * 1024, report=report)
        if text is None:
            return None
        return text.split("\n", 1)[0].strip()

    def _report(self, path, exc):
        if isinstance(exc, (OSError, IOError)):
            if exc.errno == errno.EACCES:
                msg = "permission denied (run as root to read it)"
            elif exc.errno == errno.ELOOP:
                msg = "symbolic link loop"
            elif exc.errno == errno.EISDIR:
                msg = "is a directory, expected a file"
            elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
                msg = "not found"
            else:
                msg = exc.strerror or str(exc)
        else:
            msg = str(exc)
        self.error(path, msg)
