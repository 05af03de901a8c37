"""Installed packages: the dpkg status file, or the RPM database.

* dpkg: /var/lib/dpkg/status (entries whose Status is "install ok installed").
* RPM, live: ``rpm -qa --qf``; when that fails, and always for an offline
  root, the database files are read directly (see :mod:`scanner.collect._rpmdb`):
  rpmdb.sqlite, ndb Packages.db or Berkeley DB Packages, in /var/lib/rpm or
  /usr/lib/sysimage/rpm.

Result: {"manager": "dpkg"|"rpm"|None, "items": [{"name","version","arch"}],
"source": path or command}. None (with a facts.errors entry) when a package
database exists but cannot be read.
"""
from __future__ import absolute_import

NAME = "packages"
LIVE_ONLY = False

DPKG_STATUS = "/var/lib/dpkg/status"
RPM_DIRS = ("/var/lib/rpm", "/usr/lib/sysimage/rpm")
RPM_FILES = (("rpmdb.sqlite", "sqlite"), ("Packages.db", "ndb"), ("Packages", "bdb"))
MAX_DB_BYTES = 512 * 1024 * 1024
RPM_QF = "%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\n"


def _dpkg_value(stanza, at, skip, name):
    """The value (decoded, stripped) of the field ``name`` (b"Package:") of ``stanza``: of the line
    found at ``at`` by ``stanza.rfind(b"\\n" + name)`` (the last one: a repeated field's last line
    wins), else of the stanza's first line if it is that field, else None. ``skip`` is len(name) + 1.
    A continuation line starts with a blank, so it is never taken for a field."""
    if at >= 0:
        begin = at + skip
    elif stanza.startswith(name):
        begin = skip - 1
    else:
        return None
    stop = stanza.find(b"\n", begin)
    return (stanza[begin:] if stop < 0 else stanza[begin:stop]).decode("utf-8", "replace").strip()


def parse_dpkg_status(data):
    """Installed entries of a dpkg status file (bytes, or text as read): the stanzas (separated by a
    blank line) whose Status says installed.

    The four fields read (of ~20 a stanza) are found in the undecoded bytes and only their values
    are decoded (UTF-8, invalid bytes replaced, as the whole file would be: lines are cut at ASCII
    newlines). A status file of ~900 packages is 800 KB with some non-ASCII descriptions (1.6-3.2 MB
    once decoded): decoding it and testing every line of every stanza cost ~54 M instructions a parse,
    this ~19 M.
    """
    if not isinstance(data, bytes):
        data = data.encode("utf-8", "surrogatepass")
    items = []
    for stanza in data.split(b"\n\n"):
        name = _dpkg_value(stanza, stanza.rfind(b"\nPackage:"), 9, b"Package:")
        if not name:
            continue
        status = _dpkg_value(stanza, stanza.rfind(b"\nStatus:"), 8, b"Status:") or ""
        if status.endswith(" installed") and status.split(" ")[0] in ("install", "hold"):
            items.append({"name": name,
                          "version": _dpkg_value(stanza, stanza.rfind(b"\nVersion:"), 9, b"Version:"),
                          "arch": _dpkg_value(stanza, stanza.rfind(b"\nArchitecture:"), 14, b"Architecture:")})
    return items


def dpkg_installed(ctx, report=True):
    """The installed entries of the target's dpkg status file, or None when it cannot be read (recorded
    in facts.errors when ``report``). Read each time (the file may change), parsed once per scan: the
    PAM collector (libpwquality's version) and the packages collector both ask."""
    data = ctx.fs.read_bytes(DPKG_STATUS, max_bytes=64 * 1024 * 1024, report=report)
    if data is None:
        return None
    memo = getattr(ctx, "_dpkg_status", None)
    if memo is None or memo[0] != data:
        memo = (data, parse_dpkg_status_cached(data))
        ctx._dpkg_status = memo
    return list(memo[1])


def parse_dpkg_status_cached(data):
    """``parse_dpkg_status(data)``, kept in the user cache directory (scanner/jsoncache.py) under a digest
    of the bytes and of this parser's file: a status file that did not change since the last scan is not
    parsed again (~19 M instructions, ~2% of a scan of this host; the digest and reading the kept entries
    ~3 M). The file is still read every time, so any change -- a package installed, removed, or an
    offline root with other contents -- is a new digest and parsed; one entry is kept (the last status
    file parsed). A missing, stale, corrupt or untrusted cache file is the same as none."""
    import hashlib
    from scanner import jsoncache
    code = jsoncache.fingerprint([_source_file()], "dpkg-status-1")
    if code is None:
        return parse_dpkg_status(data)
    fp = "%s|%s" % (hashlib.sha1(data).hexdigest(), code)
    kept = jsoncache.read("dpkg", DPKG_STATUS, fp)
    if isinstance(kept, list):
        return kept
    items = parse_dpkg_status(data)
    jsoncache.write("dpkg", DPKG_STATUS, fp, items)
    return items


def _source_file():
    import os
    path = __file__
    return path[:-1] if path.endswith((".pyc", ".pyo")) and os.path.exists(path[:-1]) else path


def find_rpmdb(fs):
    """(target path, format) of the first rpm database file present, or (None, None)."""
    for directory in RPM_DIRS:
        for name, fmt in RPM_FILES:
            path = directory + "/" + name
            if fs.isfile(path):
                return path, fmt
    return None, None


def read_rpmdb(ctx, path, fmt):
    from scanner.collect import _rpmdb
    fs = ctx.fs
    try:
        if fmt == "sqlite":
            host = fs.host_path(path)
            if host is None:
                raise _rpmdb.RpmDbError("path cannot be resolved inside the root")
            return _rpmdb.read_sqlite(host)
        data = fs.read_bytes(path, max_bytes=MAX_DB_BYTES)
        if data is None:
            return None
        return _rpmdb.read_ndb(data) if fmt == "ndb" else _rpmdb.read_bdb(data)
    except _rpmdb.RpmDbError as exc:
        ctx.error(path, "rpm database (%s) could not be read: %s" % (fmt, exc))
        return None


def rpm_live(ctx, dbpath=None):
    argv = ["rpm", "-qa", "--qf", RPM_QF]
    if dbpath:
        argv[1:1] = ["--dbpath", dbpath]
    out = ctx.run(argv, timeout=30)
    if out is None:
        return None
    items = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] != "gpg-pubkey":
            items.append({"name": parts[0], "version": parts[1], "arch": parts[2]})
    return items


def collect(ctx):
    fs = ctx.fs
    items = dpkg_installed(ctx)
    ctx._dpkg_status = None  # nothing else reads it: 800 KB less for the rest of the scan
    if items is not None:
        if items:
            items.sort(key=lambda i: i["name"])
            return {"manager": "dpkg", "items": items, "source": DPKG_STATUS}
    path, fmt = find_rpmdb(fs)
    if path is None:
        if items is not None:
            return {"manager": "dpkg", "items": [], "source": DPKG_STATUS}
        return {"manager": None, "items": [], "source": None}
    items, source = None, path
    if ctx.live:
        items = rpm_live(ctx)
        source = "rpm -qa"
    if items is None:
        items = read_rpmdb(ctx, path, fmt)
        source = path
    if items is None:
        return None
    items = [i for i in items if i["name"] != "gpg-pubkey"]
    items.sort(key=lambda i: i["name"])
    return {"manager": "rpm", "items": items, "source": source, "format": fmt}
