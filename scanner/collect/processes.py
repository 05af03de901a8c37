"""Running processes (live only): pid, ppid, name, exe, cmdline, user.

Read straight from /proc (no psutil objects): one stat of the /proc/<pid>
directory for the owner, /proc/<pid>/stat for the name and parent,
/proc/<pid>/cmdline and the exe link. Kernel threads (empty command line)
are left out. A process that exits while being read is skipped silently; an
exe link that cannot be read (another user's process when not root) is None.
Secrets passed on command lines (``--password=..``, ``-Dx.password=..``,
``user:pass@`` in URLs, ``mysql -pX``) are masked before they enter the facts.
"""
from __future__ import absolute_import

import os
import re

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


# Command lines end up in reports sent to the aggregator: secrets given as arguments are masked.
_SECRET_WORD = r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|credentials?|api[-_]?key|access[-_]?key|private[-_]?key)"
_SECRET_KV = re.compile(r"(?i)^(-{0,2}[\w.\-]*?" + _SECRET_WORD + r"[\w.\-]*=)(.+)$")
_SECRET_OPT = re.compile(r"(?i)^-{1,2}[\w.\-]*?" + _SECRET_WORD + r"$")
_URL_CRED = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:)([^/\s@]+)(@)")
_MYSQL_CLIENTS = ("mysql", "mysqldump", "mysqladmin", "mariadb", "mariadb-dump", "mariadb-admin", "mysqlsh")
MASK = "***"


def redact(argv):
    """argv with secret values masked (key=value, --password VALUE, user:pass@ in URLs, mysql -pX)."""
    out = []
    mask_next = False
    prog = os.path.basename(argv[0]) if argv else ""
    for i, arg in enumerate(argv):
        if mask_next:
            out.append(MASK)
            mask_next = False
            continue
        if i > 0:
            m = _SECRET_KV.match(arg)
            if m:
                arg = m.group(1) + MASK
            elif _SECRET_OPT.match(arg):
                mask_next = True
            elif prog in _MYSQL_CLIENTS and arg.startswith("-p") and len(arg) > 2:
                arg = "-p" + MASK
        if "://" in arg:  # no URL, nothing for _URL_CRED to find (long JVM class paths are common)
            arg = _URL_CRED.sub(lambda m: m.group(1) + MASK + m.group(3), arg)
        out.append(arg)
    return out


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
    cmdline = redact(raw_cmd.rstrip(b"\0").decode("utf-8", "replace").split("\0"))
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
    ctx.processes_seen = out  # db_config places database servers from the same snapshot
    if os.geteuid() != 0:
        if any(p["exe"] is None for p in out):
            ctx.error(PROC + "/*/exe", "executables of other users' processes are unreadable "
                      "(run as root to read them)")
        mounts = _read(PROC + "/self/mountinfo", 256 * 1024) or b""
        for line in mounts.decode("utf-8", "replace").splitlines():
            fields = line.split(" - ")
            if len(fields) == 2 and fields[1].startswith("proc ") and "hidepid=" in fields[1] \
                    and "hidepid=0" not in fields[1]:
                ctx.error(PROC, "/proc is mounted with hidepid: other users' processes are hidden "
                          "(run as root to see them)")
                break
    return out
