"""The mount table (``/proc/self/mountinfo``) read into records, and the plan of which
filesystems a whole-host walk visits: every local filesystem once, each with ``-xdev``.

A mountinfo line (proc(5))::

    36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    id par dev root mount-point options [optional fields] - fstype source super-options

``root`` is the directory of the filesystem that is mounted there: a bind mount of
``/srv/data`` shows the device of ``/`` with root ``/srv/data``.
"""
from __future__ import absolute_import

import collections

Mount = collections.namedtuple("Mount", "dev fsroot mountpoint fstype")

_ESCAPES = (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\"))


def _unescape(field):
    for code, char in _ESCAPES:
        field = field.replace(code, char)
    return field


def parse_mountinfo(text):
    """Mount records in mount order (a later mount on the same point hides the earlier one)."""
    out = []
    for line in (text or "").splitlines():
        parts = line.split()
        if "-" not in parts[6:]:
            continue
        sep = parts.index("-", 6)
        if len(parts) < sep + 2 or len(parts) < 5:
            continue
        out.append(Mount(parts[2], _unescape(parts[3]), _unescape(parts[4]), parts[sep + 1]))
    return out


def _under(path, top):
    return path == top or top == "/" or path.startswith(top + "/")


def plan(host_root, mounts, not_walked_fs, skip):
    """Which mounts at or under ``host_root`` to walk.

    Returns ``(tops, stops, not_walked, duplicates)``: ``tops`` the host paths to walk (the root
    first), ``stops`` every mount point a walk must not descend into (each is walked on its own or
    deliberately not), ``not_walked`` [(host path, fstype)] network and pseudo filesystems,
    ``duplicates`` [(host path, host path walked instead)] bind mounts of a tree already walked.
    ``skip`` holds host paths never walked (their mounts are neither walked nor listed).
    """
    latest = collections.OrderedDict()
    for m in mounts:
        latest[m.mountpoint] = m  # the last mount on a point is the visible one
    # the filesystem tree the root itself shows: the mount holding it, and the directory inside it
    holder = None
    for m in latest.values():
        if _under(host_root, m.mountpoint) and (holder is None or len(m.mountpoint) > len(holder.mountpoint)):
            holder = m
    walked = []  # (host path, dev, fsroot)
    if holder is not None:
        inner = host_root[len(holder.mountpoint.rstrip("/")):] if holder.mountpoint != "/" else host_root
        fsroot = (holder.fsroot.rstrip("/") + inner) if inner not in ("", "/") else holder.fsroot
        walked.append((host_root, holder.dev, fsroot or "/"))
    tops, stops, not_walked, duplicates = [host_root], set(), [], []
    dead = []  # not walked, nor anything under them
    for point in sorted(latest, key=lambda p: (p.count("/"), p)):
        m = latest[point]
        if point == host_root or not _under(point, host_root):
            continue
        stops.add(point)
        if any(_under(point, d) for d in dead) or any(_under(point, s) for s in skip):
            dead.append(point)
            continue
        if m.fstype in not_walked_fs:
            not_walked.append((point, m.fstype))
            dead.append(point)
            continue
        same = None
        for top, dev, fsroot in walked:
            if dev == m.dev and _under(m.fsroot, fsroot):
                same = top
                break
        if same is not None:
            duplicates.append((point, same))
            continue
        walked.append((point, m.dev, m.fsroot))
        tops.append(point)
    return tops, stops, not_walked, duplicates
