"""Entry point of the xcscan offline bundle (a zipapp): run `xcscan` from one file.

The bundle's code reads data files (rules, locale) with ordinary file paths,
so on first start the payload is extracted once into a private cache
directory named after the bundle's SHA-256 and reused afterwards:
$XCSCAN_BUNDLE_CACHE, else /var/lib/xcscan/bundle as root, else
~/.cache/xcscan/bundle. The cache directory must belong to the running user
and not be writable by group or others (no one else can plant code there).
The bundled pure-Python dependencies live in _vendor/ and take precedence
over the host's packages, with one exception: the host's PyYAML is used when it
is recent enough (>= 5.1) and has the libyaml C loader, which parses the rules
several times faster than the bundled pure-Python loader.
Python 3.7+, standard library only. A run after the first finds its extraction through a stamp
named after the bundle file's device, inode, size and mtime, so it neither hashes the bundle nor
imports zipfile, shutil or hashlib (start-up is paid on every cron run).
"""
import os
import stat
import sys

PAYLOAD = "payload/"


def _cache_root():
    env = os.environ.get("XCSCAN_BUNDLE_CACHE")
    if env:
        return env
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return "/var/lib/xcscan/bundle"
    return os.path.join(os.path.expanduser("~"), ".cache", "xcscan", "bundle")


def _check_private(path):
    st = os.stat(path)
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        sys.exit("xcscan: error: %s: bundle cache is owned by another user; remove it or set "
                 "XCSCAN_BUNDLE_CACHE" % path)
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        sys.exit("xcscan: error: %s: bundle cache is writable by group or others; run chmod 700 on it" % path)


def _stamp(root, archive):
    st = os.stat(archive)
    return os.path.join(root, "by-stat", "%d-%d-%d-%d" % (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))


def _known(root, archive):
    """The extraction of this very bundle file when a stamp says which it is, else None."""
    try:
        with open(_stamp(root, archive)) as fh:
            digest = fh.read().strip()
    except (IOError, OSError):
        return None
    if len(digest) != 16 or not all(c in "0123456789abcdef" for c in digest):
        return None
    target = os.path.join(root, digest)
    return target if os.path.isfile(os.path.join(target, ".complete")) else None


def _remember(root, archive, digest):
    try:
        stamp = _stamp(root, archive)
        if not os.path.isdir(os.path.dirname(stamp)):
            os.mkdir(os.path.dirname(stamp), 0o700)
        tmp = "%s.tmp%d" % (stamp, os.getpid())
        with open(tmp, "w") as fh:
            fh.write(digest + "\n")
        os.rename(tmp, stamp)
    except (IOError, OSError):
        pass  # the next run hashes the bundle again


def extract(archive):
    root = _cache_root()
    old = os.umask(0o077)
    try:
        if not os.path.isdir(root):
            os.makedirs(root, 0o700)
    finally:
        os.umask(old)
    _check_private(root)
    known = _known(root, archive)
    if known:
        return known
    import hashlib
    import shutil
    import zipfile
    with open(archive, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()[:16]
    target = os.path.join(root, digest)
    if os.path.isfile(os.path.join(target, ".complete")):
        _remember(root, archive, digest)
        return target
    tmp = "%s.tmp%d" % (target, os.getpid())
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if not info.filename.startswith(PAYLOAD) or info.filename.endswith("/"):
                continue
            rel = info.filename[len(PAYLOAD):]
            if rel.startswith("/") or ".." in rel.split("/"):
                continue
            dest = os.path.join(tmp, *rel.split("/"))
            if not os.path.isdir(os.path.dirname(dest)):
                os.makedirs(os.path.dirname(dest))
            with zf.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
    with open(os.path.join(tmp, ".complete"), "w") as fh:
        fh.write(digest + "\n")
    try:
        os.rename(tmp, target)
    except OSError:  # another process extracted the same bundle first
        shutil.rmtree(tmp, ignore_errors=True)
    _remember(root, archive, digest)
    # Older extractions of other bundle versions are left for the operator; they are small.
    return target


def _system_yaml_is_better():
    """True when the host's PyYAML (>= 5.1, with libyaml) is importable; else forget it."""
    try:
        import yaml
        version = tuple(int(x) for x in yaml.__version__.split(".")[:2])
        if version >= (5, 1) and hasattr(yaml, "CSafeLoader"):
            return True
    except Exception:  # not installed, or broken
        pass
    for name in list(sys.modules):
        if name.split(".")[0] in ("yaml", "_yaml"):
            del sys.modules[name]
    return False


def setup_path(target):
    """scanner/ first, then the vendored dependencies (before the host's site-packages)."""
    sys.path.insert(0, target)
    system_yaml = _system_yaml_is_better()
    sys.path.insert(1, os.path.join(target, "_vendor"))
    return system_yaml


def main():
    archive = os.path.dirname(os.path.abspath(__file__))  # <bundle>.pyz/_xcscan_bootstrap.py
    if not os.path.isfile(archive):  # run from an unpacked directory, not the .pyz
        sys.exit("xcscan: error: run the bundle as `python3 xcscan-agent.pyz ...`")
    setup_path(extract(archive))
    os.environ.setdefault("XCSCAN_BUNDLE", archive)
    from scanner.launch import main as cli_main
    cli_main()


if __name__ == "__main__":
    main()
