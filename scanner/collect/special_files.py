"""SUID/SGID programs and world-writable files and directories in the system trees.

One bounded walk (``os.scandir``, one ``lstat`` per file, symlinks never followed) over the
trees where programs and configuration live. It is the costliest collector (0.5-1 s per
100,000 files with a warm cache), so it runs only when the selected rules read
``special_files`` (ON_DEMAND), and it stops at MAX_ENTRIES entries or its time budget.

Live, it does not descend into network or pseudo filesystems (NFS, CIFS, proc …) mounted inside
those trees. A list is ``None`` (unknown) when the walk stopped early and found nothing of its
kind: a partial walk cannot show there is none.
"""
from __future__ import absolute_import

import os
import stat
import time

NAME = "special_files"
ON_DEMAND = True

WALK = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr", "/etc", "/boot", "/opt", "/var")
# churn, caches and container layers: no system programs or configuration, many files
SKIP = frozenset(("/var/tmp", "/var/cache", "/var/lib/docker", "/var/lib/containers", "/var/lib/kubelet",
                  "/var/lib/lxc", "/var/lib/lxd", "/var/lib/snapd/snaps", "/proc", "/sys",
                  "/dev", "/run"))
NOT_WALKED_FS = frozenset(("nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph", "glusterfs",
                           "fuse.sshfs", "fuse.glusterfs", "lustre", "gpfs", "beegfs", "proc", "sysfs", "devtmpfs",
                           "devpts", "cgroup", "cgroup2", "securityfs", "debugfs", "tracefs", "configfs", "fusectl",
                           "binfmt_misc", "mqueue", "hugetlbfs", "pstore", "bpf", "autofs", "overlay", "squashfs"))
MAX_ENTRIES = 500000
MAX_LISTED = 500
DEFAULT_SECONDS = 15.0


def _skipped_mounts(ctx):
    """Live: mount points of network and pseudo filesystems (not walked)."""
    if not ctx.live:
        return set()
    text = ctx.fs.read_text("/proc/self/mounts", report=False) or ""
    out = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] in NOT_WALKED_FS and parts[1] != "/":
            out.add(parts[1].replace("\\040", " "))
    return out


def collect(ctx):
    fs = ctx.fs
    root = fs.root.rstrip("/") if fs.root != "/" else ""
    skip = set(SKIP) | _skipped_mounts(ctx)
    deadline = time.monotonic() + DEFAULT_SECONDS
    if ctx.deadline is not None:
        deadline = min(deadline, ctx.deadline - 0.5)
    suid, ww_files, ww_dirs = [], [], []
    counts = {"suid_sgid": 0, "world_writable_files": 0, "world_writable_dirs": 0}
    entries, stopped, walked = 0, None, []

    stack = []
    for top in WALK:
        host = root + top
        try:
            st = os.lstat(host)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and top not in skip:  # a symlink (/bin -> usr/bin): walked under /usr
            walked.append(top)
            stack.append(top)
    while stack and stopped is None:
        path = stack.pop()
        try:
            it = os.scandir(root + path)
        except OSError:
            continue  # unreadable directory: nothing to list (the walk is as complete as the OS allows)
        with it:
            for entry in it:
                entries += 1
                if entries >= MAX_ENTRIES:
                    stopped = "stopped after %d entries" % entries
                    break
                if entries % 4096 == 0 and time.monotonic() > deadline:
                    stopped = "stopped after %.0f s (%d entries)" % (DEFAULT_SECONDS, entries)
                    break
                target = path.rstrip("/") + "/" + entry.name
                try:
                    if entry.is_symlink():
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                mode = st.st_mode
                if stat.S_ISDIR(mode):
                    if mode & 0o002 and not mode & stat.S_ISVTX:
                        counts["world_writable_dirs"] += 1
                        if len(ww_dirs) < MAX_LISTED:
                            ww_dirs.append(target)
                    if target not in skip:
                        stack.append(target)
                    continue
                if not stat.S_ISREG(mode):
                    continue
                if mode & (stat.S_ISUID | stat.S_ISGID):
                    counts["suid_sgid"] += 1
                    if len(suid) < MAX_LISTED:
                        suid.append({"path": target, "name": entry.name, "mode": "%04o" % stat.S_IMODE(mode),
                                     "suid": bool(mode & stat.S_ISUID), "sgid": bool(mode & stat.S_ISGID),
                                     "uid": st.st_uid, "gid": st.st_gid})
                if mode & 0o002:
                    counts["world_writable_files"] += 1
                    if len(ww_files) < MAX_LISTED:
                        ww_files.append(target)
    complete = stopped is None
    if not complete:
        ctx.error(None, "special-file walk %s; lists that found nothing are unknown" % stopped)

    def listed(items):
        return sorted(items, key=lambda x: x["path"] if isinstance(x, dict) else x) if items or complete else None

    return {
        "walked": sorted(walked), "skipped": sorted(skip), "entries": entries, "complete": complete,
        "stopped": stopped, "counts": counts, "suid_sgid": listed(suid),
        "world_writable_files": listed(ww_files), "world_writable_dirs": listed(ww_dirs),
    }
