"""Running processes (live only): pid, ppid, name, exe, cmdline, user.

Read straight from /proc (no psutil objects): one stat of the /proc/<pid>
directory for the owner, /proc/<pid>/stat for the name and parent,
/proc/<pid>/cmdline and the exe link. Kernel threads (empty command line)
are left out. A process that exits while being read is skipped silently; an
exe link that cannot be read (another user's process when not root) is None.
"""
from __future__ import absolute_import

import os

NAME = "processes"
LIVE_ONLY = True

PROC = "/proc"
MAX_CMDLINE = 32 * 1024


def _read(path, limit=MAX_CMDLINE):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def _user_lookup():
    import pwd
    cache = {}

    def name(uid):
        if uid not in cache:
            try:
                cache[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                cache[uid] = str(uid)
        return cache[uid]
    return name


def read_process(pid, user_name, proc=PROC):
    """One process record or None when it vanished or is a kernel thread."""
    base = "%s/%s" % (proc, pid)
    try:
        uid = os.stat(base).st_uid
    except OSError:
        return None
    raw_cmd = _read(base + "/cmdline")
    if not raw_cmd:
        return None  # kernel thread or zombie
    stat = _read(base + "/stat", 4096)
    if not stat:
        return None
    stat = stat.decode("utf-8", "replace")
    lpar, rpar = stat.find("("), stat.rfind(")")
    name = stat[lpar + 1:rpar]
    rest = stat[rpar + 2:].split(" ", 3)
    try:
        ppid = int(rest[1])
    except (IndexError, ValueError):
        ppid = None
    try:
        exe = os.readlink(base + "/exe")
        if exe.endswith(" (deleted)"):
            exe = exe[:-10]
    except OSError:
        exe = None
    cmdline = raw_cmd.rstrip(b"\0").decode("utf-8", "replace").split("\0")
    return {"pid": int(pid), "ppid": ppid, "name": name, "exe": exe, "cmdline": cmdline,
            "user": user_name(uid)}


def collect(ctx):
    try:
        entries = os.listdir(PROC)
    except OSError as exc:
        ctx.error(PROC, "cannot list processes: %s" % (exc.strerror or exc))
        return None
    user_name = _user_lookup()
    out = []
    for entry in entries:
        if not entry.isdigit():
            continue
        rec = read_process(entry, user_name)
        if rec is not None:
            out.append(rec)
    out.sort(key=lambda p: p["pid"])
    return out
