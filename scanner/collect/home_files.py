"""Credential and trust files in the home directories of accounts that can log in.

For root and every account with an interactive shell: ~/.rhosts, ~/.shosts
(r-command trust, honoured by hostbased SSH too), ~/.netrc, ~/.pgpass and
~/.my.cnf (clear-text passwords); plus the system-wide /etc/hosts.equiv and
/etc/shosts.equiv (user "*"). Only these names are looked at -- one stat
per file, no directory walk -- and home directories outside the root's /home,
/root or /var are skipped when they are "/" (service accounts).
"""
from __future__ import absolute_import

import posixpath

from scanner.collect.baseline_util import account_names, mode_digits

NAME = "home_files"
LIVE_ONLY = False

NAMES = (".rhosts", ".shosts", ".netrc", ".pgpass", ".my.cnf")
SYSTEM_TRUST_FILES = ("/etc/hosts.equiv", "/etc/shosts.equiv")
NON_INTERACTIVE = ("nologin", "false", "sync", "shutdown", "halt")
MAX_USERS = 500


def collect(ctx):
    fs = ctx.fs
    text = fs.read_text("/etc/passwd")
    if text is None:
        return None
    users, groups = account_names(fs)
    homes = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) < 7 or line.startswith("#") or line[:1] in "+-":
            continue
        shell = posixpath.basename(parts[6].strip())
        if parts[2] != "0" and (not shell or shell in NON_INTERACTIVE):
            continue
        home = parts[5].strip()
        if home in ("", "/") or not home.startswith("/"):
            continue
        homes.append((parts[0], home))
        if len(homes) >= MAX_USERS:
            ctx.error("/etc/passwd", "more than %d login accounts; only the first were checked" % MAX_USERS)
            break
    files = []
    for user, home in homes:
        for name in NAMES:
            path = posixpath.join(home, name)
            st = fs.lstat(path)
            if st is None:
                continue
            special, u, g, o = mode_digits(st.st_mode)
            files.append({"user": user, "name": name, "path": path, "mode": "%04o" % (st.st_mode & 0o7777),
                          "group": g, "other": o, "owner": users.get(st.st_uid, str(st.st_uid))})
    # system-wide r-command trust: rlogind/rshd (ruserok) and sshd's HostbasedAuthentication read them
    for path in SYSTEM_TRUST_FILES:
        st = fs.lstat(path)
        if st is None:
            continue
        special, u, g, o = mode_digits(st.st_mode)
        files.append({"user": "*", "name": posixpath.basename(path), "path": path,
                      "mode": "%04o" % (st.st_mode & 0o7777), "group": g, "other": o,
                      "owner": users.get(st.st_uid, str(st.st_uid))})
    return {"homes_checked": len(homes), "files": files}
