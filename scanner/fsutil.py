"""Small durability helpers shared by the spool, key files and report outputs."""
from __future__ import absolute_import

import os


def fsync_dir(directory, strict=False):
    """fsync a directory so a rename inside it survives a crash.

    With ``strict`` an error propagates (the spool must know); otherwise it is ignored
    (some filesystems refuse fsync on directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        if strict:
            raise
        return
    try:
        os.fsync(fd)
    except OSError:
        if strict:
            raise
    finally:
        os.close(fd)
