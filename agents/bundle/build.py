#!/usr/bin/env python3
"""Build the offline bundle: ONE file (xcscan-agent.pyz) to copy to an air-gapped host.

    python3 agents/bundle/build.py [--output dist/xcscan-agent.pyz] [--wheels DIR] [--offline]

The bundle is a zipapp holding scanner/ (without scanner/server/), rules/ and,
under _vendor/, the pure-Python dependencies pinned in agents/bundle/requirements.txt
(click and PyYAML's pure loader). Run it with the host's system Python
(3.7 or newer): `python3 xcscan-agent.pyz agent run`. cryptography
is used when the host has it and is not needed otherwise.

Wheels come from --wheels DIR (for a build machine without Internet access:
fill it once with `pip download`, see docs/agent.md) or are downloaded with pip
into ~/.cache/xcscan/bundle-wheels. The output is reproducible: same inputs,
same bytes (sorted entries, fixed timestamps).
"""
from __future__ import print_function

import argparse
import io
import os
import re
import subprocess
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
SKIP_DIRS = {"__pycache__", ".pytest_cache"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib", ".c", ".h", ".pyx")


def requirements(path=os.path.join(HERE, "requirements.txt")):
    out = []
    with open(path) as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, version = line.partition("==")
                if not version:
                    sys.exit("%s: pin every requirement with ==: %r" % (path, line))
                out.append((name.strip(), version.strip()))
    return out


def _norm(name):
    return re.sub(r"[-_.]+", "_", name).lower()


def find_wheel(directory, name, version):
    if not os.path.isdir(directory):
        return None
    for fn in sorted(os.listdir(directory)):
        if not fn.endswith(".whl"):
            continue
        parts = fn[:-4].split("-")
        if len(parts) >= 5 and _norm(parts[0]) == _norm(name) and parts[1] == version:
            return os.path.join(directory, fn)
    return None


def fetch_wheels(reqs, directory, offline):
    paths = []
    for name, version in reqs:
        path = find_wheel(directory, name, version)
        if path is None:
            if offline:
                sys.exit("missing wheel for %s==%s in %s (download it with pip download, or drop --offline)"
                         % (name, version, directory))
            if not os.path.isdir(directory):
                os.makedirs(directory)
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                   "--no-deps", "--only-binary=:all:", "--python-version", "3.7", "--implementation", "cp",
                   "--platform", "manylinux2014_x86_64", "--dest", directory, "%s==%s" % (name, version)]
            res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
            path = find_wheel(directory, name, version)
            if res.returncode != 0 or path is None:
                sys.exit("cannot download %s==%s:\n%s" % (name, version, res.stdout))
        paths.append(path)
    return paths


def _add(zf, arcname, data, mode=0o644):
    info = zipfile.ZipInfo(arcname, FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100000 | mode) << 16
    zf.writestr(info, data)


def _tree(src, prefix, skip_top=()):
    out = []
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS
                             and not (rel == "." and d in skip_top) and not d.endswith(".egg-info"))
        for fn in sorted(filenames):
            if fn.endswith(SKIP_SUFFIXES):
                continue
            full = os.path.join(dirpath, fn)
            arc = prefix + ("" if rel == "." else rel.replace(os.sep, "/") + "/") + fn
            out.append((arc, full))
    return out


def wheel_members(path):
    """(arcname-under-payload, bytes) of the pure-Python files and licences of a wheel."""
    out = []
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        dist = os.path.basename(path).split("-")[0]
        for n in sorted(names):
            if n.endswith("/") or n.endswith(SKIP_SUFFIXES):
                continue
            top = n.split("/", 1)[0]
            if top.endswith(".dist-info"):
                base = n.rsplit("/", 1)[-1]
                if base.upper().startswith(("LICENSE", "LICENCE", "COPYING")) or "/licenses/" in n:
                    out.append(("licenses/%s/%s" % (dist, base), zf.read(n)))
                continue
            if top == "_yaml":  # PyYAML's shim for the C extension, which is not bundled
                continue
            out.append((n, zf.read(n)))
    return out


def build(output, wheels_dir, offline=False, python="/usr/bin/env python3"):
    reqs = requirements()
    wheels = fetch_wheels(reqs, wheels_dir, offline)
    sys.path.insert(0, REPO)
    from scanner import __version__
    entries = []
    with open(os.path.join(HERE, "bootstrap.py"), "rb") as fh:
        entries.append(("_xcscan_bootstrap.py", fh.read()))
    entries.append(("__main__.py", b"from _xcscan_bootstrap import main\nmain()\n"))
    for arc, full in _tree(os.path.join(REPO, "scanner"), "payload/scanner/", skip_top=("server", "_rules")):
        with open(full, "rb") as fh:
            entries.append((arc, fh.read()))
    for arc, full in _tree(os.path.join(REPO, "rules"), "payload/scanner/_rules/"):
        with open(full, "rb") as fh:
            entries.append((arc, fh.read()))
    for wheel in wheels:
        for arc, data in wheel_members(wheel):
            entries.append(("payload/" + (arc if arc.startswith("licenses/") else "_vendor/" + arc), data))
    manifest = ["xcscan %s offline bundle" % __version__, "python >= 3.7", "bundled:"]
    manifest += ["  %s==%s" % r for r in reqs]
    manifest += ["used when present on the host: cryptography (else pure-Python Ed25519)"]
    entries.append(("payload/BUNDLE.txt", ("\n".join(manifest) + "\n").encode()))
    entries.sort()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for arc, data in entries:
            _add(zf, arc, data)
    out_dir = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    tmp = output + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(("#!%s\n" % python).encode())
        fh.write(buf.getvalue())
    os.chmod(tmp, 0o755)
    os.replace(tmp, output)
    return output


def main(argv=None):
    ap = argparse.ArgumentParser(description="Build the xcscan offline agent bundle (.pyz)")
    ap.add_argument("--output", "-o", default=os.path.join(REPO, "dist", "xcscan-agent.pyz"))
    ap.add_argument("--wheels", default=os.path.join(os.path.expanduser("~"), ".cache", "xcscan", "bundle-wheels"),
                    help="directory of pre-downloaded wheels (see requirements.txt)")
    ap.add_argument("--offline", action="store_true", help="never download; fail if a wheel is missing")
    ap.add_argument("--python", default="/usr/bin/env python3", help="interpreter for the #! line")
    args = ap.parse_args(argv)
    path = build(args.output, args.wheels, args.offline, args.python)
    print("%s (%d bytes)" % (path, os.path.getsize(path)))


if __name__ == "__main__":
    main()
