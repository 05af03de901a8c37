"""Effective OpenSSH server configuration (facts.sshd, shape in docs/shared contracts).

Live: ``sshd -T`` (retried with ``-C user=root,host=localhost,addr=127.0.0.1``
when Match blocks make plain -T fail). Offline, or when sshd -T cannot run:
sshd_config is parsed the way sshd does it -- keywords are case-insensitive,
the FIRST value wins, ``Include`` (globs, relative to /etc/ssh) is expanded in
place, ``Match`` blocks do not change the global values (their keywords are
listed in ``match_overrides``; a Match opened in an included file ends with
that file), RHEL crypto-policy back-ends are applied, and
OpenSSH's built-in defaults fill whatever is left.
"""
from __future__ import absolute_import

import fnmatch
import posixpath
import re

from scanner.collect.baseline_util import find_binary, logical_lines, to_int, where

NAME = "sshd"
LIVE_ONLY = False

CONFIG = "/etc/ssh/sshd_config"
MAX_INCLUDE_DEPTH = 16
MULTI = ("port", "listenaddress", "hostkey", "acceptenv", "subsystem", "setenv", "include", "hostcertificate")

HOSTKEY_ALGS = ("ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,"
                "ecdsa-sha2-nistp384-cert-v01@openssh.com,ecdsa-sha2-nistp521-cert-v01@openssh.com,"
                "sk-ssh-ed25519-cert-v01@openssh.com,sk-ecdsa-sha2-nistp256-cert-v01@openssh.com,"
                "rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,ssh-ed25519,"
                "ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,"
                "sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256")
# OpenSSH >= 8.x built-in defaults (sshd_config(5)); algorithm lists from OpenSSH 9.x.
DEFAULTS = {
    "port": "22", "addressfamily": "any", "listenaddress": "[::]:22,0.0.0.0:22",
    "permitrootlogin": "prohibit-password", "maxauthtries": "6", "maxsessions": "10",
    "permitemptypasswords": "no", "passwordauthentication": "yes", "pubkeyauthentication": "yes",
    "kbdinteractiveauthentication": "yes", "hostbasedauthentication": "no", "ignorerhosts": "yes",
    "permituserenvironment": "no", "x11forwarding": "no", "allowtcpforwarding": "yes",
    "allowagentforwarding": "yes", "clientaliveinterval": "0", "clientalivecountmax": "3",
    "logingracetime": "120", "loglevel": "INFO", "syslogfacility": "AUTH", "usedns": "no",
    "usepam": "no", "strictmodes": "yes", "gatewayports": "no", "permittunnel": "no",
    "authenticationmethods": "any", "maxstartups": "10:30:100", "banner": "none",
    "ciphers": "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,"
               "aes128-gcm@openssh.com,aes256-gcm@openssh.com",
    "macs": "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,"
            "hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,"
            "umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1",
    "kexalgorithms": "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,"
                     "ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,"
                     "diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,"
                     "diffie-hellman-group18-sha512,diffie-hellman-group14-sha256",
    "allowusers": "", "allowgroups": "", "denyusers": "", "denygroups": "",
    "hostkeyalgorithms": HOSTKEY_ALGS, "pubkeyacceptedalgorithms": HOSTKEY_ALGS,
}
# Keywords whose OpenSSH default changed, as (first version with the new default, old value).
OLD_DEFAULTS = {"permitrootlogin": ((7, 0), "yes"), "kbdinteractiveauthentication": ((8, 7), "yes"),
                # ssh-rsa (SHA-1 signatures) left the defaults in OpenSSH 8.8
                "hostkeyalgorithms": ((8, 8), HOSTKEY_ALGS + ",ssh-rsa-cert-v01@openssh.com,ssh-rsa"),
                "pubkeyacceptedalgorithms": ((8, 8), HOSTKEY_ALGS + ",ssh-rsa-cert-v01@openssh.com,ssh-rsa")}
# keywords renamed by OpenSSH: old spelling -> the name sshd -T prints
RENAMED = {"pubkeyacceptedkeytypes": "pubkeyacceptedalgorithms", "hostbasedacceptedkeytypes": "hostbasedacceptedalgorithms",
           "challengeresponseauthentication": "kbdinteractiveauthentication"}
NUMERIC = ("maxauthtries", "maxsessions", "clientaliveinterval", "clientalivecountmax", "logingracetime")
# sshd (servconf.c) parses and checks the argument of EVERY occurrence of a keyword -- also the ones whose
# value is ignored because an earlier line already set it, and the ones inside Match blocks -- and exits
# with "Bad configuration option"/"unsupported option"/"invalid integer" on a bad one (sshd -T fails and
# the daemon refuses to start). The value sets below are sshd_config(5)'s; flags compare case-insensitively.
YES_NO = ("yes", "no")
CHOICES = {
    "permitrootlogin": ("yes", "no", "prohibit-password", "without-password", "forced-commands-only"),
    "permitemptypasswords": YES_NO, "passwordauthentication": YES_NO, "pubkeyauthentication": YES_NO,
    "kbdinteractiveauthentication": YES_NO, "hostbasedauthentication": YES_NO, "ignorerhosts": YES_NO,
    "x11forwarding": YES_NO, "usepam": YES_NO, "strictmodes": YES_NO, "usedns": YES_NO,
    "allowagentforwarding": YES_NO, "allowtcpforwarding": ("yes", "no", "all", "local", "remote"),
    "gatewayports": ("yes", "no", "clientspecified"), "addressfamily": ("any", "inet", "inet6"),
    "permittunnel": ("yes", "no", "point-to-point", "ethernet"),
    "loglevel": ("quiet", "fatal", "error", "info", "verbose", "debug", "debug1", "debug2", "debug3"),
}
INTEGER_KEYWORDS = ("maxauthtries", "maxsessions", "clientalivecountmax")   # strtonum(0, INT_MAX)
TIME_KEYWORDS = ("clientaliveinterval", "logingracetime")                   # misc.c convtime()
TIME_RE = re.compile(r"^(\d+[sSmMhHdDwW]?)+$")
TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def convtime(text):
    """Seconds of an sshd time value ("90", "10m", "1h30m"), or None when sshd would reject it."""
    if not TIME_RE.match(text or ""):
        return None
    return sum(int(n) * TIME_UNITS[u.lower()] for n, u in re.findall(r"(\d+)([sSmMhHdDwW]?)", text))


def invalid_value(keyword, value):
    """Why sshd rejects ``value`` for ``keyword`` (None when it accepts it or we do not check the keyword)."""
    word = value.split()[0] if value.split() else ""
    if keyword in CHOICES and word.lower() not in CHOICES[keyword]:
        return "unsupported option %r (sshd accepts %s)" % (word, ", ".join(CHOICES[keyword]))
    if keyword in INTEGER_KEYWORDS and not re.match(r"^\d+$", word):
        return "invalid integer %r" % word
    if keyword in TIME_KEYWORDS and convtime(word) is None:
        return "invalid time value %r" % word
    return None
VERSION_RE = re.compile(br"OpenSSH_(\d+)\.(\d+)(p\d+)?")


def openssh_version(ctx, binary):
    data = ctx.fs.read_bytes(binary, max_bytes=8 * 1024 * 1024, report=False)
    if not data:
        return None
    match = VERSION_RE.search(data)
    if not match:
        return None
    return match.group(0).decode("ascii").split("_", 1)[1]


def version_tuple(version):
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


class ConfigParser(object):
    def __init__(self, ctx):
        self.ctx = ctx
        self.values, self.multi, self.sources = {}, {}, {}
        self.match_overrides = {}
        self.invalid = []
        self.files = []
        self.match_blocks = 0

    def parse_file(self, path, depth=0, in_match=None):
        fs = self.ctx.fs
        if depth > MAX_INCLUDE_DEPTH:
            self.ctx.error(path, "Include nested deeper than %d levels; the rest is ignored" % MAX_INCLUDE_DEPTH)
            return in_match
        text = fs.read_text(path)
        if text is None:
            return in_match
        self.files.append(path)
        for number, line in logical_lines(text, continuation=False):
            parts = re.split(r"[\s=]+", line, 1)
            keyword = parts[0].lower()
            keyword = RENAMED.get(keyword, keyword)
            value = parts[1].strip() if len(parts) > 1 else ""
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if not value:
                self.ctx.error(where(path, number), "keyword %r without a value" % parts[0])
                continue
            bad = invalid_value(keyword, value)
            if bad:
                self.invalid.append({"keyword": keyword, "value": value, "location": where(path, number), "why": bad})
            if keyword == "match":
                self.match_blocks += 1
                in_match = "all" if value.strip().lower() == "all" else value
                continue
            if keyword == "include":
                for pattern in value.split():
                    if not pattern.startswith("/"):
                        pattern = posixpath.join("/etc/ssh", pattern)
                    for inc in self.expand(pattern):
                        # a Match block opened in an included file ends with that file
                        self.parse_file(inc, depth + 1, in_match)
                continue
            if in_match is not None and in_match != "all":
                self.match_overrides.setdefault(keyword, []).append("%s (%s)" % (in_match, where(path, number)))
                continue
            if keyword in MULTI:
                self.multi.setdefault(keyword, []).append(value)
                self.sources.setdefault(keyword, where(path, number))
                continue
            if keyword not in self.values:  # first value wins
                self.values[keyword] = value
                self.sources[keyword] = where(path, number)
        return in_match

    def expand(self, pattern):
        directory, base = posixpath.split(pattern)
        if not any(c in base for c in "*?["):
            return [pattern] if self.ctx.fs.isfile(pattern) else []
        names = self.ctx.fs.listdir(directory) or []
        return [posixpath.join(directory, n) for n in names if fnmatch.fnmatchcase(n, base)]


def crypto_policy(ctx, parser):
    """RHEL/openEuler system-wide crypto policy back-end for sshd, when sshd_config does not set a list."""
    path = "/etc/crypto-policies/back-ends/opensshserver.config"
    text = ctx.fs.read_text(path, report=False)
    if not text:
        return
    if "CRYPTO_POLICY=" in text:  # RHEL 8 style: -oKey=value options
        for key, value in re.findall(r"-o(\w+)=([^\s']+)", text):
            key = key.lower()
            if key not in parser.values:
                parser.values[key] = value
                parser.sources[key] = path
        return
    for number, line in logical_lines(text, continuation=False):
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0].lower() not in parser.values:
            parser.values[parts[0].lower()] = parts[1].strip()
            parser.sources[parts[0].lower()] = where(path, number)


def from_files(ctx, version):
    parser = ConfigParser(ctx)
    if not ctx.fs.isfile(CONFIG):
        ctx.error(CONFIG, "sshd is installed but its configuration file is missing; built-in defaults assumed")
    parser.parse_file(CONFIG)
    crypto_policy(ctx, parser)
    effective = dict(parser.values)
    for key, values in parser.multi.items():
        effective[key] = values[0] if key != "port" else ",".join(values)
    vt = version_tuple(version)
    defaulted = []
    for key in DEFAULTS:
        if key not in effective:
            # a default that changed between OpenSSH versions is unknown when the version is
            # (a missing fact is never a pass): the rules report it instead of guessing
            effective[key] = builtin_default(key, vt)
            defaulted.append(key)
    if "without-password" == effective.get("permitrootlogin"):
        effective["permitrootlogin"] = "prohibit-password"
    for key in ("ciphers", "macs", "kexalgorithms", "hostkeyalgorithms", "pubkeyacceptedalgorithms"):
        value = effective.get(key) or ""
        if value[:1] in "+-^" and key in DEFAULTS:
            base = builtin_default(key, vt)
            effective[key] = apply_modifier(base, value) if base is not None else None
    effective = {k: (v.lower() if v is not None and k in ("permitrootlogin", "permitemptypasswords", "passwordauthentication",
                                        "pubkeyauthentication", "x11forwarding", "usepam", "ignorerhosts",
                                        "hostbasedauthentication", "permituserenvironment", "allowtcpforwarding")
                     else v) for k, v in effective.items()}
    return effective, parser, defaulted


def builtin_default(key, vt):
    """OpenSSH's built-in default of ``key`` for version tuple ``vt`` (None: version unknown)."""
    if key not in OLD_DEFAULTS:
        return DEFAULTS[key]
    if vt is None:
        return None
    since, old = OLD_DEFAULTS[key]
    return old if vt < since else DEFAULTS[key]


def apply_modifier(default, value):
    items = default.split(",")
    mod, rest = value[0], value[1:].split(",")
    if mod == "+":
        return ",".join(items + [r for r in rest if r not in items])
    if mod == "-":
        return ",".join(i for i in items if not any(fnmatch.fnmatchcase(i, r) for r in rest))
    return ",".join(rest + [i for i in items if i not in rest])


def from_sshd_t(output):
    effective, multi = {}, {}
    for line in output.splitlines():
        parts = line.strip().split(None, 1)
        if not parts:
            continue
        key = parts[0].lower()
        key = RENAMED.get(key, key)  # OpenSSH < 8.5 prints pubkeyacceptedkeytypes
        value = parts[1] if len(parts) > 1 else ""
        if key in effective:
            multi.setdefault(key, [effective[key]]).append(value)
            continue
        effective[key] = value
    if "port" in multi:
        effective["port"] = ",".join(multi["port"])
    if effective.get("permitrootlogin") == "without-password":
        effective["permitrootlogin"] = "prohibit-password"  # sshd -T prints the older synonym
    return effective, multi


def numbers(effective):
    out = {}
    for key in NUMERIC:
        raw = (effective.get(key) or "").strip()
        out[key] = convtime(raw) if key in TIME_KEYWORDS else to_int(raw)
    interval, count = out.get("clientaliveinterval"), out.get("clientalivecountmax")
    # OpenSSH >= 8.2: ClientAliveCountMax 0 disables termination, so 0 means "no idle timeout".
    out["idle_timeout"] = interval * count if interval and count and interval > 0 and count > 0 else 0
    return out


def collect(ctx):
    fs = ctx.fs
    binary = find_binary(fs, "sshd")
    if binary is None:
        return {"installed": False, "source": None, "effective": None, "version": None,
                "config_present": fs.isfile(CONFIG), "servers": []}
    version = openssh_version(ctx, binary)
    effective, source, multi = None, None, {}
    if ctx.live:
        out = ctx.run([binary, "-T"], report=False)
        if out is None:
            out = ctx.run([binary, "-T", "-C", "user=root,host=localhost,addr=127.0.0.1"])
        if out:
            effective, multi = from_sshd_t(out)
            source = "sshd -T"
    facts = {"installed": True, "binary": binary, "version": version, "config_present": fs.isfile(CONFIG)}
    parser_effective, parser, defaulted = from_files(ctx, version)
    if parser.invalid and (effective is None or not ctx.live):
        # sshd -T fails and sshd refuses to start on such a file: there is no effective configuration,
        # so every sshd rule is an error naming the line (never the first value as if it applied)
        for bad in parser.invalid:
            ctx.error(bad["location"], "sshd rejects %s %s: %s; sshd -T fails and the daemon does not start"
                      % (bad["keyword"], bad["value"], bad["why"]))
        return None
    if effective is None:
        effective, source = parser_effective, "config files"
        unknown = sorted(k for k in OLD_DEFAULTS if parser_effective.get(k) is None)
        if unknown:
            ctx.error(binary, "OpenSSH version not found in the sshd binary; the built-in defaults that changed "
                      "between versions are unknown (%s): set them in sshd_config" % ", ".join(unknown))
        multi = parser.multi
        facts["defaulted"] = sorted(defaulted)
        facts["sources"] = parser.sources
    facts.update({
        "source": source,
        "effective": effective,
        "multi": {k: v for k, v in multi.items() if k in ("port", "listenaddress", "hostkey")},
        "files": parser.files,
        "match_blocks": parser.match_blocks,
        "match_overrides": parser.match_overrides,
        "numeric": numbers(effective),
        "source_restricted": bool(re.search(r"@", effective.get("allowusers", "") or "")),
        # one entry per SSH server found: rules iterate over it so an absent sshd is not_applicable
        "servers": [{"binary": binary, "version": version, "source": source}],
    })
    return facts
