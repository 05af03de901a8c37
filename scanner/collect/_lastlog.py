"""Last logins from the system's login records, for the accounts collector.

* ``/var/log/lastlog`` (shadow-utils, every distribution before util-linux 2.40): a sparse file
  of fixed records indexed by UID, ``struct lastlog {int32 ll_time; char ll_line[32];
  char ll_host[256];}`` (292 bytes, native byte order); ``ll_time == 0`` means never.
* ``/var/lib/lastlog/lastlog2.db`` (util-linux 2.40+ lastlog2, SQLite): table ``Lastlog2``
  (Name, Time, TTY, RemoteHost, Service).

Only the records of the accounts asked for are read (a seek per UID), so a lastlog file
gigabytes long in apparent size costs a few reads.
"""
from __future__ import absolute_import

import struct

LASTLOG = "/var/log/lastlog"
LASTLOG2 = "/var/lib/lastlog/lastlog2.db"
RECORD = 292
_TIME = struct.Struct("=i")


def read_lastlog(fs, uids):
    """{uid: unix seconds or 0 (never)} from /var/log/lastlog, or None when there is none."""
    path = fs.host_path(LASTLOG)
    if path is None or not fs.isfile(LASTLOG):
        return None
    out = {}
    try:
        with open(path, "rb") as fh:
            for uid in uids:
                if uid < 0 or uid > 2 ** 31 // RECORD:
                    continue
                fh.seek(uid * RECORD)
                raw = fh.read(_TIME.size)
                out[uid] = _TIME.unpack(raw)[0] if len(raw) == _TIME.size else 0
    except (IOError, OSError):
        return None
    return out


def read_lastlog2(fs, names):
    """{name: unix seconds} from lastlog2's SQLite database (absent names never logged in)."""
    path = fs.host_path(LASTLOG2)
    if path is None or not fs.isfile(LASTLOG2):
        return None
    try:
        import sqlite3
    except ImportError:  # a Python built without sqlite3
        return None
    try:
        conn = sqlite3.connect("file:%s?mode=ro&immutable=1" % path, uri=True)
        try:
            rows = conn.execute("SELECT Name, Time FROM Lastlog2").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    wanted = set(names)
    return dict((name, int(when or 0)) for name, when in rows if name in wanted)


def last_logins(fs, users):
    """({name: unix seconds, 0 = never}, source path) or (None, None) when no record exists."""
    by_name = read_lastlog2(fs, [u["name"] for u in users])
    if by_name is not None:
        return dict((u["name"], by_name.get(u["name"], 0)) for u in users), LASTLOG2
    by_uid = read_lastlog(fs, sorted(set(u["uid"] for u in users)))
    if by_uid is not None:
        return dict((u["name"], by_uid.get(u["uid"], 0)) for u in users), LASTLOG
    return None, None
