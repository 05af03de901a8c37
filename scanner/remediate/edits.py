"""Pure text transforms, one per text-editing action.

Each is written so that the shell prelude (prelude.sh) and the Ansible tasks (ansible.py) can do
exactly the same thing: the regular expressions below are the ones the playbook hands to
``ansible.builtin.replace`` / ``lineinfile``, and "ensure a line" follows lineinfile's rules (an
exact line anywhere counts; otherwise insert before the first line matching ``insertbefore``, or
append, adding the missing final newline first).
"""
from __future__ import absolute_import

import re


# ------------------------------------------------------------------ regexes shared with Ansible
def key_regex(key):
    """An uncommented ``KEY value`` / ``KEY=value`` line (login.defs, pwquality.conf, auditd.conf)."""
    return r"^[ \t]*%s(?:[ \t=].*)?$" % re.escape(key)


def sysctl_regex(key):
    """A sysctl.d line setting ``key`` ('-' prefix = ignore errors, systemd-sysctl)."""
    return r"^[ \t]*-?%s[ \t]*=.*$" % re.escape(key)


def sysctl_wrong_value_regex(key, value):
    return r"^[ \t]*-?%s[ \t]*=(?![ \t]*%s[ \t]*$).*$" % (re.escape(key), re.escape(str(value)))


def sshd_first_global_regex(keyword):
    """The first ``keyword`` line of a file that comes before any Match line (sshd: first value wins;
    a Match block ends at the end of its file)."""
    return (r"(?i)\A(?P<pre>(?:(?![ \t]*match[ \t])[^\n]*\n)*?)[ \t]*%s(?:[ \t]*=[ \t]*|[ \t]+)[^\n]*"
            % re.escape(keyword))


SSHD_INSERT_BEFORE = r"^[ \t]*(?i:include|match)[ \t]"


def pam_arg_absent_regex(module, arg):
    """``arg`` (or ``arg=...``) on a line whose module is ``module``; group 1 keeps the rest of the line."""
    return (r"(?m)^([ \t]*-?[A-Za-z]+[ \t]+(?:\[[^\]\n]*\]|[^ \t\n]+)[ \t]+(?:[^ \t\n]*/)?%s(?:[ \t][^\n]*?)?)"
            r"[ \t]+%s(?:=[^ \t\n]*)?(?=[ \t]|$)" % (re.escape(module), re.escape(arg)))


# ------------------------------------------------------------------ line helpers (lineinfile rules)
def _lines(text):
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n") if text else []


def ensure_line(text, line, insertbefore=None):
    """lineinfile(line=..., insertbefore=..., firstmatch=yes) without regexp."""
    text = text or ""
    current = _lines(text)
    if any(c.rstrip("\r") == line for c in current):
        return text
    if insertbefore:
        pat = re.compile(insertbefore)
        for i, c in enumerate(current):
            if pat.search(c):
                out = current[:i] + [line] + current[i:]
                return "\n".join(out) + "\n"
    if text and not text.endswith("\n"):
        text += "\n"
    return text + line + "\n"


def key_wrong_value_regex(key, value):
    """An uncommented ``key`` line whose value is not ``value`` (lines already right are left as written)."""
    return r"^[ \t]*%s(?![ \t]*[ \t=][ \t]*%s[ \t]*$)(?:[ \t=].*)?$" % (re.escape(key), re.escape(str(value)))


def set_key(text, key, value, sep=" "):
    """Every uncommented occurrence of ``key`` with another value set to ``value``; the line appended
    when there is none."""
    canonical = "%s%s%s" % (key, sep, value)
    text = re.sub(key_wrong_value_regex(key, value), lambda m: canonical, text or "", flags=re.M)
    if re.search(key_regex(key), text, flags=re.M):
        return text
    return ensure_line(text, canonical)


def set_sysctl_lines(text, key, value):
    """Every line of this file that sets ``key`` rewritten (no line added)."""
    canonical = "%s = %s" % (key, value)
    return re.sub(sysctl_wrong_value_regex(key, value), lambda m: canonical, text, flags=re.M)


def sysctl_sets(text, key):
    return re.search(sysctl_regex(key), text or "", flags=re.M) is not None


def sshd_set_first(text, keyword, value):
    canonical = "%s %s" % (keyword, value)
    return re.sub(sshd_first_global_regex(keyword), lambda m: m.group("pre") + canonical, text or "",
                  count=1, flags=re.M)


def sshd_ensure(text, keyword, value):
    return ensure_line(text, "%s %s" % (keyword, value), insertbefore=SSHD_INSERT_BEFORE)


def pam_arg_absent(text, module, arg):
    pat = re.compile(pam_arg_absent_regex(module, arg))
    prev = None
    while prev != text:  # an argument given twice on one line
        prev, text = text, pat.sub(lambda m: m.group(1), text)
    return text


def lock_empty_passwords(text):
    """/etc/shadow: an empty password field becomes '!' (locked; usermod -L does the same)."""
    out = []
    for line in _lines(text):
        parts = line.split(":")
        if len(parts) >= 2 and parts[0] and parts[1] == "":
            parts[1] = "!"
            line = ":".join(parts)
        out.append(line)
    return "\n".join(out) + ("\n" if out else "")


def empty_password_accounts(text):
    return [line.split(":")[0] for line in _lines(text or "")
            if len(line.split(":")) >= 2 and line.split(":")[0] and line.split(":")[1] == ""]
