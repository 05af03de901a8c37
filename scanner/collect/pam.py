"""PAM as the system really applies it.

Each service file under /etc/pam.d is parsed and its ``include``, ``substack``
and Debian ``@include`` lines are resolved, so the stacks below are what
Linux-PAM runs for sshd, login, su, passwd, ... Effective settings merge the
module arguments with the conf files the modules read (PAM arguments win):

* ``quality``  pam_pwquality (pwquality.conf, then pwquality.conf.d/*.conf,
  then arguments) or pam_cracklib / pam_passwdqc (arguments only);
* ``lockout``  pam_faillock (faillock.conf, then arguments) or pam_tally2 /
  pam_tally, and on which login services it actually counts failures;
* ``history``  pam_pwhistory (pwhistory.conf, then arguments) or pam_unix
  ``remember=``;
* ``nullok``   every pam_unix auth line that accepts empty passwords.

A module that exists on disk but sits in no stack (faillock "installed but
not configured") is reported in ``modules_on_disk`` and is NOT counted.
"""
from __future__ import absolute_import

import posixpath

from scanner.collect.baseline_util import conf_d_files, logical_lines, parse_key_value, to_int, where

NAME = "pam"
LIVE_ONLY = False

PAM_DIR = "/etc/pam.d"
TYPES = ("auth", "account", "password", "session")
MAX_DEPTH = 12
SERVICES = ("sshd", "login", "su", "sudo", "passwd", "system-auth", "password-auth", "common-auth",
            "common-account", "common-password", "common-session", "other")
# Services through which people log in: lockout and nullok are judged on these.
LOGIN_SERVICES = ("sshd", "login")
MODULE_DIRS = ("/usr/lib64/security", "/lib64/security", "/usr/lib/security", "/lib/security")
WATCHED_MODULES = ("pam_faillock", "pam_tally2", "pam_tally", "pam_pwquality", "pam_cracklib",
                   "pam_passwdqc", "pam_pwhistory", "pam_wheel")
MFA_MODULES = ("pam_google_authenticator", "pam_oath", "pam_radius_auth", "pam_tacplus", "pam_pkcs11",
               "pam_yubico", "pam_u2f", "pam_duo", "pam_sss_gss", "pam_otp")
HASH_ARGS = ("md5", "bigcrypt", "sha256", "sha512", "blowfish", "gost_yescrypt", "yescrypt", "sm3")

# libpwquality's built-in values (src/pwqprivate.h PWQ_DEFAULT_*) for what neither pwquality.conf nor the module
# arguments set. They changed in 1.3.0: 1.0.0-1.2.4 have minlen 9, difok 5 and d/u/l/ocredit 1 (a positive
# credit lets each such character count one toward minlen); 1.3.0 on have minlen 8, difok 1, credits 0 and
# dictcheck 1; usercheck exists from 1.4.0 (default 1). Which set applies is read from the installed package
# (pwquality_version), never assumed.
PWQUALITY_DEFAULTS = {"minlen": 8, "minclass": 0, "dcredit": 0, "ucredit": 0, "lcredit": 0, "ocredit": 0,
                      "retry": 1, "difok": 1, "dictcheck": 1, "usercheck": 1, "maxrepeat": 0}
PWQUALITY_DEFAULTS_1_2 = {"minlen": 9, "minclass": 0, "dcredit": 1, "ucredit": 1, "lcredit": 1, "ocredit": 1,
                          "retry": 1, "difok": 5, "maxrepeat": 0}
PWQUALITY_VERSIONED = ("minlen", "difok", "dcredit", "ucredit", "lcredit", "ocredit", "dictcheck", "usercheck")
# the binary packages of the libpwquality source (one version for all): Debian/Ubuntu, then RPM distributions
PWQUALITY_PACKAGES = ("libpwquality1", "libpam-pwquality", "libpwquality-common", "libpwquality")
CRACKLIB_DEFAULTS = {"minlen": 9, "minclass": 0, "dcredit": 1, "ucredit": 1, "lcredit": 1, "ocredit": 1,
                     "retry": 1, "difok": 5}
FAILLOCK_DEFAULTS = {"deny": 3, "unlock_time": 600, "fail_interval": 900}
INT_KEYS = ("minlen", "minclass", "dcredit", "ucredit", "lcredit", "ocredit", "retry", "difok", "dictcheck",
            "usercheck", "maxrepeat", "deny", "unlock_time", "fail_interval", "root_unlock_time", "remember")
FLAG_KEYS = ("enforce_for_root", "even_deny_root", "local_users_only", "silent", "audit", "use_authtok")


def parse_service_file(ctx, path):
    """Raw lines of one PAM file: [{"type", "control", "module", "args", "file", "line", "optional"}]."""
    text = ctx.fs.read_text(path)
    if text is None:
        return None
    entries = []
    for number, line in logical_lines(text):
        if line.startswith("@include"):
            parts = line.split()
            if len(parts) != 2:
                ctx.error(where(path, number), "malformed @include line: %r" % line)
                continue
            entries.append({"type": "@include", "control": "include", "module": parts[1], "args": [],
                            "file": path, "line": number, "optional": False})
            continue
        optional = line.startswith("-")
        rest = line[1:] if optional else line
        parts = rest.split(None, 1)
        if len(parts) < 2 or parts[0].lower() not in TYPES:
            ctx.error(where(path, number), "not a PAM rule (expected 'type control module [args]'): %r" % line)
            continue
        kind, rest = parts[0].lower(), parts[1].strip()
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                ctx.error(where(path, number), "unterminated '[' in the control field: %r" % line)
                continue
            control, rest = rest[:end + 1], rest[end + 1:].strip()
        else:
            bits = rest.split(None, 1)
            control, rest = bits[0], (bits[1] if len(bits) > 1 else "")
        bits = rest.split()
        if not bits:
            ctx.error(where(path, number), "PAM rule without a module: %r" % line)
            continue
        entries.append({"type": kind, "control": control, "module": bits[0], "args": bits[1:],
                        "file": path, "line": number, "optional": optional})
    return entries


def module_name(module):
    base = posixpath.basename(module)
    return base[:-3] if base.endswith(".so") else base


class Resolver(object):
    def __init__(self, ctx):
        self.ctx = ctx
        self.cache = {}

    def raw(self, service):
        if service not in self.cache:
            self.cache[service] = parse_service_file(self.ctx, posixpath.join(PAM_DIR, service))
        return self.cache[service]

    def stack(self, service, kind, depth=0, seen=()):
        """Resolved, ordered rules of ``kind`` for ``service``."""
        entries = self.raw(service)
        if entries is None:
            return None
        if depth > MAX_DEPTH or service in seen:
            self.ctx.error(posixpath.join(PAM_DIR, service), "include loop or nesting deeper than %d" % MAX_DEPTH)
            return []
        out = []
        for entry in entries:
            if entry["type"] == "@include":
                sub = self.stack(entry["module"], kind, depth + 1, seen + (service,))
                if sub is None:
                    self.ctx.error(where(entry["file"], entry["line"]), "@include of missing file %s" % entry["module"])
                    continue
                out.extend(sub)
                continue
            if entry["type"] != kind:
                continue
            if entry["control"] in ("include", "substack"):
                target = entry["module"]
                sub = self.stack(target, kind, depth + 1, seen + (service,))
                if sub is None:
                    self.ctx.error(where(entry["file"], entry["line"]), "%s of missing file %s" % (entry["control"], target))
                    continue
                out.extend(sub)
                continue
            item = dict(entry)
            item["module"] = module_name(entry["module"])
            item["source"] = where(entry["file"], entry["line"])
            out.append(item)
        return out


def parse_args(args):
    values = {}
    for arg in args:
        if "=" in arg:
            key, value = arg.split("=", 1)
            values[key] = to_int(value) if key in INT_KEYS and to_int(value) is not None else value
        else:
            values[arg] = True
    return values


def conf_values(ctx, paths):
    """Merge ``key = value`` files in order; flags without value become True."""
    merged, sources = {}, {}
    for path in paths:
        text = ctx.fs.read_text(path)
        if text is None:
            continue
        for number, line in logical_lines(text, continuation=False):
            if "=" in line:
                key, value = [x.strip() for x in line.split("=", 1)]
                parsed = to_int(value) if key in INT_KEYS else value
                if key in INT_KEYS and parsed is None:
                    ctx.error(where(path, number), "%s = %r is not a whole number; ignored" % (key, value))
                    continue
                merged[key] = parsed
            else:
                key = line.split()[0]
                merged[key] = True
            sources[key] = where(path, number)
    return merged, sources


def module_dirs(fs):
    dirs = list(MODULE_DIRS)
    for base in ("/usr/lib", "/lib"):
        for entry in fs.listdir(base) or []:
            if entry.endswith("-linux-gnu") or entry.endswith("-linux-gnueabihf"):
                dirs.append(posixpath.join(base, entry, "security"))
    return [d for d in dirs if fs.isdir(d)]


def module_dirs_exist(fs):
    return bool(module_dirs(fs))


def modules_on_disk(fs):
    dirs = list(MODULE_DIRS)
    for base in ("/usr/lib", "/lib"):
        for entry in fs.listdir(base) or []:
            if entry.endswith("-linux-gnu") or entry.endswith("-linux-gnueabihf"):
                dirs.append(posixpath.join(base, entry, "security"))
    found = {}
    for directory in dirs:
        names = fs.listdir(directory)
        if not names:
            continue
        for mod in WATCHED_MODULES:
            if mod + ".so" in names and mod not in found:
                found[mod] = posixpath.join(directory, mod + ".so")
    return found


def find_lines(stack, modules):
    return [e for e in (stack or []) if e["module"] in modules]


def quality(ctx, password_stack, services_with):
    lines = find_lines(password_stack, ("pam_pwquality", "pam_cracklib", "pam_passwdqc"))
    if not lines:
        # no pam_pwquality / pam_cracklib / pam_passwdqc line: no quality module requires any length
        return {"module": None, "services": services_with, "minlen": 0, "classes_required": 0,
                "enforce_for_root": False, "retry": None, "sources": {}}
    line = lines[0]
    module = line["module"]
    values, sources = {}, {}
    args = parse_args(line["args"])
    builtin = None
    if module == "pam_pwquality":
        conf, sources = conf_values(ctx, ["/etc/security/pwquality.conf"]
                                    + conf_d_files(ctx.fs, "/etc/security/pwquality.conf.d"))
        builtin = {"version": None, "undecidable": None}
        if any(key not in conf and key not in args for key in PWQUALITY_VERSIONED):
            version, where_from = pwquality_version(ctx)
            builtin["version"], builtin["source"] = version, where_from
            defaults = pwquality_builtin(version)
            if defaults is None:
                # keep the keys that are not version-dependent; the others stay unknown with the reason
                defaults = dict((k, v) for k, v in PWQUALITY_DEFAULTS.items() if k not in PWQUALITY_VERSIONED)
                builtin["undecidable"] = (where_from if version is None else
                                          "libpwquality %s: version not understood" % version)
            values.update(defaults)
        values.update(conf)
    elif module == "pam_cracklib":
        values.update(CRACKLIB_DEFAULTS)
    for key in args:
        sources[key] = line["source"]
    values.update(args)
    if module == "pam_passwdqc":
        # passwdqc "min=disabled,24,11,8,7": the last number is the length for 4-class passwords
        values = {"min": args.get("min")}
    credits_negative = sum(1 for k in ("dcredit", "ucredit", "lcredit", "ocredit")
                           if isinstance(values.get(k), int) and values[k] <= -1)
    minclass = values.get("minclass") if isinstance(values.get("minclass"), int) else 0
    out = {"module": module, "source": line["source"], "control": line["control"], "services": services_with,
           "minlen": values.get("minlen") if isinstance(values.get("minlen"), int) else None,
           "minclass": minclass, "classes_required": max(minclass, credits_negative),
           "enforce_for_root": bool(values.get("enforce_for_root")),
           "retry": values.get("retry") if isinstance(values.get("retry"), int) else None,
           "sources": sources}
    for key in ("dcredit", "ucredit", "lcredit", "ocredit", "difok", "dictcheck", "usercheck", "maxrepeat"):
        if key in values:
            out[key] = values[key]
    if builtin is not None and (builtin["version"] or builtin["undecidable"]):
        out["builtin_defaults"] = builtin
        if builtin["undecidable"] and out["minlen"] is None:
            out["unknown_why"] = {"minlen": {"key": "scan.reason.pwquality_default_unknown"}}
    return out


def _version_tuple(text):
    """(1, 4, 4) from "1.4.4-8.el9", "1:1.4.5-1+b1" or "1.2.3"; None when it does not start with numbers."""
    body = str(text or "").split(":", 1)[-1].split("-", 1)[0]
    parts = []
    for piece in body.split("."):
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        parts.append(int(digits))
        if digits != piece:
            break
    return tuple(parts) if parts else None


def pwquality_builtin(version):
    """The built-in values of the installed libpwquality, or None when its version is unknown."""
    number = _version_tuple(version)
    if number is None:
        return None
    if number < (1, 3):
        return dict(PWQUALITY_DEFAULTS_1_2)
    out = dict(PWQUALITY_DEFAULTS)
    if number < (1, 4):
        out.pop("usercheck")
    return out


def pwquality_version(ctx):
    """(version, where) of the installed libpwquality from the package database; (None, why) when it is not
    there to read. Live on RPM systems ``rpm -q``; otherwise the database files themselves."""
    from scanner.collect import packages
    fs = ctx.fs
    installed = packages.dpkg_installed(ctx, report=False)
    if installed is not None:
        found = dict((i["name"], i["version"]) for i in installed if i["name"] in PWQUALITY_PACKAGES)
        for name in PWQUALITY_PACKAGES:
            if found.get(name):
                return found[name], "%s (%s)" % (packages.DPKG_STATUS, name)
        return None, "%s lists no libpwquality package" % packages.DPKG_STATUS
    path, fmt = packages.find_rpmdb(fs)
    if path is None:
        return None, "no package database (dpkg status or rpmdb) to read the libpwquality version from"
    items = None
    if ctx.live:
        out = ctx.run(["rpm", "-q", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n", "libpwquality"], timeout=30,
                      ok_codes=(0, 1), report=False)
        if out is not None:
            items = [{"name": p[0], "version": p[1]} for p in (l.split("\t") for l in out.splitlines()) if len(p) == 2]
    if not items:
        items = packages.read_rpmdb(ctx, path, fmt)
    for item in items or []:
        if item["name"] in PWQUALITY_PACKAGES and item.get("version"):
            return item["version"], "%s (%s)" % (path, item["name"])
    if items is None:
        return None, "%s could not be read" % path
    return None, "%s lists no libpwquality package" % path


def lockout(ctx, stacks, login_services):
    """Which module locks accounts after failed logins, with what settings, on which services."""
    covered, missing = [], []
    module, settings, sources, seen_lines = None, {}, {}, []
    for service in login_services:
        auth = stacks.get(service, {}).get("auth")
        lines = find_lines(auth, ("pam_faillock", "pam_tally2", "pam_tally"))
        counting = [e for e in lines if e["module"] != "pam_faillock"
                    or "authfail" in e["args"] or "authsucc" in e["args"]]
        (covered if counting else missing).append(service)
        for e in lines:
            if e["source"] not in [s["source"] for s in seen_lines]:
                seen_lines.append(e)
    if seen_lines:
        module = seen_lines[0]["module"]
        if module == "pam_faillock":
            settings.update(FAILLOCK_DEFAULTS)
            conf, sources = conf_values(ctx, ["/etc/security/faillock.conf"])
            settings.update(conf)
        for e in seen_lines:
            if e["module"] != module:
                continue
            args = parse_args(e["args"])
            for key in args:
                sources[key] = e["source"]
            settings.update(args)
    deny = settings.get("deny") if isinstance(settings.get("deny"), int) else None
    unlock = settings.get("unlock_time") if isinstance(settings.get("unlock_time"), int) else None
    if module in ("pam_tally2", "pam_tally") and "unlock_time" not in settings:
        unlock = 0  # tally2 without unlock_time never unlocks by itself
    return {
        "module": module if covered else (module if seen_lines else None),
        "services": covered, "missing_services": missing, "login_services": list(login_services),
        "deny": deny, "unlock_time": unlock,
        "even_deny_root": bool(settings.get("even_deny_root")),
        "root_unlock_time": settings.get("root_unlock_time") if isinstance(settings.get("root_unlock_time"), int) else None,
        "modes": sorted(set(a for e in seen_lines for a in e["args"] if a in ("preauth", "authfail", "authsucc"))),
        "lines": [e["source"] for e in seen_lines],
        "sources": sources,
    }


def history(ctx, password_stack):
    lines = find_lines(password_stack, ("pam_pwhistory",))
    if lines:
        values = {"remember": 10}  # pam_pwhistory's built-in default
        conf, sources = conf_values(ctx, ["/etc/security/pwhistory.conf"])
        values.update(conf)
        args = parse_args(lines[0]["args"])
        values.update(args)
        for key in args:
            sources[key] = lines[0]["source"]
        remember = values.get("remember") if isinstance(values.get("remember"), int) else None
        return {"module": "pam_pwhistory", "remember": remember, "enforce_for_root": bool(values.get("enforce_for_root")),
                "source": lines[0]["source"], "sources": sources}
    for e in find_lines(password_stack, ("pam_unix",)):
        args = parse_args(e["args"])
        if isinstance(args.get("remember"), int):
            return {"module": "pam_unix", "remember": args["remember"], "enforce_for_root": False,
                    "source": e["source"], "sources": {"remember": e["source"]}}
    return {"module": None, "remember": 0, "enforce_for_root": False, "source": None, "sources": {}}


def collect(ctx):
    fs = ctx.fs
    if not fs.isdir(PAM_DIR):
        ctx.error(PAM_DIR, "not found: PAM configuration cannot be established")
        return None
    resolver = Resolver(ctx)
    stacks, present = {}, []
    for service in SERVICES:
        if resolver.raw(service) is None:
            continue
        present.append(service)
        stacks[service] = {}
        for kind in TYPES:
            stack = resolver.stack(service, kind) or []
            stacks[service][kind] = [{"module": e["module"], "control": e["control"], "args": e["args"],
                                      "source": e["source"], "optional": e["optional"]} for e in stack]
    family = "rhel" if "system-auth" in present else ("debian" if "common-auth" in present else None)
    login_services = [s for s in LOGIN_SERVICES if s in stacks]
    if not login_services:
        login_services = [s for s in ("system-auth", "password-auth", "common-auth") if s in stacks]

    if "passwd" in stacks:
        password_stack = stacks["passwd"]["password"]
    else:
        password_stack = (stacks.get("system-auth") or stacks.get("common-password") or {}).get("password", [])
    quality_services = [s for s in ("passwd", "system-auth", "password-auth", "common-password")
                        if s in stacks and find_lines(stacks[s]["password"], ("pam_pwquality", "pam_cracklib", "pam_passwdqc"))]

    nullok = []
    for service in login_services + [s for s in ("su", "sudo") if s in stacks]:
        for e in find_lines(stacks[service]["auth"], ("pam_unix",)):
            if "nullok" in e["args"] or "nullok_secure" in e["args"]:
                nullok.append({"service": service, "source": e["source"]})

    unix_hash = None
    for e in find_lines(password_stack, ("pam_unix",)):
        for arg in e["args"]:
            if arg in HASH_ARGS:
                unix_hash = arg
    wheel = [e for e in find_lines((stacks.get("su") or {}).get("auth"), ("pam_wheel",)) if "deny" not in e["args"]]
    mfa = sorted(set(e["module"] for s in login_services for e in stacks[s]["auth"] if e["module"] in MFA_MODULES))

    on_disk = modules_on_disk(fs)
    lock = lockout(ctx, stacks, login_services)
    # Linux-PAM 1.5 removed pam_tally/pam_tally2: a stack naming a module that is not installed fails logins
    lock["module_on_disk"] = (lock["module"] in on_disk) if lock["module"] and module_dirs_exist(fs) else None
    return {
        "family": family,
        "services_present": present,
        "stacks": stacks,
        "quality": quality(ctx, password_stack, quality_services),
        "lockout": lock,
        "history": history(ctx, password_stack),
        "nullok": nullok,
        "unix_hash": unix_hash,
        "su_wheel": bool(wheel),
        "mfa_modules": mfa,
        "modules_on_disk": on_disk,
    }
