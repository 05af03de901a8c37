"""Shell-level session settings: TMOUT (idle logout) and umask, plus history settings.

Files are read in the order a login shell sources them: /etc/profile,
/etc/profile.d/*.sh, /etc/bashrc (RHEL), /etc/bash.bashrc (Debian).

* TMOUT: the last assignment wins unless an earlier one made it ``readonly``
  (later assignments then fail in bash). A non-numeric value such as ``300s``
  is ignored by bash, so ``seconds`` is 0 (no timeout) and ``valid`` false.
* umask: every ``umask`` command found counts; since profile and bashrc set
  it at different points and often per UID, the effective mask is the bits
  common to all of them (the weakest). When no shell file sets one, the
  session keeps what PAM gave it: pam_umask's value when pam_umask is in the
  session stack of a login service (sshd, login), read as pam_umask reads it
  (see session_umask); without pam_umask nothing applies login.defs UMASK to a
  PAM login (shadow-utils login(1) calls umask(UMASK) only when built without
  PAM, src/login.c "#ifndef USE_PAM"), so the session keeps the 022 it inherits.
"""
from __future__ import absolute_import

import re

from scanner.collect.baseline_util import logical_lines, where
from scanner.collect.pam import Resolver, parse_service_file

NAME = "shell"
LIVE_ONLY = False

FILES_BEFORE = ("/etc/profile",)
PROFILE_D = "/etc/profile.d"
FILES_AFTER = ("/etc/bashrc", "/etc/bash.bashrc")

ASSIGN_RE = re.compile(r"^(?:(export|readonly|declare|typeset|local)\s+(?:-[a-zA-Z]+\s+)*)?(TMOUT|HISTSIZE|HISTFILESIZE|HISTTIMEFORMAT)=(\S*)")
MARK_RE = re.compile(r"^(export|readonly|declare\s+-[a-zA-Z]*r[a-zA-Z]*|typeset\s+-[a-zA-Z]*r[a-zA-Z]*)\s+([A-Z_ ]+)$")
UMASK_RE = re.compile(r"(?:^|[;&|\s])umask\s+(0?[0-7]{3})\b")


def files(fs):
    out = list(FILES_BEFORE)
    for name in fs.listdir(PROFILE_D) or []:
        if name.endswith(".sh"):
            out.append(PROFILE_D + "/" + name)
    out.extend(FILES_AFTER)
    return [p for p in out if fs.isfile(p)]


def unquote(value):
    value = value.rstrip(";")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return value


def collect(ctx):
    fs = ctx.fs
    read = []
    variables = {}   # name -> {"raw", "source", "readonly", "exported"}
    ignored = []
    umasks = []
    for path in files(fs):
        text = fs.read_text(path)
        if text is None:
            continue
        read.append(path)
        for number, line in logical_lines(text):
            for statement in re.split(r";\s*|&&|\|\|", line):
                statement = statement.strip()
                if statement.startswith("then ") or statement.startswith("else "):
                    statement = statement[5:].strip()
                match = ASSIGN_RE.match(statement)
                if match:
                    keyword, name, raw = match.groups()
                    current = variables.get(name)
                    if current and current["readonly"]:
                        ignored.append({"name": name, "source": where(path, number),
                                        "reason": "already readonly at " + current["source"]})
                        continue
                    is_ro = bool(keyword in ("readonly",) or (keyword in ("declare", "typeset") and
                                                             re.search(r"\s-[a-zA-Z]*r", statement)))
                    variables[name] = {"raw": unquote(raw), "source": where(path, number), "readonly": is_ro,
                                       "exported": keyword == "export" or bool(current and current["exported"])}
                    continue
                match = MARK_RE.match(statement)
                if match:
                    keyword, names = match.groups()
                    for name in names.split():
                        if name in variables:
                            if keyword.startswith("export"):
                                variables[name]["exported"] = True
                            else:
                                variables[name]["readonly"] = True
                    continue
                for mask in UMASK_RE.findall(statement):
                    umasks.append({"value": "%03o" % int(mask, 8), "source": where(path, number)})
    tm = variables.get("TMOUT")
    raw = tm["raw"] if tm else None
    valid = bool(raw is not None and raw.isdigit())
    tmout = {"set": tm is not None, "raw": raw, "valid": valid, "seconds": int(raw) if valid else 0,
             "readonly": bool(tm and tm["readonly"]), "exported": bool(tm and tm["exported"]),
             "source": tm["source"] if tm else None, "ignored": [i for i in ignored if i["name"] == "TMOUT"]}
    if umasks:
        common = 0o777
        for item in umasks:
            common &= int(item["value"], 8)
        umask = {"value": "%03o" % common, "group": (common >> 3) & 7, "other": common & 7,
                 "origin": "shell", "settings": umasks}
    else:
        umask = session_umask(ctx)
    hist = {}
    for name in ("HISTSIZE", "HISTFILESIZE", "HISTTIMEFORMAT"):
        if name in variables:
            hist[name.lower()] = variables[name]["raw"]
            hist[name.lower() + "_source"] = variables[name]["source"]
    return {"files": read, "tmout": tmout, "umask": umask, "history": hist}


# The umask a PAM login session starts with when nothing in PAM sets one: sshd and login are started by the
# service manager, whose services run with UMask=0022 (systemd.exec(5) "Defaults to 0022"), the kernel's
# default for init as well; neither sshd nor a PAM-built login(1) changes it.
INHERITED_UMASK = 0o022
LOGIN_SERVICES = ("sshd", "login")
UMASK_FILES = ("/etc/login.defs", "/etc/default/login")


def mask_info(mask, origin, settings, **extra):
    out = {"value": "%03o" % mask, "group": (mask >> 3) & 7, "other": mask & 7, "origin": origin,
           "settings": settings}
    out.update(extra)
    return out


def search_key(text, key):
    """(value, line number) of the FIRST line whose key is ``key``, as linux-pam's pam_modutil_search_key()
    (libpam/pam_modutil_searchkey.c) reads login.defs for pam_umask: the text from '#' on is dropped, leading
    blanks skipped, the key ends at a space, tab or '=', then blanks and '=' are skipped and the rest of the line
    is the value; keys compare case-insensitively and the search stops at the first match -- unlike shadow-utils'
    getdef, where the last line wins. A key without a value gives an empty value (and still ends the search)."""
    for number, raw in enumerate((text or "").splitlines(), 1):
        line = raw.split("#", 1)[0].lstrip()
        if not line:
            continue
        cut = len(line)
        for sep in " \t=":
            found = line.find(sep)
            if 0 <= found < cut:
                cut = found
        name, rest = line[:cut], line[cut + 1:]
        if name.lower() == key.lower():
            return rest.lstrip(" \t\v\f\r=").rstrip("\r"), number
    return None, None


def pam_umask_value(text):
    """pam_umask's set_umask() (modules/pam_umask/pam_umask.c): strtoul(value, &end, 8) & 0777; a value with no
    octal digit at its start leaves the umask unchanged (None here). strtoul skips leading white space, takes a
    sign, and stops at the first non-octal character ("027 # x", "0278" -> 027)."""
    body = (text or "").lstrip(" \t\n\v\f\r")
    sign = 1
    if body[:1] in ("+", "-"):
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    digits = ""
    for char in body:
        if char not in "01234567":
            break
        digits += char
    if not digits:
        return None
    value = int(digits, 8)
    if value >= 1 << 64:            # ERANGE: strtoul gives ULONG_MAX
        value = (1 << 64) - 1
    return (value * sign) % (1 << 64) & 0o777


def private_group_users(fs):
    """Names of non-root users whose primary group has their own name (pam_umask's usergroups test:
    pw_uid != 0 and getgrgid(pw_gid)->gr_name == pw_name; no uid == gid condition, unlike shadow-utils'
    setup_usergroups()). None when /etc/passwd cannot be read."""
    passwd = fs.read_text("/etc/passwd", report=False)
    if passwd is None:
        return None
    groups = {}
    for line in (fs.read_text("/etc/group", report=False) or "").splitlines():
        parts = line.split(":")
        if len(parts) >= 3:
            groups.setdefault(parts[2].strip(), parts[0])
    users = []
    for line in passwd.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[2].strip() != "0" and groups.get(parts[3].strip()) == parts[0]:
            users.append(parts[0])
    return users


class _Quiet(object):
    """The PAM collector reports malformed PAM lines; resolving the stacks again here must not repeat them."""

    def __init__(self, fs):
        self.fs = fs

    def error(self, *args, **kwargs):
        pass


def session_umask(ctx):
    """The umask a PAM login session gets before any shell start-up file runs, weakest over sshd and login.

    pam_umask (linux-pam modules/pam_umask/pam_umask.c) runs only when it is in the session stack. Its value:
    the last ``umask=`` argument, else the first UMASK line of /etc/login.defs, else of /etc/default/login
    (search_key); an unparsable value leaves the inherited umask. With the ``usergroups`` argument (Debian's
    build also knows ``nousergroups``; the last of the two wins), a non-root user whose primary group carries
    the user's name gets the group bits copied from the owner bits: 027 -> 007, 022 -> 002. pam_umask does not
    read USERGROUPS_ENAB (checked against Debian 12's pam_umask.so: with USERGROUPS_ENAB yes and no
    ``usergroups`` argument it keeps 022); that key is shadow-utils' own, for a login(1) built without PAM.
    A user's GECOS ``umask=`` entry is per user and not modelled here."""
    fs = ctx.fs
    if not fs.isdir("/etc/pam.d"):
        return None
    resolver = Resolver(_Quiet(fs))
    texts = {}
    results = []
    for service in LOGIN_SERVICES:
        if parse_service_file(_Quiet(fs), "/etc/pam.d/" + service) is None:
            continue
        stack = resolver.stack(service, "session") or []
        mask, source, usergroups = INHERITED_UMASK, "inherited (no pam_umask in the %s session stack)" % service, False
        for entry in stack:
            if entry["module"] != "pam_umask":
                continue
            raw, raw_source = None, None
            for arg in entry["args"]:
                lowered = arg.lower()
                if lowered.startswith("umask="):
                    raw, raw_source = arg[6:], "%s (umask=)" % entry["source"]
                elif lowered == "usergroups":
                    usergroups = True
                elif lowered == "nousergroups":
                    usergroups = False
            if raw is None:
                for path in UMASK_FILES:
                    if path not in texts:
                        texts[path] = fs.read_text(path, report=False)
                    raw, number = search_key(texts[path], "UMASK")
                    if raw is not None:
                        raw_source = "%s via %s" % (where(path, number), entry["source"])
                        break
            value = pam_umask_value(raw) if raw is not None else None
            if value is not None:
                mask, source = value, raw_source
            elif raw is not None:
                source = "inherited (%s: %r does not parse as an octal umask)" % (raw_source, raw)
        results.append({"service": service, "value": "%03o" % mask, "source": source, "usergroups": usergroups})
    if not results:
        return None
    common = 0o777
    extra = {}
    for item in results:
        mask = int(item["value"], 8)
        if item["usergroups"]:
            if "usergroups_users" not in extra:
                extra["usergroups_users"] = private_group_users(fs)
            users = extra["usergroups_users"]
            if users is None or users:
                # pam_umask: (mask & ~070) | ((mask >> 3) & 070) -- the owner bits become the group bits;
                # with no readable /etc/passwd the weaker mask is assumed
                private = (mask & ~0o070) | ((mask >> 3) & 0o070)
                item["private_group_value"] = "%03o" % private
                mask &= private
        common &= mask
    if extra.get("usergroups_users"):
        extra["usergroups_users"] = sorted(extra["usergroups_users"])[:20]
    origin = "pam_umask" if any(not item["source"].startswith("inherited") for item in results) else "inherited"
    return mask_info(common, origin, results, **extra)
