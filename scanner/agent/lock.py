"""One agent run at a time: an exclusive, non-blocking flock on <state_dir>/agent.lock.

The kernel drops the lock when the process dies (even by SIGKILL), so a
crashed run never blocks the next one. The file holds the pid of the holder
for the message shown to a second run.
"""
from __future__ import absolute_import

import errno
import fcntl
import os

from scanner.errors import XcscanError

BUSY_EXIT_CODE = 75  # EX_TEMPFAIL (sysexits.h): try again later


class AgentBusy(XcscanError):
    exit_code = BUSY_EXIT_CODE


class RunLock(object):
    def __init__(self, path):
        self.path = path
        self.fd = None

    def holder(self):
        try:
            with open(self.path) as fh:
                return fh.read().strip() or None
        except (IOError, OSError):
            return None

    def acquire(self):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise XcscanError("cannot open the lock file: %s" % (exc.strerror or exc), path=self.path,
                              hint="run as root or set state_dir in the agent configuration")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError) as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise AgentBusy("another `xcscan agent run` is in progress (pid %s); this one exits"
                                % (self.holder() or "?"), path=self.path,
                                hint="nothing to do: the running one scans and uploads")
            raise
        os.ftruncate(fd, 0)
        os.write(fd, ("%d\n" % os.getpid()).encode("ascii"))
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
