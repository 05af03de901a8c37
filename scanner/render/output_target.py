"""What an ``--output`` path is, and therefore how it may be written without destroying what the
scanner does not own.

- nothing there yet, or a regular file: a new file replaces it atomically (temp file + rename);
- a character device (``/dev/null``, a terminal) or a FIFO: written in place, never replaced;
- a symlink: followed hop by hop to what it finally names, which is then treated as above (the
  regular file it points to is replaced, the link itself stays). A link is followed only when it
  belongs to us or to the owner of its directory — the kernel's own ``fs.protected_symlinks`` rule —
  so a link planted in a shared directory such as ``/tmp`` is refused; a dangling link is refused;
- ``/dev/stdout``, ``/dev/fd/N`` and other links into ``/proc``: written in place (appending), as the
  shell opened them;
- a directory, block device, socket or anything else: refused with the reason.
"""
from __future__ import absolute_import

import contextlib
import os
import stat

REPLACE = "replace"     # write a temp file beside it and rename over it
IN_PLACE = "in-place"   # open the existing node for writing; never create, never rename
MAX_HOPS = 40           # like the kernel's ELOOP limit


def _refuse(path, why, hint):
    from scanner.errors import XcscanError
    return XcscanError("refusing to write output: %s" % why, path=path, hint=hint)


def _kind(mode):
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file (mode %o)" % stat.S_IFMT(mode)


def _may_follow(link, st):
    """The kernel's fs.protected_symlinks rule: follow a link we own, or one owned by its
    directory's owner (so root follows /etc/alternatives/... but not a user's link in /tmp)."""
    if st.st_uid == os.geteuid():
        return True
    try:
        return os.stat(os.path.dirname(link) or ".").st_uid == st.st_uid
    except OSError:
        return False


def _follow(path):
    """Resolve ``path`` link by link; returns (final path, went through /proc)."""
    current = os.path.abspath(path)
    via_proc = False
    for _hop in range(MAX_HOPS):
        try:
            st = os.lstat(current)
        except OSError:
            return current, via_proc
        if not stat.S_ISLNK(st.st_mode):
            return current, via_proc
        if current.startswith("/proc/"):
            via_proc = True
            return current, via_proc
        if not _may_follow(current, st):
            raise _refuse(path, "%s is a symlink owned by uid %d in a directory it does not own" % (
                current, st.st_uid),
                "a link planted in a shared directory is not followed; give the real file's path")
        target = os.readlink(current)
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
        if current.startswith("/proc/"):
            via_proc = True
    raise _refuse(path, "too many levels of symbolic links", "give the real file's path")


def resolve(path):
    """(mode, path to write) for an --output path, or raise XcscanError saying why not.

    mode is REPLACE (atomic rename at the returned path) or IN_PLACE (open and write)."""
    final, via_proc = _follow(path)
    try:
        st = os.stat(final)
    except OSError:
        if final != os.path.abspath(path):
            raise _refuse(path, "it is a symlink to %s, which does not exist" % final,
                          "create the target first or give its path directly")
        return REPLACE, final
    if via_proc:
        if stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            return IN_PLACE, final
        raise _refuse(path, "it names %s" % _kind(st.st_mode), "give a regular file, a FIFO or a character device")
    if stat.S_ISREG(st.st_mode):
        return REPLACE, final
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return IN_PLACE, final
    raise _refuse(path, "it is %s%s" % (_kind(st.st_mode), "" if final == os.path.abspath(path) else
                                       " (via symlink to %s)" % final),
                  "give a regular file, a FIFO or a character device such as /dev/null")


def write_in_place(path, data):
    """Write bytes to an existing character device or FIFO (or a /proc/self/fd link) without
    creating, truncating or renaming anything. A FIFO blocks until a reader opens it, as with `>`."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOCTTY", 0))
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)


def _cannot(path, exc):
    from scanner.errors import XcscanError
    reason = "no space left on device" if getattr(exc, "errno", None) == 28 else (
        getattr(exc, "strerror", None) or str(exc))
    return XcscanError("cannot write output: %s" % reason, path=path,
                       hint="check the directory exists, is writable and has free space; nothing was replaced")


def default_mode():
    """0640 narrowed by the umask: what the scanner writes maps a host's weaknesses."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o640 & ~mask


class _Sink(object):
    """The file object handed out by open_output: a failed write names the output path."""

    def __init__(self, path, fh=None, fd=None):
        self._path = path
        self._fh = fh
        self._fd = fd

    def write(self, data):
        try:
            if self._fh is not None:
                return self._fh.write(data)
            view = memoryview(data)
            while view:                      # a pipe may take part of it at a time
                view = view[os.write(self._fd, view):]
            return len(data)
        except (IOError, OSError) as exc:
            raise _cannot(self._path, exc)

    def flush(self):
        if self._fh is not None:
            try:
                self._fh.flush()
            except (IOError, OSError) as exc:
                raise _cannot(self._path, exc)


@contextlib.contextmanager
def open_output(path, mode=None):
    """A binary, write-only file object for one output ``path`` that respects what the path is
    (see resolve): a regular file (or the regular file a symlink names) is written to a fresh
    temporary file beside it (mkstemp: O_EXCL, never a planted link), fsynced and renamed over it
    only when the block ends without an exception; a character device or FIFO is opened and written
    in place, never created, truncated or replaced; anything else is refused before a byte is written.

    ``mode`` is the new file's permission bits (default: an existing file keeps its own, a new one
    gets default_mode()). A failed write or rename is an XcscanError naming the path."""
    how, real = resolve(path)
    if how == IN_PLACE:
        try:
            fd = os.open(real, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOCTTY", 0))
        except OSError as exc:
            raise _cannot(path, exc)
        try:
            yield _Sink(path, fd=fd)
        finally:
            os.close(fd)
        return
    import tempfile
    from scanner.fsutil import fsync_dir
    directory = os.path.dirname(real)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(real) + ".", suffix=".tmp")
    except OSError as exc:
        raise _cannot(path, exc)
    done = False
    try:
        with os.fdopen(fd, "wb") as fh:
            sink = _Sink(path, fh=fh)
            yield sink
            sink.flush()
            try:
                os.fsync(fh.fileno())
            except OSError as exc:
                raise _cannot(path, exc)
        if mode is None:
            try:
                mode = os.stat(real).st_mode & 0o7777
            except OSError:
                mode = default_mode()
        try:
            os.chmod(tmp, mode)
            os.rename(tmp, real)
        except OSError as exc:
            raise _cannot(path, exc)
        done = True
        fsync_dir(directory)
    finally:
        if not done:
            try:
                os.unlink(tmp)
            except OSError:
                pass
