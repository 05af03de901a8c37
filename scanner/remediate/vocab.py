"""The closed vocabulary of remediation actions and the `fix:` block of a rule file.

```yaml
fix:
  actions:                       # applied in order; each action is idempotent
  - set_key: {path: /etc/login.defs, key: PASS_MAX_DAYS, value: {param: max_days}}
  requires: [/etc/audit]         # optional: paths that must exist on the target, else "cannot be fixed here"
  when: {fact: pam.quality.module, op: eq, value: pam_pwquality}   # optional: a check on the scanned
                                 # facts; when it does not pass, the fix cannot work on this host
  dangerous: {zh: ..., en: ...}  # optional: applied only with --allow RULE-ID
fix:
  manual: {zh: ..., en: ...}     # deliberately not automated, and why
```
A value may be ``{param: name}`` (a declared param of the rule, tailored by the profile); text in
``lines`` may hold ``{name}`` placeholders of declared params.
"""
from __future__ import absolute_import

import re

FIX_KEYS = ("actions", "dangerous", "manual", "os_family", "requires", "when")

# action -> (required args, optional args); an arg's type is checked in _check_arg
ACTIONS = {
    # KEY<sep>VALUE in a key=value file (login.defs, pwquality.conf, faillock.conf, auditd.conf):
    # every uncommented occurrence is set, the line appended when there is none, the file created when absent
    "set_key": (("path", "key", "value"), ("sep", "mode")),
    # a sysctl: every /etc/sysctl.conf and /etc/sysctl.d/*.conf line that sets it, else
    # /etc/sysctl.d/99-xcscan.conf; live: sysctl -w
    "sysctl": (("key", "value"), ()),
    # an sshd keyword: the first occurrence outside Match in sshd_config and each Include'd file is set,
    # and the line is ensured in sshd_config before the first Include/Match; validated; live: reload sshd
    "sshd": (("keyword", "value"), ()),
    # mode bits outside `mode` removed (never added), owner/group set; missing paths skipped; globs allowed
    "file_mode": (("paths", "mode"), ("owner", "group")),
    # systemd units enabled (WantedBy symlinks) or disabled; live: started / stopped
    "unit": (("names", "state"), ()),
    # each line present in the file (appended when missing), the file created when absent
    "lines": (("path", "lines"), ("mode",)),
    # files removed (globs allowed; the backup keeps them)
    "remove": (("paths",), ()),
    # accounts with an empty password field in /etc/shadow locked ('' -> '!')
    "lock_empty_passwords": ((), ()),
    # PAM module arguments in the stacks of /etc/pam.d (symlinks followed, authselect-aware)
    "pam_arg": (("files", "module", "arg", "state"), ("authselect_feature",)),
}
UNIT_STATES = ("enabled", "disabled")
PAM_STATES = ("absent", "present")
MODE_RE = re.compile(r"^0?[0-7]{3,4}$")
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]*\$?$")


def _is_param(value):
    return isinstance(value, dict) and set(value) == {"param"}


def _check_arg(action, name, value, params, where, problems):
    if _is_param(value):
        if value["param"] not in params:
            problems.append((where, "undeclared param %r (declare it under params)" % value["param"]))
        return
    if name in ("path",) or (name == "files"):
        items = value if name == "files" else [value]
        if not isinstance(items, list) or not items or not all(isinstance(p, str) and p.startswith("/") for p in items):
            problems.append((where, "%s must be an absolute path%s" % (name, " list" if name == "files" else "")))
        return
    if name == "paths":
        if not isinstance(value, list) or not value or not all(isinstance(p, str) and p.startswith("/") for p in value):
            problems.append((where, "paths must be a non-empty list of absolute paths (globs allowed)"))
        return
    if name == "mode":
        if not (isinstance(value, str) and MODE_RE.match(value)):
            problems.append((where, "mode must be an octal string such as \"0600\" (quote it in YAML)"))
        return
    if name in ("owner", "group"):
        if not (isinstance(value, str) and NAME_RE.match(value)):
            problems.append((where, "%s must be a user/group name" % name))
        return
    if name == "key":
        if not (isinstance(value, str) and KEY_RE.match(value)):
            problems.append((where, "key must be a plain key name"))
        return
    if name == "keyword":
        if not (isinstance(value, str) and re.match(r"^[A-Za-z][A-Za-z0-9]*$", value)):
            problems.append((where, "keyword must be an sshd_config keyword such as MaxAuthTries"))
        return
    if name == "value":
        if isinstance(value, bool) or not isinstance(value, (str, int)) or (isinstance(value, str) and (
                not value.strip() or "\n" in value)):
            problems.append((where, "value must be a number or a one-line string (or {param: name})"))
        return
    if name == "sep":
        if value not in (" ", "=", " = ", "\t"):
            problems.append((where, "sep must be one of ' ', '=', ' = ', tab"))
        return
    if name == "names":
        if not isinstance(value, list) or not value or not all(
                isinstance(n, str) and re.match(r"^[A-Za-z0-9@_.:-]+\.(service|socket|timer|path)$", n) for n in value):
            problems.append((where, "names must be a list of systemd unit names (e.g. cups.service)"))
        return
    if name == "state":
        allowed = UNIT_STATES if action == "unit" else PAM_STATES
        if value not in allowed:
            problems.append((where, "state must be one of %s" % ", ".join(allowed)))
        return
    if name == "lines":
        if not isinstance(value, list) or not value or not all(
                isinstance(x, str) and x.strip() and "\n" not in x for x in value):
            problems.append((where, "lines must be a non-empty list of one-line strings"))
        return
    if name in ("module", "arg", "authselect_feature"):
        if not (isinstance(value, str) and re.match(r"^[A-Za-z0-9_.=-]+$", value)):
            problems.append((where, "%s must be a word (e.g. pam_unix.so, nullok)" % name))
        return


def validate_fix(fix, params, problems, where=("fix",)):
    """Append (where, message) problems of a rule's `fix:` block."""
    if not isinstance(fix, dict):
        problems.append((where, "fix must be a mapping with 'actions' (or 'manual')"))
        return
    for key in fix:
        if key not in FIX_KEYS:
            problems.append((where + (key,), "unknown fix field %r; allowed: %s" % (key, ", ".join(FIX_KEYS))))
    if ("actions" in fix) == ("manual" in fix):
        problems.append((where, "fix needs exactly one of 'actions' (automated) or 'manual' (why not)"))
    for field in ("dangerous", "manual"):
        if field in fix:
            pair = fix[field]
            if not (isinstance(pair, dict) and pair.get("zh") and pair.get("en") and set(pair) <= {"zh", "en"}):
                problems.append((where + (field,), "%s must be a mapping with non-empty 'zh' and 'en'" % field))
    if "os_family" in fix:
        fams = fix["os_family"]
        if not isinstance(fams, list) or any(f not in ("rhel", "debian", "suse") for f in fams):
            problems.append((where + ("os_family",), "os_family is a list of rhel, debian, suse"))
    if "requires" in fix:
        req = fix["requires"]
        if not isinstance(req, list) or not req or not all(isinstance(p, str) and p.startswith("/") for p in req):
            problems.append((where + ("requires",), "requires is a list of absolute paths"))
    actions = fix.get("actions")
    if "actions" not in fix:
        return
    if not isinstance(actions, list) or not actions:
        problems.append((where + ("actions",), "actions must be a non-empty list"))
        return
    for i, action in enumerate(actions):
        here = where + ("actions", i)
        if not (isinstance(action, dict) and len(action) == 1):
            problems.append((here, "an action is a mapping with exactly one action name; known: %s"
                             % ", ".join(sorted(ACTIONS))))
            continue
        name, args = list(action.items())[0]
        if name not in ACTIONS:
            problems.append((here, "unknown action %r; known: %s" % (name, ", ".join(sorted(ACTIONS)))))
            continue
        args = {} if args is None else args
        if not isinstance(args, dict):
            problems.append((here + (name,), "the arguments of %s are a mapping" % name))
            continue
        required, optional = ACTIONS[name]
        for arg in required:
            if arg not in args:
                problems.append((here + (name,), "%s needs %r" % (name, arg)))
        for arg, value in args.items():
            if arg not in required and arg not in optional:
                problems.append((here + (name, arg), "unknown argument %r of %s; allowed: %s" % (
                    arg, name, ", ".join(required + optional) or "none")))
                continue
            _check_arg(name, arg, value, params, here + (name, arg), problems)
        if name == "lines" and isinstance(args.get("lines"), list):
            for j, line in enumerate(args["lines"]):
                for ph in re.findall(r"\{([a-z_][a-z0-9_]*)\}", line if isinstance(line, str) else ""):
                    if ph not in params:
                        problems.append((here + (name, "lines", j), "undeclared param {%s} in a line" % ph))


def fix_kind(rule):
    """'automated', 'dangerous', 'manual' or None (no fix block)."""
    fix = rule.get("fix")
    if not fix:
        return None
    if "manual" in fix:
        return "manual"
    return "dangerous" if fix.get("dangerous") else "automated"
