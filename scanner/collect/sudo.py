"""sudo privileges: who may run what as whom, and with or without a password.

/etc/sudoers is parsed with its ``#include``/``@include`` and ``#includedir``/
``@includedir`` directives (files in an included directory that contain a '.'
or end in '~' are skipped, as sudo does). User/host/command aliases are not
expanded; each user specification becomes one ``grants`` entry with the
principal, run-as list, commands and whether NOPASSWD applies.
"""
from __future__ import absolute_import

import posixpath
import re

from scanner.collect.baseline_util import logical_lines, where

NAME = "sudo"
LIVE_ONLY = False

MAIN = "/etc/sudoers"
MAX_FILES = 64
SPEC_RE = re.compile(r"^(?P<who>[^=]+?)\s+(?P<hosts>[^=\s]+)\s*=\s*(?P<rest>.+)$")


def parse_file(ctx, path, state, depth=0):
    if depth > 8 or len(state["files"]) >= MAX_FILES or path in state["files"]:
        return
    text = ctx.fs.read_text(path)
    if text is None:
        return
    state["files"].append(path)
    for number, line in logical_lines(text, comment_chars=""):
        src = where(path, number)
        directive = re.match(r"^[#@](include|includedir)\s+(\S+)", line)
        if directive:
            kind, target = directive.groups()
            if not target.startswith("/"):
                target = posixpath.join(posixpath.dirname(path), target)
            if kind == "include":
                parse_file(ctx, target, state, depth + 1)
            else:
                for name in ctx.fs.listdir(target) or []:
                    if "." in name or name.endswith("~"):
                        continue
                    parse_file(ctx, posixpath.join(target, name), state, depth + 1)
            continue
        if line.startswith("#"):
            continue
        if line.startswith("Defaults"):
            for item in re.split(r",\s*", line.split(None, 1)[1] if " " in line else ""):
                key, _, value = item.partition("=")
                key = key.strip()
                state["defaults"][key.lstrip("!")] = (value.strip().strip('"') or (not key.startswith("!")))
            continue
        if re.match(r"^(User|Runas|Host|Cmnd)_Alias\b", line):
            continue
        match = SPEC_RE.match(line)
        if not match:
            ctx.error(src, "not a sudoers user specification: %r" % line[:120])
            continue
        rest = match.group("rest")
        runas = None
        runas_match = re.match(r"^\(([^)]*)\)\s*(.*)$", rest)
        if runas_match:
            runas, rest = runas_match.groups()
        tags = re.findall(r"\b(NOPASSWD|PASSWD|NOEXEC|EXEC|SETENV|NOSETENV|LOG_INPUT|LOG_OUTPUT):", rest)
        commands = re.sub(r"\b[A-Z_]+:\s*", "", rest).strip()
        switches = [t for t in tags if t in ("NOPASSWD", "PASSWD")]
        nopasswd = (switches[-1] == "NOPASSWD") if switches else state["defaults"].get("authenticate") is False
        for who in [w.strip() for w in match.group("who").split(",") if w.strip()]:
            state["grants"].append({
                "principal": who, "hosts": match.group("hosts"), "runas": runas,
                "commands": commands, "nopasswd": nopasswd,
                "all_commands": bool(re.match(r"^ALL\s*$", commands)), "source": src})


def collect(ctx):
    if not ctx.fs.exists(MAIN):
        return {"installed": False, "files": [], "grants": [], "defaults": {}, "nopasswd_all": []}
    state = {"files": [], "grants": [], "defaults": {}}
    parse_file(ctx, MAIN, state)
    state["installed"] = True
    state["nopasswd_all"] = [g["principal"] for g in state["grants"] if g["nopasswd"] and g["all_commands"]]
    return state
