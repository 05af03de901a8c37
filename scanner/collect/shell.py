"""Shell-level session settings: TMOUT (idle logout) and umask, plus history settings.

Files are read in the order a login shell sources them: /etc/profile,
/etc/profile.d/*.sh, /etc/bashrc (RHEL), /etc/bash.bashrc (Debian).

* TMOUT: the last assignment wins unless an earlier one made it ``readonly``
  (later assignments then fail in bash). A non-numeric value such as ``300s``
  is ignored by bash, so ``seconds`` is 0 (no timeout) and ``valid`` false.
* umask: every ``umask`` command found counts; since profile and bashrc set
  it at different points and often per UID, the effective mask is the bits
  common to all of them (the weakest), falling back to login.defs UMASK
  (applied by pam_umask / login) when no shell file sets one.
"""
from __future__ import absolute_import

import re

from scanner.collect.baseline_util import logical_lines, where

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
        umask = login_defs_umask(fs)
    hist = {}
    for name in ("HISTSIZE", "HISTFILESIZE", "HISTTIMEFORMAT"):
        if name in variables:
            hist[name.lower()] = variables[name]["raw"]
            hist[name.lower() + "_source"] = variables[name]["source"]
    return {"files": read, "tmout": tmout, "umask": umask, "history": hist}


def login_defs_umask(fs):
    text = fs.read_text("/etc/login.defs", report=False) or ""
    value, source = "022", "default (no umask in shell files or login.defs)"
    for number, line in logical_lines(text, continuation=False):
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "UMASK" and re.match(r"^0?[0-7]{3}$", parts[1]):
            value, source = "%03o" % int(parts[1], 8), where("/etc/login.defs", number)
    mask = int(value, 8)
    return {"value": value, "group": (mask >> 3) & 7, "other": mask & 7, "origin": "login.defs",
            "settings": [{"value": value, "source": source}]}
