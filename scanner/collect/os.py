"""Operating system: /etc/os-release first, then /usr/lib/os-release, then vendor release files.

Facts (shared contract): id, name, version_id, version, pretty_name, id_like, family, kernel,
arch, platform_id, codename, release_files, evidence -- plus variant_id, edition, kernels
(offline: kernels installed in /boot or /lib/modules), os_release (all keys) and lsb.
"""
from __future__ import absolute_import

import os as _os
import re

NAME = "os"
LIVE_ONLY = False

OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")
# Vendor-specific files first: several domestic distros keep a CentOS /etc/redhat-release.
RELEASE_FILES = (
    "/etc/kylin-release", "/etc/neokylin-release", "/etc/openEuler-release", "/etc/euleros-release",
    "/etc/hce-release", "/etc/anolis-release", "/etc/alinux-release", "/etc/opencloudos-release",
    "/etc/tencentos-release", "/etc/bclinux-release", "/etc/kylinsec-release", "/etc/uos-release",
    "/etc/UnionTech-release", "/etc/deepin-version", "/etc/openkylin-release", "/etc/rocky-release",
    "/etc/almalinux-release", "/etc/oracle-release", "/etc/centos-release", "/etc/system-release",
    "/etc/redhat-release", "/etc/SuSE-release", "/etc/debian_version",
)
FAMILY_BY_LIKE = (("rhel", "rhel"), ("fedora", "rhel"), ("centos", "rhel"), ("anolis", "rhel"),
                  ("openeuler", "rhel"), ("opencloudos", "rhel"), ("tencentos", "rhel"),
                  ("debian", "debian"), ("ubuntu", "debian"), ("openkylin", "debian"), ("deepin", "debian"),
                  ("suse", "suse"), ("sles", "suse"), ("opensuse", "suse"))
FAMILY_BY_ID = {
    "rhel": "rhel", "centos": "rhel", "rocky": "rhel", "almalinux": "rhel", "ol": "rhel", "fedora": "rhel",
    "openeuler": "rhel", "euleros": "rhel", "hce": "rhel", "anolis": "rhel", "alinux": "rhel",
    "opencloudos": "rhel", "tencentos": "rhel", "bclinux": "rhel", "kylinsec": "rhel", "neokylin": "rhel",
    "amzn": "rhel", "circle": "rhel", "loongnix-server": "rhel",
    "debian": "debian", "ubuntu": "debian", "deepin": "debian", "openkylin": "debian", "linuxmint": "debian",
    "raspbian": "debian", "kali": "debian", "loongnix": "debian",
    "sles": "suse", "sled": "suse", "opensuse": "suse", "opensuse-leap": "suse", "opensuse-tumbleweed": "suse",
}
# uos editions (os-release PLATFORM_ID / VERSION_CODENAME)
UOS_EDITIONS = (("uelc20", "uelc20"), ("uel20", "uel20"))
UOS_CODENAMES = {"fou": "fou", "eagle": "fou", "fuyu": "uel20", "kongzi": "uelc20"}


def _evidence(kind, value, source):
    return {"kind": kind, "value": value, "source": source}


def note_dangling(ctx, path):
    """Record a symlink whose target does not exist (a missing plain file stays silent)."""
    import stat as stat_mod
    st = ctx.fs.lstat(path)
    if st is not None and stat_mod.S_ISLNK(st.st_mode) and not ctx.fs.exists(path):
        ctx.error(path, "dangling symbolic link (-> %s); treated as missing" % ctx.fs.readlink(path))
        return True
    return False


_FLAT_LINK_RE = re.compile(r"^[A-Za-z0-9_./\-]{1,255}$")


def read_release_text(ctx, path, max_bytes=64 * 1024):
    """Text of a release file; follows a symlink that a copy flattened into a text file.

    Copies made without symlink support (git with core.symlinks=false, some archivers) turn
    ``/etc/os-release -> ../usr/lib/os-release`` into a small file whose whole content is the
    link target. Such a file is followed (inside the root) when the target exists.
    Returns (text, path actually read).
    """
    import posixpath
    text = ctx.fs.read_text(path, max_bytes=max_bytes)
    if text is None:
        note_dangling(ctx, path)
        return None, path
    if "\n" in text.rstrip("\n") or "=" in text:
        return text, path
    target = text.strip()
    if not _FLAT_LINK_RE.match(target) or target in (".", ".."):
        return text, path
    followed = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if followed != path and ctx.fs.isfile(followed):
        real = ctx.fs.read_text(followed, max_bytes=max_bytes)
        if real is not None:
            return real, followed
    return text, path


def _read_os_release(ctx):
    from scanner.parsers.os_release import parse_os_release
    for link_path in OS_RELEASE_PATHS:
        text, path = read_release_text(ctx, link_path)
        if text is None:
            continue
        problems = []
        values = parse_os_release(text, problems)
        for problem in problems[:5]:
            ctx.error(path, "malformed os-release: %s" % problem)
        if len(problems) > 5:
            ctx.error(path, "malformed os-release: %d more bad lines" % (len(problems) - 5))
        if values.get("ID") or values.get("NAME"):
            return path, values
        ctx.error(path, "os-release has neither ID nor NAME; trying the next source")
    return None, {}


def _release_files(ctx):
    found = {}
    for path in RELEASE_FILES:
        text, _ = read_release_text(ctx, path, max_bytes=16 * 1024)
        if text is None:
            continue
        line = text.split("\n", 1)[0].strip()
        if "\x00" in line or "\ufffd" in line:
            ctx.error(path, "release file holds undecodable bytes; ignored")
            continue
        if line:
            found[path] = line
    return found


def _version_key(name):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _kernel(ctx):
    """(running kernel or None, installed kernels). Offline the running kernel is unknown unless
    exactly one kernel is installed."""
    if ctx.live:
        return _os.uname().release, []
    names = set()
    for name in ctx.fs.listdir("/lib/modules") or ctx.fs.listdir("/usr/lib/modules") or []:
        if re.match(r"^\d+\.\d+", name):
            names.add(name)
    for name in ctx.fs.listdir("/boot") or []:
        if name.startswith("vmlinuz-") and re.match(r"^\d+\.\d+", name[8:]) and "rescue" not in name:
            names.add(name[8:])
    installed = sorted(names, key=_version_key)
    return (installed[0] if len(installed) == 1 else None), installed


_ARCH_SUFFIX_RE = re.compile(r"[.\-_](x86_64|aarch64|loongarch64|mips64el|mips64|sw_64|ppc64le|ppc64|s390x|"
                             r"riscv64|i686|armv7hl|arm64|amd64)$")
_ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "mips64el": "mips64", "armv7hl": "armv7l"}


def target_arch(ctx, kernels=()):
    """uname -m live; offline the ELF class of the image's /bin/sh (or a kernel name suffix)."""
    if ctx.live:
        return _os.uname().machine, "uname"
    from scanner.parsers.elf import elf_arch
    for path in ("/bin/sh", "/usr/bin/sh", "/bin/bash", "/usr/bin/env", "/sbin/init"):
        header = ctx.fs.read_bytes(path, max_bytes=64, report=False)  # bounded: no error for "larger"
        arch = elf_arch(header)
        if arch:
            return arch, path
    for name in kernels:
        match = _ARCH_SUFFIX_RE.search(name)
        if match:
            return _ARCH_ALIASES.get(match.group(1), match.group(1)), "kernel " + name
    return None, None


def _family(ident, id_like, values, release_files, ctx):
    for token in id_like:
        for like, fam in FAMILY_BY_LIKE:
            if token == like:
                return fam
    if ident in FAMILY_BY_ID:
        return FAMILY_BY_ID[ident]
    if ident in ("kylin", "uos") or not ident:
        platform = (values.get("PLATFORM_ID") or "").lower()
        if re.search(r"platform:(uelc?\d+|el\d+|an\d+|oe\d+)", platform):
            return "rhel"
        name = (values.get("NAME") or "").lower()
        if "advanced server" in name:  # Kylin Linux Advanced Server (RPM)
            return "rhel"
        if (values.get("VERSION_CODENAME") or "").lower() in ("fou", "eagle"):
            return "debian"
        if any(p in release_files for p in ("/etc/redhat-release", "/etc/system-release",
                                            "/etc/kylin-release", "/etc/centos-release")):
            return "rhel"
        if "/etc/debian_version" in release_files:
            return "debian"
        # package database: the way the system installs software
        if ctx.fs.exists("/var/lib/dpkg/status"):
            return "debian"
        if ctx.fs.isdir("/var/lib/rpm") or ctx.fs.isdir("/usr/lib/sysimage/rpm"):
            return "rhel"
    return None


def _edition(ident, values, family):
    if ident == "uos":
        platform = (values.get("PLATFORM_ID") or "").lower()
        for marker, edition in UOS_EDITIONS:
            if marker in platform:
                return edition
        codename = (values.get("VERSION_CODENAME") or "").lower()
        if codename in UOS_CODENAMES:
            return UOS_CODENAMES[codename]
        if family == "debian":
            return "fou"
        return None
    if ident == "kylin":
        if family == "rhel":
            return "server"
        if family == "debian":
            return "desktop"
    return None


def collect(ctx):
    path, values = _read_os_release(ctx)
    release_files = _release_files(ctx)
    lsb = None
    lsb_text = ctx.fs.read_text("/etc/lsb-release", max_bytes=16 * 1024)
    if lsb_text is not None:
        from scanner.parsers.os_release import parse_os_release
        lsb = parse_os_release(lsb_text) or None
    evidence = []
    ident = (values.get("ID") or "").strip().lower().replace(" ", "_") or None
    id_like = [t.lower() for t in (values.get("ID_LIKE") or "").split()]
    name = values.get("NAME") or None
    version_id = values.get("VERSION_ID") or None
    version = values.get("VERSION") or None
    pretty = values.get("PRETTY_NAME") or None
    codename = values.get("VERSION_CODENAME") or None
    if path:
        evidence.append(_evidence("os-release", "ID=%s" % values.get("ID", ""), path))
        if name:
            evidence.append(_evidence("os-release", "NAME=%s" % name, path))
        if version_id:
            evidence.append(_evidence("os-release", "VERSION_ID=%s" % version_id, path))
        if values.get("PLATFORM_ID"):
            evidence.append(_evidence("os-release", "PLATFORM_ID=%s" % values["PLATFORM_ID"], path))
    elif release_files:
        from scanner.parsers.os_release import parse_release_line
        for rpath, line in release_files.items():
            if rpath == "/etc/debian_version":
                continue
            parsed = parse_release_line(line)
            name, version_id, codename = parsed["name"], parsed["version"], parsed["codename"]
            version = line
            pretty = line
            evidence.append(_evidence("release-file", line, rpath))
            break
        else:
            if "/etc/debian_version" in release_files:
                name, version_id = "Debian", release_files["/etc/debian_version"]
                evidence.append(_evidence("release-file", version_id, "/etc/debian_version"))
    kernel, kernels = _kernel(ctx)
    arch, arch_source = target_arch(ctx, kernels if not kernel else [kernel] + kernels)
    family = _family(ident, id_like, values, release_files, ctx)
    if not path and not release_files:
        ctx.error("/etc/os-release", "no os-release or vendor release file found; the OS is unknown")
        if kernel is None and arch is None:
            return None
    return {
        "id": ident,
        "name": name,
        "version_id": version_id,
        "version": version,
        "pretty_name": pretty,
        "id_like": id_like,
        "family": family,
        "edition": _edition(ident, values, family),
        "variant_id": values.get("VARIANT_ID") or None,
        "kernel": kernel,
        "kernels": kernels,
        "arch": arch,
        "arch_source": arch_source,
        "platform_id": values.get("PLATFORM_ID") or None,
        "codename": codename,
        "source": path or (next(iter(release_files)) if release_files else None),
        "os_release": values,
        "lsb": lsb,
        "release_files": release_files,
        "evidence": evidence,
    }
