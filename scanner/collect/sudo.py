"""sudo privileges: who may run what as whom, and with or without a password.

/etc/sudoers is parsed with its ``#include``/``@include`` and ``#includedir``/
``@includedir`` directives (files in an included directory that contain a '.'
or end in '~' are skipped, as sudo does). As sudo reads them:

* ``User_Alias``, ``Runas_Alias``, ``Host_Alias`` and ``Cmnd_Alias`` (several
  definitions on one line joined by ':') are expanded, recursively;
* tags (``NOPASSWD:``, ``PASSWD:`` …) and a run-as list carry over to the
  following commands of the same specification until changed;
* ``Defaults !authenticate`` makes every grant password-less and
  ``Defaults:USER !authenticate`` the grants of that user (or User_Alias).

Each user specification becomes one ``grants`` entry: the principal as written
and its ``members`` (aliases expanded), hosts, run-as, the command text,
``expanded`` (each command with its own ``nopasswd``), ``all_commands`` (ALL
granted, directly or through an alias) and ``nopasswd`` (for a grant of ALL:
whether ALL itself needs no password; otherwise: whether any command needs none).
"""
from __future__ import absolute_import

import posixpath
import re

from scanner.collect.baseline_util import logical_lines, where

NAME = "sudo"
LIVE_ONLY = False

MAIN = "/etc/sudoers"
MAX_FILES = 64
MAX_ALIAS_DEPTH = 16
SPEC_RE = re.compile(r"^(?P<who>[^=]+?)\s+(?P<hosts>[^=\s]+)\s*=\s*(?P<rest>.+)$")
ALIAS_RE = re.compile(r"^(User|Runas|Host|Cmnd|Cmd)_Alias\s+(.+)$")
TAG_RE = re.compile(r"^(NOPASSWD|PASSWD|NOEXEC|EXEC|SETENV|NOSETENV|LOG_INPUT|NOLOG_INPUT|LOG_OUTPUT|NOLOG_OUTPUT|"
                    r"MAIL|NOMAIL|FOLLOW|NOFOLLOW|INTERCEPT|NOINTERCEPT)\s*:\s*")
OPTION_RE = re.compile(r"^(ROLE|TYPE|CHROOT|CWD|TIMEOUT|NOTBEFORE|NOTAFTER|APPARMOR_PROFILE|PRIVS|LIMITPRIVS)=\S+\s*")
DEFAULTS_RE = re.compile(r"^Defaults(?:(?P<kind>[:@>!])(?P<target>\S+))?\s*(?P<items>.*)$")


def split_top(text, sep=","):
    """Split on ``sep`` outside parentheses, honouring backslash escapes."""
    out, buf, depth, escaped = [], [], 0, False
    for ch in text:
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\":
            buf.append(ch)
            escaped = True
        elif ch == "(":
            depth += 1
            buf.append(ch)
        elif ch == ")":
            depth = max(0, depth - 1)
            buf.append(ch)
        elif ch == sep and depth == 0:
            out.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
    out.append("".join(buf).strip())
    return [x for x in out if x]


def parse_alias(line, state, src, ctx):
    kind, body = ALIAS_RE.match(line).groups()
    kind = "Cmnd" if kind == "Cmd" else kind
    for definition in split_top(body, ":"):
        name, eq, members = definition.partition("=")
        name = name.strip()
        if not eq or not re.match(r"^[A-Z][A-Z0-9_]*$", name):
            ctx.error(src, "not a sudoers %s_Alias definition: %r" % (kind, definition[:120]))
            continue
        state["aliases"][kind][name] = split_top(members)


def expand(names, aliases, depth=0):
    """Alias names replaced by their members (recursively); '!' negation carried through."""
    out = []
    for raw in names:
        negated = raw.startswith("!")
        name = raw.lstrip("!").strip()
        if name in aliases and depth < MAX_ALIAS_DEPTH:
            for member in expand(aliases[name], aliases, depth + 1):
                flip = member.startswith("!") != negated
                out.append(("!" if flip else "") + member.lstrip("!"))
        else:
            out.append(("!" if negated else "") + name)
    return out


def parse_defaults(line, state):
    match = DEFAULTS_RE.match(line)
    kind, target, items = match.group("kind"), match.group("target"), match.group("items")
    values = {}
    for item in split_top(items):
        key, _, value = item.partition("=")
        key = key.strip()
        values[key.lstrip("!")] = (value.strip().strip('"') or (not key.startswith("!")))
    if kind is None:
        state["defaults"].update(values)
    elif kind == ":":  # per user (or User_Alias)
        for who in split_top(target):
            state["user_defaults"].setdefault(who, {}).update(values)


# Programs that hand whoever runs them through sudo a root shell (GTFOBins "sudo" entries): shells;
# editors, pagers and man (":!sh", "!sh"); interpreters; programs that run other programs (env, find -exec,
# xargs, systemctl/journalctl through their pager, git, docker); programs that write or replace any file
# (cp, mv, tee, dd, chmod, chown -- /etc/sudoers is a file); package managers (a package's scripts run as
# root); su and sudo themselves; and ALL. Arguments do not help: "vi /etc/hosts" still reaches ":!sh".
ROOT_SHELL_PROGRAMS = frozenset((
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "ash", "busybox",
    "vi", "vim", "nvim", "view", "rvim", "vimdiff", "ex", "ed", "nano", "pico", "emacs", "joe", "mcedit",
    "less", "more", "most", "man", "pg",
    "python", "python2", "python3", "perl", "ruby", "irb", "lua", "php", "node", "nodejs", "tclsh", "wish",
    "awk", "gawk", "mawk", "nawk", "expect", "gdb", "strace", "script", "socat",
    "env", "find", "xargs", "nice", "nohup", "timeout", "stdbuf", "taskset", "ionice", "chroot", "unshare",
    "nsenter", "setsid", "flock", "tar", "zip", "rsync", "ssh", "scp", "git", "ftp", "mysql", "psql",
    "systemctl", "journalctl", "systemd-run", "docker", "podman", "crontab", "at",
    "cp", "mv", "tee", "dd", "install", "chmod", "chown", "ln", "rm",
    "yum", "dnf", "rpm", "apt", "apt-get", "aptitude", "dpkg", "pip", "pip3", "zypper", "snap", "make",
    "su", "sudo", "sudoedit", "visudo", "passwd", "useradd", "usermod", "chpasswd",
))
INTERPRETER_RE = re.compile(r"^(python|perl|ruby|php|lua|node)[0-9.]*$")


def gives_root_shell(command):
    """True when running ``command`` through sudo as root hands out a root shell (see ROOT_SHELL_PROGRAMS)."""
    text = command.strip()
    if text.startswith("!"):
        return False  # a negated command takes a permission away
    if text == "ALL":
        return True
    if text.startswith("sudoedit "):
        return False  # sudoedit edits a copy as the user: no shell escape as root
    prog = posixpath.basename(text.split()[0]) if text.split() else ""
    return prog in ROOT_SHELL_PROGRAMS or bool(INTERPRETER_RE.match(prog))


def runs_as_root(runas):
    """The run-as list of a command lets it run as root: none given (root is sudo's default), ALL, root, #0."""
    if runas is None:
        return True
    users = runas.split(":", 1)[0].strip()
    if not users:
        # "()" is root; "(:group)" runs as the invoking user with that group (sudoers(5) Runas_Spec)
        return ":" not in runas
    names = [u.strip() for u in users.split(",")]
    return any(n in ("ALL", "root", "#0") for n in names)


def parse_commands(rest, state, password_less_default):
    """[{command, nopasswd, runas}] of one specification, tags and run-as carried over."""
    entries, runas, nopasswd = [], None, password_less_default
    for part in split_top(rest):
        text = part
        runas_match = re.match(r"^\(([^)]*)\)\s*(.*)$", text)
        if runas_match:
            runas, text = runas_match.group(1).strip(), runas_match.group(2)
        while True:
            option = OPTION_RE.match(text)
            tag = TAG_RE.match(text)
            if option:
                text = text[option.end():]
            elif tag:
                if tag.group(1) == "NOPASSWD":
                    nopasswd = True
                elif tag.group(1) == "PASSWD":
                    nopasswd = False
                text = text[tag.end():]
            else:
                break
        for command in expand([text.strip()], state["aliases"]["Cmnd"]):
            entries.append({"command": command, "nopasswd": nopasswd, "runas": runas})
    return entries


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
                for name in sorted(ctx.fs.listdir(target) or []):
                    if "." in name or name.endswith("~"):
                        continue
                    parse_file(ctx, posixpath.join(target, name), state, depth + 1)
            continue
        if line.startswith("#"):
            continue
        if line.startswith("Defaults"):
            parse_defaults(line, state)
            continue
        if ALIAS_RE.match(line):
            parse_alias(line, state, src, ctx)
            continue
        match = SPEC_RE.match(line)
        if not match:
            ctx.error(src, "not a sudoers user specification: %r" % line[:120])
            continue
        state["specs"].append((match.group("who"), match.group("hosts"), match.group("rest"), src))


def grants(state):
    """User specifications resolved with every alias and Defaults read (sudo reads the whole
    file before deciding, so an alias defined after its use still applies)."""
    out = []
    users = state["aliases"]["User"]
    for who_text, hosts, rest, src in state["specs"]:
        for who in split_top(who_text):
            members = [m for m in expand([who], users) if not m.startswith("!")]
            scoped = [state["user_defaults"].get(name, {}) for name in [who] + members]
            authenticate = state["defaults"].get("authenticate", True)
            for values in scoped:
                if "authenticate" in values:
                    authenticate = values["authenticate"]
            entries = parse_commands(rest, state, authenticate is False)
            all_entries = [e for e in entries if e["command"] == "ALL"]
            runas = entries[0]["runas"] if entries else None
            out.append({
                "principal": who, "members": members, "hosts": hosts, "runas": runas,
                "commands": rest.strip(), "expanded": entries,
                "all_commands": bool(all_entries),
                "nopasswd": any(e["nopasswd"] for e in (all_entries or entries)),
                "nopasswd_root_shell": [e["command"] for e in entries if e["nopasswd"] and runs_as_root(e["runas"])
                                        and gives_root_shell(e["command"])],
                "source": src})
    return out


def collect(ctx):
    if not ctx.fs.exists(MAIN):
        return {"installed": False, "files": [], "grants": [], "defaults": {}, "nopasswd_all": []}
    state = {"files": [], "specs": [], "defaults": {}, "user_defaults": {},
             "aliases": {"User": {}, "Runas": {}, "Host": {}, "Cmnd": {}}}
    parse_file(ctx, MAIN, state)
    resolved = grants(state)
    return {
        "installed": True, "files": state["files"], "grants": resolved, "defaults": state["defaults"],
        "user_defaults": state["user_defaults"],
        "aliases": dict((k, v) for k, v in state["aliases"].items() if v),
        "nopasswd_all": [g["principal"] for g in resolved if g["nopasswd"] and g["all_commands"]],
    }
