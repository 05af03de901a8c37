"""Well-known install paths, config files and version files of software products.

The paths come from the catalog (``match.paths``, ``match.config_files`` and
``match.version_files`` of the software categories), so adding a product is a
data change. Each pattern is probed by exact path or by a glob whose
wildcards expand one directory listing per path component -- never a
recursive walk. Version files also contribute their first few KB of text.
"""
from __future__ import absolute_import

from scanner.globmatch import fnmatchcase  # fnmatch's, without a regex per pattern

NAME = "software_paths"
LIVE_ONLY = False

SOFTWARE_CATEGORIES = ("database", "middleware", "message-queue", "web-server", "cache", "crypto")
MAX_MATCHES_PER_PATTERN = 64
MAX_CANDIDATES = 4096  # intermediate expansion (e.g. every /home/* entry) is bounded too
VERSION_HEAD_BYTES = 4096


def _has_magic(part):
    return any(ch in part for ch in "*?[")


class _Probe(object):
    """listdir / isdir / exists of the target, each path asked once per collection: the catalog's ~190
    patterns share their parents (/opt was listed 39 times and stat-ed 90 times per scan)."""

    def __init__(self, fs):
        self.fs = fs
        self._memo = {}

    def _ask(self, what, path):
        key = (what, path)
        if key not in self._memo:
            self._memo[key] = getattr(self.fs, what)(path)
        return self._memo[key]

    def listdir(self, path):
        return self._ask("listdir", path)

    def isdir(self, path):
        return self._ask("isdir", path)

    def exists(self, path):
        return self._ask("exists", path)


def expand(fs, pattern, limit=MAX_MATCHES_PER_PATTERN):
    """Target paths matching ``pattern``; every wildcard component costs one listdir per parent."""
    parts = [p for p in pattern.split("/") if p]
    current = ["/"]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        nxt = []
        for base in current:
            prefix = base.rstrip("/") + "/"
            if _has_magic(part):
                for name in fs.listdir(base) or []:
                    if fnmatchcase(name, part) and not name.startswith("."):
                        nxt.append(prefix + name)
            else:
                cand = prefix + part
                if last or fs.isdir(cand):
                    nxt.append(cand)
            if len(nxt) >= MAX_CANDIDATES:
                break
        current = nxt[:MAX_CANDIDATES]
        if not current:
            return []
    return [p for p in current if fs.exists(p)][:limit]


def patterns_from_catalog(catalog):
    """(paths, config_files, version_files) patterns of the software products, de-duplicated."""
    paths, configs, versions = [], [], []
    for product in catalog.products.values():
        if product["category"] not in SOFTWARE_CATEGORIES:
            continue
        match = product.get("match") or {}
        for p in match.get("paths") or []:
            if p not in paths:
                paths.append(p)
        for p in match.get("config_files") or []:
            if p not in configs:
                configs.append(p)
        for v in match.get("version_files") or []:
            if v.get("path") and v["path"] not in versions:
                versions.append(v["path"])
    return paths, configs, versions


def collect(ctx, catalog=None):
    from scanner.catalog import default_catalog
    fs = ctx.fs
    probe = _Probe(fs)
    catalog = catalog or default_catalog()
    paths, configs, versions = patterns_from_catalog(catalog)
    found, seen = [], set()
    for kind, patterns in (("path", paths), ("config", configs), ("version", versions)):
        for pattern in patterns:
            for path in expand(probe, pattern):
                key = (kind, path)
                if key in seen:
                    continue
                seen.add(key)
                entry = {"path": path, "kind": kind, "type": "dir" if probe.isdir(path) else "file"}
                link = fs.readlink(path)
                if link is not None:
                    entry["link"] = link  # /usr/sbin/mysqld -> mariadbd is MariaDB, not MySQL
                if kind == "version" and entry["type"] == "file":
                    entry["head"] = fs.read_text(path, max_bytes=VERSION_HEAD_BYTES, report=False)
                    if entry["head"] is None:
                        continue
                found.append(entry)
    return {"probed": len(paths) + len(configs) + len(versions), "found": found}
