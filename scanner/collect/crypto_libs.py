"""Cryptographic libraries: OpenSSL, Tongsuo (formerly BabaSSL) and GmSSL.

Live, each tool found at a well-known path is asked for its version and its
SM2/SM3/SM4 support is *probed*: ``list -digest-algorithms`` (SM3),
``list -cipher-algorithms`` (SM4), ``ecparam -list_curves`` (SM2); for GmSSL 3,
whose command set differs, ``help`` lists the sm2*/sm3/sm4 commands. A probe
that cannot run leaves the flag None -- never guessed from the version.

Offline, only what is on disk is reported: the tool and library paths and the
version from the installed header (opensslv.h / gmssl/version.h) when present;
SM flags are None.
"""
from __future__ import absolute_import

import re

NAME = "crypto_libs"
LIVE_ONLY = False

# (library id, candidate tool paths, install prefixes)
TOOLS = {
    "openssl": ["/usr/bin/openssl", "/usr/local/bin/openssl", "/usr/local/ssl/bin/openssl",
                "/opt/openssl/bin/openssl"],
    "tongsuo": ["/opt/tongsuo/bin/tongsuo", "/usr/local/tongsuo/bin/tongsuo", "/usr/bin/tongsuo",
                "/usr/local/bin/tongsuo", "/opt/tongsuo/bin/openssl", "/opt/babassl/bin/openssl"],
    "gmssl": ["/usr/local/bin/gmssl", "/usr/bin/gmssl", "/opt/gmssl/bin/gmssl"],
}
LIB_GLOBS = {
    "openssl": ["/usr/lib64/libssl.so.*", "/usr/lib/x86_64-linux-gnu/libssl.so.*",
                "/usr/lib/aarch64-linux-gnu/libssl.so.*", "/usr/lib/loongarch64-linux-gnu/libssl.so.*",
                "/usr/lib/mips64el-linux-gnuabi64/libssl.so.*", "/lib64/libssl.so.*", "/usr/lib/libssl.so.*"],
    "tongsuo": ["/opt/tongsuo/lib64/libssl.so.*", "/opt/tongsuo/lib/libssl.so.*",
                "/usr/local/tongsuo/lib64/libssl.so.*", "/usr/local/tongsuo/lib/libssl.so.*"],
    "gmssl": ["/usr/local/lib/libgmssl.so.*", "/usr/lib64/libgmssl.so.*", "/usr/lib/libgmssl.so.*",
              "/opt/gmssl/lib/libgmssl.so.*"],
}
HEADERS = {
    "openssl": ["/usr/include/openssl/opensslv.h", "/usr/include/x86_64-linux-gnu/openssl/opensslv.h",
                "/usr/include/aarch64-linux-gnu/openssl/opensslv.h", "/usr/local/include/openssl/opensslv.h"],
    "tongsuo": ["/opt/tongsuo/include/openssl/opensslv.h", "/usr/local/tongsuo/include/openssl/opensslv.h"],
    "gmssl": ["/usr/local/include/gmssl/version.h", "/usr/include/gmssl/version.h",
              "/opt/gmssl/include/gmssl/version.h"],
}
HEADER_RES = {
    "openssl": [r'OPENSSL_VERSION_STR\s+"([^"]+)"', r'OPENSSL_VERSION_TEXT\s+"OpenSSL ([0-9][^ "]*)'],
    "tongsuo": [r'TONGSUO_VERSION_STR\s+"([^"]+)"', r'BABASSL_VERSION_TEXT\s+"BabaSSL ([0-9][^ "]*)'],
    "gmssl": [r'GMSSL_VERSION_STR\s+"GmSSL ([^"]+)"', r'GMSSL_VERSION_TEXT\s+"GmSSL ([0-9][^ "]*)'],
}
VERSION_RES = {
    "openssl": re.compile(r"^OpenSSL ([0-9][^\s]*)"),
    "tongsuo": re.compile(r"^(?:Tongsuo|BabaSSL) ([0-9][^\s]*)"),
    "gmssl": re.compile(r"^GmSSL ([0-9][^\s]*)"),
}


def identify_version_line(line):
    """(library id, version) from a `version` output line, or (None, None)."""
    for lib, rx in VERSION_RES.items():
        m = rx.match(line.strip())
        if m:
            return lib, m.group(1)
    return None, None


def probe_sm(ctx, tool):
    """{"sm2","sm3","sm4"}: True/False from the tool's own algorithm lists, None when unknown."""
    flags = {"sm2": None, "sm3": None, "sm4": None}
    evidence = []
    # one `list` run for both lists when the tool accepts that (OpenSSL 1.1.1+ and 3.x do)
    both = ctx.run([tool, "list", "-digest-algorithms", "-cipher-algorithms"], timeout=5, report=False)
    digests = both if both is not None else (
        ctx.run([tool, "list", "-digest-algorithms"], timeout=5, report=False)
        or ctx.run([tool, "list-message-digest-algorithms"], timeout=5, report=False))  # OpenSSL 1.0.x
    if digests is not None:
        flags["sm3"] = bool(re.search(r"\bSM3\b", digests, re.I))
        evidence.append({"kind": "probe", "value": "list -digest-algorithms: SM3 %s" % (
            "listed" if flags["sm3"] else "not listed"), "source": tool})
    ciphers = both if both is not None else (
        ctx.run([tool, "list", "-cipher-algorithms"], timeout=5, report=False)
        or ctx.run([tool, "list-cipher-algorithms"], timeout=5, report=False))  # OpenSSL 1.0.x
    if ciphers is not None:
        flags["sm4"] = bool(re.search(r"\bSM4\b", ciphers, re.I))
        evidence.append({"kind": "probe", "value": "list -cipher-algorithms: SM4 %s" % (
            "listed" if flags["sm4"] else "not listed"), "source": tool})
    curves = ctx.run([tool, "ecparam", "-list_curves"], timeout=5, report=False)
    if curves is not None:
        flags["sm2"] = bool(re.search(r"^\s*SM2\b", curves, re.M | re.I))
        evidence.append({"kind": "probe", "value": "ecparam -list_curves: SM2 %s" % (
            "listed" if flags["sm2"] else "not listed"), "source": tool})
    if all(v is None for v in flags.values()):
        # GmSSL 3 has its own command set: `gmssl help` lists sm2keygen, sm3, sm4 ...
        helptext = ctx.run([tool, "help"], timeout=5, report=False, ok_codes=(0, 1))
        if helptext and re.search(r"\bsm3\b", helptext):
            commands = set(re.findall(r"\b(sm[234][a-z0-9_]*)\b", helptext))
            flags = {"sm2": any(c.startswith("sm2") for c in commands),
                     "sm3": any(c.startswith("sm3") for c in commands),
                     "sm4": any(c.startswith("sm4") for c in commands)}
            evidence.append({"kind": "probe", "value": "help lists: %s" % ", ".join(sorted(commands)),
                             "source": tool})
    return flags, evidence


def _header_version(fs, lib):
    for path in HEADERS[lib]:
        text = fs.read_text(path, max_bytes=64 * 1024, report=False)
        if not text:
            continue
        for rx in HEADER_RES[lib]:
            m = re.search(rx, text)
            if m:
                return m.group(1), path
    return None, None


def collect(ctx):
    fs = ctx.fs
    found = {"openssl": None, "tongsuo": None, "gmssl": None}
    for lib in ("openssl", "tongsuo", "gmssl"):
        entry = {"version": None, "path": None, "sm2": None, "sm3": None, "sm4": None,
                 "libraries": [], "evidence": []}
        for pattern in LIB_GLOBS[lib]:
            for path in fs.glob(pattern):
                entry["libraries"].append(path)
                entry["evidence"].append({"kind": "path", "value": path, "source": None})
        for tool in TOOLS[lib]:
            if not fs.isfile(tool):
                continue
            if ctx.live:
                out = ctx.run([tool, "version"], timeout=5, report=False)
                real_lib, version = identify_version_line(out or "")
                if real_lib is None:
                    continue
                target = found[real_lib] or (entry if real_lib == lib else None)
                if target is None:
                    target = {"version": None, "path": None, "sm2": None, "sm3": None, "sm4": None,
                              "libraries": [], "evidence": []}
                    found[real_lib] = target
                if target["path"] is None:
                    target["path"] = tool
                    target["version"] = version
                    target["evidence"].append({"kind": "command", "value": out.strip().splitlines()[0],
                                               "source": tool + " version"})
                    flags, ev = probe_sm(ctx, tool)
                    target.update(flags)
                    target["evidence"].extend(ev)
            elif entry["path"] is None:
                entry["path"] = tool
                entry["evidence"].append({"kind": "path", "value": tool, "source": None})
        if entry["version"] is None:
            version, header = _header_version(fs, lib)
            if version:
                entry["version"] = version
                entry["evidence"].append({"kind": "file", "value": "version %s" % version, "source": header})
        if found[lib] is not None and found[lib] is not entry:
            # a tool reporting itself as this library was found under another library's path
            found[lib]["libraries"].extend(entry["libraries"])
            continue
        if entry["path"] or entry["libraries"] or entry["version"]:
            found[lib] = entry
    return found
