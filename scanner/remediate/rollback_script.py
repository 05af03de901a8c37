"""rollback.sh of an apply run: restores the backed-up files with /bin/sh alone (no Python)."""
from __future__ import absolute_import

import os

HEADER = """#!/bin/sh
# Rollback of an `xcscan fix --apply` run: restores every file it changed, newest change first.
# Run it as root from anywhere: sh %(dir)s/rollback.sh
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=%(root)s
restore() { # PATH BACKUP MODE UID GID
    tmp="$ROOT$1.xcscan-rollback.$$"
    cp "$HERE/$2" "$tmp" && chown "$4:$5" "$tmp" && chmod "$3" "$tmp" && mv -f "$tmp" "$ROOT$1"
}
"""


def q(text):
    """POSIX single-quoted word."""
    return "'" + str(text).replace("'", "'\\''") + "'"


def write_rollback_script(run):
    lines = [HEADER % {"dir": run.dir, "root": q("" if run.root == "/" else run.root)}]
    for entry in reversed(run.entries):
        if entry["status"] != "done":
            continue
        before, path = entry["before"], q(entry["path"])
        kind = before["kind"]
        if kind == "file":
            lines.append("restore %s %s %s %d %d\n" % (path, q(entry["backup"]), before["mode"], before["uid"],
                                                     before["gid"]))
        elif kind is None:
            lines.append("if [ -d \"$ROOT\"%s ] && [ ! -L \"$ROOT\"%s ]; then rmdir \"$ROOT\"%s; "
                         "else rm -f \"$ROOT\"%s; fi\n" % (path, path, path, path))
        elif kind == "dir":
            lines.append("chown %d:%d \"$ROOT\"%s && chmod %s \"$ROOT\"%s\n" % (
                before["uid"], before["gid"], path, before["mode"], path))
        elif kind == "link":
            lines.append("ln -sfn %s \"$ROOT\"%s\n" % (q(before["target"]), path))
    lines.append("echo 'xcscan: rollback done'\n")
    path = os.path.join(run.dir, "rollback.sh")
    with open(path, "w") as fh:
        fh.write("".join(lines))
    os.chmod(path, 0o700)
    return path
