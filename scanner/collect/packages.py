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


_DPKG_FIELDS = ("Package:", "Status:", "Version:", "Architecture:")


def parse_dpkg_status(text):
    items = []
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.split("\n"):
            if line.startswith(_DPKG_FIELDS):  # the only fields read (continuation lines start with a blank)
                key, _sep, value = line.partition(":")
                fields[key] = value.strip()
        if not fields.get("Package"):
            continue
        status = fields.get("Status", "")
        if not status.endswith(" installed") or status.split(" ")[0] not in ("install", "hold"):
            continue
        items.append({"name": fields["Package"], "version": fields.get("Version"),
                      "arch": fields.get("Architecture")})
    return items


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
    text = fs.read_text(DPKG_STATUS, max_bytes=64 * 1024 * 1024)
    if text is not None:
        items = parse_dpkg_status(text)
        if items:
            items.sort(key=lambda i: i["name"])
            return {"manager": "dpkg", "items": items, "source": DPKG_STATUS}
    path, fmt = find_rpmdb(fs)
    if path is None:
        if text is not None:
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
