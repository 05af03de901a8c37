"""SUID/SGID programs and world-writable files and directories on every local filesystem.

One walk per local filesystem, each with ``-xdev`` (like ``find / -xdev`` for every
mount of ``df --local``), so it decides the rules on big hosts:

* **cheap per entry**: ``os.scandir`` gives the entry type (``d_type``) without a system call;
  only directories and regular files are ``lstat``-ed (a symlink, device, socket or FIFO can
  be neither SUID nor a world-writable file), symlinks are never followed;
* **every local filesystem once**: the mount table (``/proc/self/mountinfo``) names the mounts
  at or under the root; network and pseudo filesystems (NFS, CIFS, proc, overlay layers …)
  are not walked, a bind mount of a tree already walked is not walked twice, and no walk
  crosses into another mount (each is walked on its own);
* **data stays data**: a directory whose entries identify it as the data directory of a
  database or message queue (``data_dir_markers`` of the catalog's products, e.g.
  ``PG_VERSION`` + ``base`` + ``global``) is listed but not descended into, and the report
  says so (``data_dirs_skipped``); ``XCSCAN_WALK_DATA_DIRS=1`` walks them too;
* **a budget that says what it covered**: at most MAX_ENTRIES entries and BUDGET seconds; a
  walk that stopped reports ``entries`` against ``inodes_in_use`` of the walked filesystems
  (statvfs), and a list it could not decide is ``None`` with the reason "unknown: covered X of
  about Y" (``unknown_why``, read by the rule engine) — a partial walk cannot show there is none.

The facts are collected once per run; every rule that reads ``special_files`` uses them.
"""
from __future__ import absolute_import

import os
import time

from scanner.collect import _mounts

NAME = "special_files"
ON_DEMAND = True
BUDGET = 60.0  # seconds for this collector (scanner.collect.collect_facts honours it)

# container layers and pseudo trees: no system programs or configuration, many files.
# /var/cache is walked (it used to be skipped as "churn"): nothing in the sources excludes it, and
# what lives there is read back by programs (man-db's index, apt's and dnf's package caches, application
# caches), so a world-writable file there is a file others can rewrite for a program to trust.
# /tmp and /var/tmp are walked: their sticky bit (1777) only stops others from deleting or renaming
# an entry (unlink(2), rename(2): EPERM "the directory has the sticky bit set"), never from writing into
# a world-writable file, and a 0777 directory inside them has no sticky bit of its own; the rules'
# sources check every local filesystem and exclude only pseudo filesystems (RHEL 6 STIG RHEL-06-000282:
# "find [PART] -xdev -type f -perm -002 ... for each local partition, excluding special filesystems such
# as /selinux, /proc, or /sys"; CIS "Ensure no world writable files exist": df --local ... -xdev).
SKIP = ("/var/lib/docker", "/var/lib/containers", "/var/lib/kubelet",
        "/var/lib/lxc", "/var/lib/lxd", "/var/lib/snapd/snaps", "/proc", "/sys", "/dev", "/run")
NOT_WALKED_FS = frozenset(("nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph", "glusterfs",
                           "fuse.sshfs", "fuse.glusterfs", "lustre", "gpfs", "beegfs", "proc", "sysfs", "devtmpfs",
                           "devpts", "cgroup", "cgroup2", "securityfs", "debugfs", "tracefs", "configfs", "fusectl",
                           "binfmt_misc", "mqueue", "hugetlbfs", "pstore", "bpf", "autofs", "overlay", "squashfs",
                           "efivarfs", "rpc_pipefs", "nsfs", "ramfs", "selinuxfs", "fuse.lxcfs", "fuse.portal",
                           "fuse.gvfsd-fuse", "iso9660"))
MAX_ENTRIES = 50000000
MAX_LISTED = 500
_CHECK_EVERY = 8192  # entries between two looks at the clock

_S_ISUID, _S_ISGID, _S_ISVTX, _O_W = 0o4000, 0o2000, 0o1000, 0o002


def _data_dir_signatures():
    """[(product id, frozenset of entry names)] from the catalog, most specific first."""
    try:
        from scanner.catalog import default_catalog
        catalog = default_catalog()
    except Exception:  # a broken catalog must not stop the walk: data dirs are then walked
        return []
    sigs = []
    for pid in sorted(catalog.products):
        for names in catalog.products[pid].get("data_dir_markers") or ():
            sigs.append((pid, frozenset(names)))
    sigs.sort(key=lambda s: (-len(s[1]), s[0]))
    return sigs


def _mount_table(ctx):
    """The scanning host's mount table. For an offline root it still tells which filesystems are
    mounted under the root (an image with a separate /boot), so it is the host's file, read as such."""
    if ctx.live:
        return ctx.fs.read_text("/proc/self/mountinfo", report=False) or ""
    try:
        with open("/proc/self/mountinfo", "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return ""


def _inodes_in_use(tops, host_root):
    """Inodes in use on the walked filesystems, or None when unknown (a root that is a directory
    inside a filesystem, not a whole one, or a filesystem that does not count inodes)."""
    if host_root != "/" and not os.path.ismount(host_root):
        return None
    seen, total = set(), 0
    for top in tops:
        try:
            st = os.lstat(top)
            vfs = os.statvfs(top)
        except OSError:
            return None
        if st.st_dev in seen:
            continue
        seen.add(st.st_dev)
        if not vfs.f_files:  # btrfs and some others report no inode counts
            return None
        total += vfs.f_files - vfs.f_ffree
    return total


class _Walk(object):
    """State of one run over all the tops (counts, lists, budget)."""

    def __init__(self, root_len, stops, deadline, max_entries, signatures):
        self.root_len = root_len
        self.stops = stops
        self.deadline = deadline
        self.max_entries = max_entries
        self.signatures = signatures
        self.markers = frozenset(n for _pid, names in signatures for n in names)
        self.entries = 0
        self.unreadable = 0
        self.stopped = None
        self.suid, self.ww_files, self.ww_dirs, self.data_dirs = [], [], [], []
        self.counts = {"suid_sgid": 0, "world_writable_files": 0, "world_writable_dirs": 0}

    def target(self, host_path):
        return host_path[self.root_len:] or "/"

    def walk(self, top):
        try:
            dev = os.lstat(top).st_dev
        except OSError:
            return
        stops, markers = self.stops, self.markers
        counts, suid, ww_files, ww_dirs = self.counts, self.suid, self.ww_files, self.ww_dirs
        scandir, open_, close = os.scandir, os.open, os.close
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
        by_fd = os.scandir in getattr(os, "supports_fd", ())
        n = self.entries
        check_at = min(n + _CHECK_EVERY, self.max_entries)
        stack = [top]
        while stack:
            path = stack.pop()
            # The directory is opened and listed through its descriptor, so each entry's lstat is
            # fstatat(directory, name): the kernel resolves one name, not the whole path again (what
            # find does too; ~10% of a walk's CPU on deep trees). Paths are built as os.scandir(path) does.
            fd = None
            try:
                if by_fd:
                    fd = open_(path, flags)
                it = scandir(path if fd is None else fd)
            except OSError:
                if fd is not None:
                    close(fd)
                self.unreadable += 1  # as complete as the OS allows (find says "Permission denied" and goes on)
                continue
            prefix = path if path.endswith("/") else path + "/"
            subdirs, found = [], None
            try:
                with it:
                    for entry in it:
                        n += 1
                        if n >= check_at:
                            check_at = min(n + _CHECK_EVERY, self.max_entries)
                            if n >= self.max_entries:
                                self.stopped = "entries"
                            elif time.monotonic() > self.deadline:
                                self.stopped = "time"
                            if self.stopped:
                                break
                        name = entry.name
                        if name in markers:
                            if found is None:
                                found = set()
                            found.add(name)
                        try:
                            if entry.is_dir(follow_symlinks=False):
                                st = entry.stat(follow_symlinks=False)
                                mode = st.st_mode
                                sub = prefix + name
                                if mode & _O_W and not mode & _S_ISVTX:
                                    counts["world_writable_dirs"] += 1
                                    if len(ww_dirs) < MAX_LISTED:
                                        ww_dirs.append(self.target(sub))
                                if st.st_dev == dev and sub not in stops:
                                    subdirs.append(sub)
                            elif entry.is_file(follow_symlinks=False):
                                st = entry.stat(follow_symlinks=False)
                                mode = st.st_mode
                                if mode & 0o6002:
                                    self._special_file(prefix + name, name, st, mode)
                        except OSError:
                            continue  # vanished between listing and lstat
            except OSError:  # the directory went away or failed while being read: what was listed counts
                self.unreadable += 1
            finally:
                if fd is not None:
                    close(fd)
            if self.stopped:
                break
            if found is not None and self._data_dir(path, found):
                continue
            stack.extend(subdirs)
        self.entries = n

    def _special_file(self, path, name, st, mode):
        if mode & (_S_ISUID | _S_ISGID):
            self.counts["suid_sgid"] += 1
            if len(self.suid) < MAX_LISTED:
                self.suid.append({"path": self.target(path), "name": name, "mode": "%04o" % (mode & 0o7777),
                                  "suid": bool(mode & _S_ISUID), "sgid": bool(mode & _S_ISGID),
                                  "uid": st.st_uid, "gid": st.st_gid})
        if mode & _O_W:
            self.counts["world_writable_files"] += 1
            if len(self.ww_files) < MAX_LISTED:
                self.ww_files.append(self.target(path))

    def _data_dir(self, path, found):
        for pid, names in self.signatures:
            if names <= found:
                self.data_dirs.append({"path": self.target(path), "product": pid, "markers": sorted(names)})
                return True
        return False


def collect(ctx):
    fs = ctx.fs
    host_root = fs.root.rstrip("/") or "/"
    prefix = "" if host_root == "/" else host_root
    skip = frozenset(prefix + p for p in SKIP)
    tops, mount_stops, not_walked, duplicates = _mounts.plan(
        host_root, _mounts.parse_mountinfo(_mount_table(ctx)), NOT_WALKED_FS, skip)
    walk_data = os.environ.get("XCSCAN_WALK_DATA_DIRS", "") not in ("", "0")
    signatures = [] if walk_data else _data_dir_signatures()
    started = time.monotonic()
    deadline = started + BUDGET
    if ctx.deadline is not None:
        deadline = min(deadline, ctx.deadline - 0.5)
    walk = _Walk(len(prefix), set(mount_stops) | skip, deadline, MAX_ENTRIES, signatures)
    for top in tops:
        walk.walk(top)
        if walk.stopped:
            break
    complete = walk.stopped is None
    in_use = _inodes_in_use(tops, host_root)
    facts = {
        "walked": sorted(walk.target(t) for t in tops),
        "not_walked": [{"path": walk.target(p), "fstype": t} for p, t in not_walked],
        "bind_mounts": [{"path": walk.target(p), "same_as": walk.target(s)} for p, s in duplicates],
        "skipped": [p for p in SKIP if os.path.lexists(prefix + p)],
        "data_dirs_skipped": sorted(walk.data_dirs, key=lambda d: d["path"]),
        "data_dirs_walked": walk_data,
        "entries": walk.entries, "inodes_in_use": in_use, "unreadable_dirs": walk.unreadable,
        "budget": {"seconds": BUDGET, "entries": MAX_ENTRIES},
        "complete": complete, "stopped": None, "counts": walk.counts,
    }
    unknown = {}

    def listed(key, items):
        if items or complete:
            return sorted(items, key=lambda x: x["path"] if isinstance(x, dict) else x)
        unknown[key] = {"key": "scan.reason.walk_partial" if in_use else "scan.reason.walk_partial_no_total",
                        "args": {"covered": walk.entries, "total": in_use or 0}}
        return None

    facts["suid_sgid"] = listed("suid_sgid", walk.suid)
    facts["world_writable_files"] = listed("world_writable_files", walk.ww_files)
    facts["world_writable_dirs"] = listed("world_writable_dirs", walk.ww_dirs)
    if not complete:
        spent = ("%d entries" % walk.entries) if walk.stopped == "entries" else ("%.0f s" % (time.monotonic() - started))
        facts["stopped"] = "stopped after %s (%d entries of about %s in use)" % (
            spent, walk.entries, in_use if in_use else "?")
        facts["unknown_why"] = unknown
        ctx.error(None, "special-file walk %s; lists that found nothing are unknown" % facts["stopped"])
    return facts
