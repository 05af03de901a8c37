"""Plan fixes: run the rules' actions on an overlay of the target root.

``plan(root, items)`` takes [(rule, params)] and returns a Plan: per rule the file changes it makes
(on top of the rules before it), the commands a live host runs afterwards (sysctl -w,
augenrules --load, systemctl start/stop, sshd reload, auditd's SIGHUP) and the rules that cannot be fixed here
with the reason. The same semantics are implemented by prelude.sh (bash) and ansible.py.
"""
from __future__ import absolute_import

import os
import posixpath
import re

from scanner.errors import XcscanError
from scanner.remediate import edits
from scanner.remediate.overlay import Overlay, State
from scanner.remediate.params import resolve

SYSCTL_DROPIN = "/etc/sysctl.d/99-xcscan.conf"
SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")
SSHD_CONFIG = "/etc/ssh/sshd_config"
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
             "/usr/lib/systemd/system", "/lib/systemd/system")


class CannotFix(XcscanError):
    """This host lacks what the fix needs (a unit that is not installed, a PAM module not in the stack)."""


class RulePlan(object):
    def __init__(self, rule, params):
        self.rule, self.params = rule, params
        self.changes = []      # [(path, before State, after State)]
        self.commands = []     # [argv] run on a live host after the files are written
        self.notes = []        # things the user should know ({zh, en} pairs)
        self.skipped = None    # reason ({zh,en}) when the rule cannot be fixed here
        self.validate = set()  # 'sshd', 'pam'

    @property
    def rule_id(self):
        return self.rule["id"]


class Plan(object):
    def __init__(self, root, live):
        self.root, self.live = root, live
        self.rules = []
        self.overlay = None

    def changes(self):
        return self.overlay.changes() if self.overlay else []

    def applicable(self):
        return [rp for rp in self.rules if rp.skipped is None]

    def touches_sshd(self):
        """An sshd fix, or any change to sshd_config or its drop-ins: validated before writing, and
        on a running system `sshd -t` after writing, before the reload."""
        return any("sshd" in rp.validate for rp in self.applicable()) or \
            any(path.startswith(SSHD_CONFIG) for path, before, after in self.changes())


def in_chroot(proc="/proc"):
    """True when this process runs in a chroot: ``/`` is not the root of PID 1, or there is no /proc
    at all (an image being built). There the fix edits files as in an image and runs no command
    against the system outside (sysctl -w, systemctl, sshd reload, augenrules)."""
    if not os.path.isdir(os.path.join(proc, "1")):
        return True
    try:
        theirs = os.stat(os.path.join(proc, "1", "root") + "/")
        ours = os.stat("/")
    except OSError:  # PID 1 not ours to inspect (unprivileged): a running system
        return False
    return (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino)


def plan(root, items, live=None):
    root = os.path.abspath(root or "/")
    live = (root == "/" and not in_chroot()) if live is None else live
    out = Plan(root, live)
    overlay = Overlay(root)
    out.overlay = overlay
    for rule, params in items:
        rp = RulePlan(rule, params)
        out.rules.append(rp)
        snapshot = dict(overlay.current)
        order = list(overlay.order)
        try:
            for path in (rule.get("fix") or {}).get("requires") or []:
                if ov_missing(overlay, path):
                    raise CannotFix("%s does not exist on the target (the software this fix configures is "
                                    "not installed)" % path)
            for action in (rule.get("fix") or {}).get("actions") or []:
                name, args = list(action.items())[0]
                args = resolve(args or {}, params)
                ACTIONS[name](overlay, rp, args)
        except CannotFix as exc:
            overlay.current, overlay.order = snapshot, order
            from scanner.i18n import message
            rp.skipped = {"en": str(exc), "zh": message(str(exc), "zh")}   # scanner/locale/messages.zh.yaml
            rp.commands = []
            continue
        for path in overlay.order:
            before = snapshot.get(path, overlay.original.get(path))
            if before != overlay.current[path]:
                rp.changes.append((path, before, overlay.current[path]))
        if not live:
            rp.commands = []
    return out


def ov_missing(overlay, path):
    try:
        return overlay.get(overlay.resolve(path)).kind is None
    except XcscanError:
        return True


# ------------------------------------------------------------------ actions
def _set_key(ov, rp, a):
    path = ov.resolve(a["path"])
    mode = int(a.get("mode") or "0644", 8)
    text = ov.read_text(path)
    if text is None and ov.get(path).kind not in (None,):
        raise CannotFix("%s is not a regular file" % a["path"])
    new = edits.set_key(text, a["key"], a["value"], a.get("sep", " "))
    ov.write_text(path, new, mode=mode)
    if a["path"] == AUDITD_CONF:
        rp.commands.append(list(AUDITD_RELOAD))


# auditd reads auditd.conf at start and again on SIGHUP ("causes auditd to reconfigure ... re-reads the
# configuration file", auditd(8)); its unit has no ExecReload and refuses a manual stop (audit-userspace
# init.d/auditd.service: RefuseManualStop=yes), so `systemctl reload` cannot do it. pkill exits 1 when no
# auditd runs: nothing to reconfigure then, its next start reads the file (apply.py accepts that).
AUDITD_CONF = "/etc/audit/auditd.conf"
AUDITD_RELOAD = ("pkill", "-HUP", "-x", "auditd")


def sysctl_files(ov):
    """Files systemd-sysctl reads, in its order: by file name across the directories (the first
    directory holding a name wins), then /etc/sysctl.conf last."""
    chosen = {}
    for d in SYSCTL_DIRS:
        for p in ov.glob(d + "/*.conf"):
            chosen.setdefault(posixpath.basename(p), p)
    files = [chosen[n] for n in sorted(chosen)]
    if ov.get("/etc/sysctl.conf").kind in ("file", "link"):
        files.append("/etc/sysctl.conf")
    return files


def _sysctl(ov, rp, a):
    key, value = a["key"], a["value"]
    etc_setting = False
    for path in [p for p in sysctl_files(ov) if p.startswith("/etc/")]:
        real = ov.resolve(path)
        text = ov.read_text(real)
        if text is not None and edits.sysctl_sets(text, key):
            etc_setting = True
            ov.write_text(real, edits.set_sysctl_lines(text, key, value))
    if not etc_setting:
        text = ov.read_text(SYSCTL_DROPIN)
        ov.write_text(SYSCTL_DROPIN, edits.set_key(text, key, value, " = "))
    # the value in force is the last file (systemd order) that sets the key: it must be ours
    last = None
    for path in sysctl_files(ov):
        if edits.sysctl_sets(ov.read_text(ov.resolve(path)) or "", key):
            last = path
    if last is not None and not last.startswith("/etc/"):
        raise CannotFix("%s sets %s and is read after /etc/sysctl.d/99-xcscan.conf; override that file "
                        "in /etc/sysctl.d under the same name" % (last, key))
    rp.commands.append(["sysctl", "-q", "-w", "%s=%s" % (key, value)])


def sshd_files(ov):
    """sshd_config and the files its own Include lines name (globs relative to /etc/ssh), in order.
    Crypto-policy back-ends are left to update-crypto-policies."""
    text = ov.read_text(ov.resolve(SSHD_CONFIG))
    if text is None:
        raise CannotFix("%s does not exist (sshd is not installed?)" % SSHD_CONFIG)
    files = [SSHD_CONFIG]
    for line in text.splitlines():
        m = re.match(r"^[ \t]*include[ \t]+(.+)$", line, re.I)
        if not m:
            continue
        for pattern in m.group(1).split():
            if not pattern.startswith("/"):
                pattern = "/etc/ssh/" + pattern
            for path in ov.glob(pattern):
                if path not in files and not path.startswith("/etc/crypto-policies/") and \
                        ov.get(ov.resolve(path)).kind == "file":
                    files.append(path)
    return files


def _sshd(ov, rp, a):
    keyword, value = a["keyword"], a["value"]
    files = sshd_files(ov)
    for path in files:
        real = ov.resolve(path)
        text = ov.read_text(real)
        ov.write_text(real, edits.sshd_set_first(text, keyword, value))
    main = ov.resolve(SSHD_CONFIG)
    ov.write_text(main, edits.sshd_ensure(ov.read_text(main), keyword, value))
    rp.validate.add("sshd")
    rp.commands.append(["systemctl", "try-reload-or-restart", "sshd.service", "ssh.service"])


def mode_symbolic(mask):
    """'0640' -> 'u-xs,g-wxs,o-rwxt': the bits outside the mask removed (chmod and Ansible file mode)."""
    mask = int(mask, 8)
    parts = []
    for who, shift, special, sbit in (("u", 6, "s", 0o4000), ("g", 3, "s", 0o2000), ("o", 0, "t", 0o1000)):
        drop = "".join(c for c, bit in (("r", 4), ("w", 2), ("x", 1)) if not (mask >> shift) & bit)
        if not mask & sbit:
            drop += special
        if drop:
            parts.append("%s-%s" % (who, drop))
    return ",".join(parts) or "u+"


def _ids(ov, table):
    ids = {}
    for line in (ov.read_text(ov.resolve("/etc/" + table)) or "").splitlines():
        parts = line.split(":")
        if len(parts) > 2 and parts[2].isdigit():
            ids.setdefault(parts[0], int(parts[2]))
    return ids


def _file_mode(ov, rp, a):
    mask = int(a["mode"], 8)
    uid = gid = None
    if a.get("owner"):
        uid = _ids(ov, "passwd").get(a["owner"])
        if uid is None:
            raise CannotFix("user %s is not in the target's /etc/passwd" % a["owner"])
    if a.get("group"):
        gid = _ids(ov, "group").get(a["group"])
        if gid is None:
            raise CannotFix("group %s is not in the target's /etc/group" % a["group"])
    for pattern in a["paths"]:
        for path in ov.glob(pattern):
            real = ov.resolve(path)
            st = ov.get(real)
            if st.kind not in ("file", "dir"):
                continue
            new = st.copy(mode=st.mode & mask, uid=st.uid if uid is None else uid, gid=st.gid if gid is None else gid)
            if new != st:
                ov.put(real, new)


def unit_file(ov, name):
    for d in UNIT_DIRS:
        path = d + "/" + name
        st = ov.get(path)
        if st.kind == "link" and st.data == "/dev/null":
            return path, None
        if st.kind in ("file", "link"):
            return path, ov.read_text(ov.resolve(path))
    return None, None


def install_targets(text):
    """WantedBy=/RequiredBy= of the [Install] section: [(target, 'wants'|'requires')]."""
    out, section = [], None
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
            continue
        if section != "[Install]" or "=" not in line:
            continue
        key, value = [s.strip() for s in line.split("=", 1)]
        if key in ("WantedBy", "RequiredBy"):
            for target in value.split():
                out.append((target, "wants" if key == "WantedBy" else "requires"))
    return out


def _unit(ov, rp, a):
    for name in a["names"]:
        links = [p for p in ov.glob("/etc/systemd/system/*.wants/" + name) + ov.glob(
            "/etc/systemd/system/*.requires/" + name) if ov.get(p).kind == "link"]
        if a["state"] == "disabled":
            for path in links:
                ov.put(path, State(None))
            if links:
                rp.commands.append(["systemctl", "disable", "--now", name])
            continue
        path, text = unit_file(ov, name)
        if path is None:
            raise CannotFix("unit %s is not installed (install its package first)" % name)
        if text is None:
            raise CannotFix("unit %s is masked (systemctl unmask %s)" % (name, name))
        targets = install_targets(text)
        if not targets:
            raise CannotFix("unit %s has no [Install] WantedBy=; it cannot be enabled" % name)
        for target, kind in targets:
            link = "/etc/systemd/system/%s.%s/%s" % (target, kind, name)
            if ov.get(link).kind is None:
                ov.ensure_dir(posixpath.dirname(link))
                ov.put(link, State("link", path, None, 0, 0))
        rp.commands.append(["systemctl", "enable", "--now", name])


def _lines(ov, rp, a):
    path = ov.resolve(a["path"])
    text = ov.read_text(path)
    if text is None and ov.get(path).kind is not None:
        raise CannotFix("%s is not a regular file" % a["path"])
    new = text or ""
    for line in a["lines"]:
        new = edits.ensure_line(new, line)
    ov.write_text(path, new, mode=int(a.get("mode") or "0644", 8))
    if a["path"].startswith("/etc/audit/rules.d/"):
        rp.commands.append(["augenrules", "--load"])


def _remove(ov, rp, a):
    for pattern in a["paths"]:
        for path in ov.glob(pattern):
            if ov.get(path).kind in ("file", "link"):
                ov.put(path, State(None))


def _lock_empty(ov, rp, a):
    text = ov.read_text("/etc/shadow")
    if text is None:
        raise CannotFix("/etc/shadow cannot be read")
    ov.write_text("/etc/shadow", edits.lock_empty_passwords(text))


def authselect_managed(ov):
    return ov.get("/etc/authselect/authselect.conf").kind == "file"


def _pam_arg(ov, rp, a):
    if a["state"] != "absent":
        raise CannotFix("pam_arg state present is not implemented")
    feature = a.get("authselect_feature")
    if authselect_managed(ov) and feature:
        # authselect regenerates /etc/authselect/*; record the feature so `authselect apply-changes`
        # produces the same files, and edit them as the feature would
        conf = ov.resolve("/etc/authselect/authselect.conf")
        ov.write_text(conf, edits.ensure_line(ov.read_text(conf), feature))
        rp.commands.append(["authselect", "enable-feature", feature])
    elif authselect_managed(ov):
        raise CannotFix("authselect manages PAM here and this fix has no authselect feature")
    for path in a["files"]:
        real = ov.resolve(path)
        text = ov.read_text(real)
        if text is None:
            continue
        ov.write_text(real, edits.pam_arg_absent(text, a["module"], a["arg"]))
    rp.validate.add("pam")


ACTIONS = {
    "set_key": _set_key,
    "sysctl": _sysctl,
    "sshd": _sshd,
    "file_mode": _file_mode,
    "unit": _unit,
    "lines": _lines,
    "remove": _remove,
    "lock_empty_passwords": _lock_empty,
    "pam_arg": _pam_arg,
}
