"""The on-disk spool: signed reports waiting for the aggregator's acknowledgement.

One file per report, named ``<nanoseconds>-<report_id>.xcr`` so that name
order is scan order. A file is a one-line JSON header (report id, host id,
timestamp, signature, body length) followed by the exact body bytes that were
signed. Files are written atomically: a temporary dot-file in the same
directory, fsync, rename, fsync of the directory. A crash leaves either the
previous state or the complete new file, never a partial ``.xcr``; leftover
temporary files are removed by the next run (which holds the lock).

Nothing leaves the spool except (a) after the server acknowledged it,
(b) by the size cap, oldest first, loudly, or (c) into ``rejected/`` when the
server refused it for good (bad signature, schema) or it is unreadable.
"""
from __future__ import absolute_import

import errno
import json
import os
import time

from scanner.agent import testhook
from scanner.errors import XcscanError

from scanner.fsutil import fsync_dir

SUFFIX = ".xcr"
TMP_PREFIX = ".tmp-"
REJECTED = "rejected"
HEADER_FORMAT = "xcscan-spool/1"


class Entry(object):
    def __init__(self, path, header, body):
        self.path = path
        self.name = os.path.basename(path)
        self.header = header
        self.body = body

    @property
    def report_id(self):
        return self.header["report_id"]

    @property
    def timestamp(self):
        return self.header["timestamp"]

    @property
    def signature(self):
        return self.header["signature"]

    @property
    def host_id(self):
        return self.header["host_id"]


class CorruptEntry(Exception):
    pass


def _fsync_dir(directory):
    fsync_dir(directory, strict=True)


class Spool(object):
    def __init__(self, directory, max_bytes=64 * 1024 * 1024, max_reports=500):
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_reports = max_reports

    def ensure(self):
        old = os.umask(0o077)
        try:
            for d in (self.directory, os.path.join(self.directory, REJECTED)):
                if not os.path.isdir(d):
                    os.makedirs(d, 0o700)
        except OSError as exc:
            raise XcscanError("cannot create the spool directory: %s" % (exc.strerror or exc),
                              path=self.directory, hint="run as root or set spool_dir in the agent configuration")
        finally:
            os.umask(old)

    # -- listing -------------------------------------------------------
    def names(self):
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return sorted(n for n in names if n.endswith(SUFFIX) and not n.startswith("."))

    def entries_info(self):
        """[(name, size)] oldest first."""
        out = []
        for name in self.names():
            try:
                out.append((name, os.path.getsize(os.path.join(self.directory, name))))
            except OSError:
                continue
        return out

    def depth(self):
        return len(self.names())

    def total_bytes(self):
        return sum(size for _, size in self.entries_info())

    def rejected_names(self):
        try:
            return sorted(n for n in os.listdir(os.path.join(self.directory, REJECTED)) if n.endswith(SUFFIX))
        except OSError:
            return []

    def clean_temporary(self):
        """Remove temporary files left by a killed run (the caller holds the run lock)."""
        removed = []
        try:
            names = os.listdir(self.directory)
        except OSError:
            return removed
        for name in names:
            if name.startswith(TMP_PREFIX):
                try:
                    os.unlink(os.path.join(self.directory, name))
                    removed.append(name)
                except OSError:
                    pass
        return removed

    # -- writing -------------------------------------------------------
    def write(self, report_id, host_id, timestamp, signature, body):
        """Store one signed report atomically; return its file name."""
        header = {"format": HEADER_FORMAT, "report_id": report_id, "host_id": host_id,
                  "timestamp": int(timestamp), "signature": signature, "length": len(body)}
        data = json.dumps(header, sort_keys=True).encode("utf-8") + b"\n"
        name = "%020d-%s%s" % (time.time_ns(), report_id, SUFFIX)
        tmp = os.path.join(self.directory, "%s%s.%d" % (TMP_PREFIX, name, os.getpid()))
        final = os.path.join(self.directory, name)
        fd = None
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            self._write_all(fd, data)
            half = len(body) // 2
            self._write_all(fd, body[:half])
            testhook.pause("spool-write")
            self._write_all(fd, body[half:])
            os.fsync(fd)
            os.close(fd)
            fd = None
            os.rename(tmp, final)
            _fsync_dir(self.directory)
        except (IOError, OSError) as exc:
            if fd is not None:
                os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise XcscanError(
                    "no space left on the spool filesystem: the new report (%d bytes) was not spooled; "
                    "the %d report(s) already in the spool are intact" % (len(data) + len(body), self.depth()),
                    path=self.directory, hint="free space there or lower spool_max_bytes")
            raise XcscanError("cannot write to the spool: %s" % (exc.strerror or exc), path=self.directory,
                              hint="check permissions of spool_dir; the existing spool is intact")
        return name

    @staticmethod
    def _write_all(fd, data):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    def enforce_cap(self, keep=None):
        """Evict oldest reports while over the caps; never evict ``keep``. Return evicted names."""
        info = self.entries_info()
        total = sum(size for _, size in info)
        evicted = []
        for name, size in info:
            if total <= self.max_bytes and len(info) - len(evicted) <= self.max_reports:
                break
            if name == keep:
                continue
            try:
                os.unlink(os.path.join(self.directory, name))
            except OSError:
                continue
            evicted.append(name)
            total -= size
        if evicted:
            _fsync_dir(self.directory)
        return evicted

    # -- reading and removing -----------------------------------------
    def read(self, name):
        path = os.path.join(self.directory, name)
        with open(path, "rb") as fh:
            raw = fh.read()
        line, sep, body = raw.partition(b"\n")
        if not sep:
            raise CorruptEntry("no header line")
        try:
            header = json.loads(line.decode("utf-8"))
        except ValueError:
            raise CorruptEntry("header is not JSON")
        if not isinstance(header, dict) or header.get("format") != HEADER_FORMAT:
            raise CorruptEntry("not an xcscan spool file")
        for key in ("report_id", "host_id", "timestamp", "signature", "length"):
            if key not in header:
                raise CorruptEntry("header lacks %r" % key)
        if header["length"] != len(body):
            raise CorruptEntry("body is %d bytes, header says %d (truncated file?)" % (len(body), header["length"]))
        return Entry(path, header, body)

    def delete(self, name):
        os.unlink(os.path.join(self.directory, name))
        _fsync_dir(self.directory)

    def reject(self, name, reason):
        """Move a report the server will never accept to rejected/ with the reason beside it."""
        src = os.path.join(self.directory, name)
        dest_dir = os.path.join(self.directory, REJECTED)
        with open(os.path.join(dest_dir, name + ".reason"), "w") as fh:
            fh.write(reason + "\n")
        os.rename(src, os.path.join(dest_dir, name))
        _fsync_dir(dest_dir)
        _fsync_dir(self.directory)
