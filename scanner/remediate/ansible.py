"""--script ansible: a playbook built as data (builtin modules only: lineinfile, replace, find,
file, systemd, command) and dumped as YAML. ``xcscan_root`` (default "") prefixes every path, so
``-e xcscan_root=/mnt/image -c local`` fixes an offline image; commands that change the running
system (sysctl -w, augenrules, service reloads) run only when it is empty.
"""
from __future__ import absolute_import

import posixpath
import re

from scanner.remediate import edits
from scanner.remediate.params import resolve, title_text
from scanner.remediate.planner import AUDITD_CONF, AUDITD_RELOAD, UNIT_DIRS, mode_symbolic

R = "{{ xcscan_root }}"
LIVE = "xcscan_root == ''"


def _p(path):
    return R + path


def _find(path_glob, reg, contains=None, file_type="file"):
    task = {"ansible.builtin.find": {"paths": _p(posixpath.dirname(path_glob) or "/"),
                                     "patterns": posixpath.basename(path_glob), "file_type": file_type,
                                     "hidden": True},
            "register": reg}
    if contains:
        task["ansible.builtin.find"]["contains"] = contains
    return task


def _has_glob(text):
    return any(c in text for c in "*?[")


def _find_globs(globs, reg, file_type):
    """find tasks for target globs (one per directory; globs in directory parts become a bounded
    recursive search) and the Jinja expression of the matching files, filtered by the full glob."""
    import fnmatch
    groups = {}
    for pattern in globs:
        parts = pattern.strip("/").split("/")
        fixed = []
        for part in parts[:-1]:
            if _has_glob(part):
                break
            fixed.append(part)
        prefix = "/" + "/".join(fixed)
        depth = len(parts) - len(fixed)
        groups.setdefault((prefix, depth), []).append(pattern)
    tasks, names = [], []
    for i, ((prefix, depth), patterns) in enumerate(sorted(groups.items())):
        r = "%s_%d" % (reg, i)
        spec = {"paths": _p(prefix), "patterns": sorted(set(posixpath.basename(p) for p in patterns)),
                "file_type": file_type, "hidden": True}
        if depth > 1:
            spec.update({"recurse": True, "depth": depth})
        tasks.append({"ansible.builtin.find": spec, "register": r})
        names.append(r)
    regex = "(%s)$" % "|".join(fnmatch.translate(g).replace("\\Z", "").replace("(?s:", "(?:") for g in globs)
    expr = ("(%s) | rejectattr('islnk') | selectattr('path', 'match', (xcscan_root | regex_escape) ~ xc_glob) | list"
            % " + ".join("%s.files" % r for r in names))
    return tasks, expr, {"xc_glob": regex}


def _stat(path, reg):
    return {"ansible.builtin.stat": {"path": _p(path)}, "register": reg + "_st"}


def _create_mode(reg, mode):
    """lineinfile sets `mode` on an existing file too; the planner keeps an existing file's mode (0640
    auditd.conf stays 0640), so the mode is given only when the file is created."""
    return "{{ omit if %s_st.stat.exists else '%s' }}" % (reg, mode)


def action_tasks(name, a, n):
    reg = "xc_%d" % n
    if name == "set_key":
        line = "%s%s%s" % (a["key"], a.get("sep", " "), a["value"])
        return [_stat(a["path"], reg),
                {"ansible.builtin.lineinfile": {"path": _p(a["path"]), "regexp": edits.key_regex(a["key"]),
                                                "line": line, "create": True,
                                                "mode": _create_mode(reg, a.get("mode", "0644"))}},
                {"ansible.builtin.replace": {"path": _p(a["path"]),
                                             "regexp": edits.key_wrong_value_regex(a["key"], a["value"]),
                                             "replace": line.replace("\\", "\\\\")}}] + (
            # auditd re-reads auditd.conf on SIGHUP (planner.AUDITD_RELOAD); rc 1: none running
            [{"ansible.builtin.command": {"argv": list(AUDITD_RELOAD)}, "when": LIVE, "changed_when": False,
              "register": "xcscan_auditd_hup", "failed_when": "xcscan_auditd_hup.rc > 1"}]
            if a["path"] == AUDITD_CONF else [])
    if name == "sysctl":
        line = "%s = %s" % (a["key"], a["value"])
        regex = edits.sysctl_regex(a["key"])
        return [_find("/etc/sysctl.d/*.conf", reg + "_d", contains=regex),
                _find("/etc/sysctl.conf", reg + "_c", contains=regex),
                {"ansible.builtin.replace": {"path": "{{ item.path }}", "replace": line,
                                             "regexp": edits.sysctl_wrong_value_regex(a["key"], a["value"])},
                 "loop": "{{ %s_d.files + %s_c.files }}" % (reg, reg), "loop_control": {"label": "{{ item.path }}"}},
                {"ansible.builtin.lineinfile": {"path": _p("/etc/sysctl.d/99-xcscan.conf"), "line": line,
                                                "regexp": edits.key_regex(a["key"]), "create": True, "mode": "0644"},
                 "when": "(%s_d.files + %s_c.files) | length == 0" % (reg, reg)},
                {"ansible.builtin.command": {"argv": ["sysctl", "-q", "-w", "%s=%s" % (a["key"], a["value"])]},
                 "when": LIVE, "changed_when": False}]
    if name == "sshd":
        line = "%s %s" % (a["keyword"], a["value"])
        return [_find("/etc/ssh/sshd_config.d/*.conf", reg),
                {"ansible.builtin.replace": {"path": "{{ item }}", "regexp": edits.sshd_first_global_regex(a["keyword"]),
                                             "replace": "\\g<pre>" + line},
                 "loop": "{{ [xcscan_root + '/etc/ssh/sshd_config'] + (%s.files | map(attribute='path') | list) }}" % reg},
                # the regexp is the line itself: present anywhere (say, corrected in place after an
                # Include), it is left alone as by the planner; without a regexp lineinfile inserts it
                # again before the Include
                {"ansible.builtin.lineinfile": {"path": _p("/etc/ssh/sshd_config"), "line": line,
                                                "regexp": "^%s$" % re.escape(line),
                                                "insertbefore": edits.SSHD_INSERT_BEFORE, "firstmatch": True}},
                {"ansible.builtin.command": {"argv": ["sshd", "-t"]}, "when": LIVE, "changed_when": False},
                {"ansible.builtin.command": {"argv": ["systemctl", "try-reload-or-restart", "sshd.service",
                                                     "ssh.service"]}, "when": LIVE, "changed_when": False,
                 "failed_when": False}]
    if name == "file_mode":
        tasks, files, task_vars = _find_globs(a["paths"], reg, "any")
        spec = {"path": "{{ item.path }}", "mode": mode_symbolic(a["mode"])}
        if a.get("owner"):
            spec["owner"] = "{{ %s_uid }}" % reg
        if a.get("group"):
            spec["group"] = "{{ %s_gid }}" % reg
        tasks.append({"ansible.builtin.file": spec, "loop": "{{ %s }}" % files, "vars": task_vars,
                      "loop_control": {"label": "{{ item.path }}"}})
        return _owner_tasks(a, reg) + tasks
    if name == "unit":
        if a["state"] == "disabled":
            return [
                {"ansible.builtin.service_facts": {}, "when": LIVE},
                {"ansible.builtin.systemd": {"name": "{{ item }}", "enabled": False, "state": "stopped"},
                 "loop": list(a["names"]), "when": [LIVE, "item in ansible_facts.services"]},
                {"ansible.builtin.find": {"paths": _p("/etc/systemd/system"), "patterns": list(a["names"]),
                                          "file_type": "link", "recurse": True, "depth": 2},
                 "register": reg, "when": "xcscan_root != ''"},
                {"ansible.builtin.file": {"path": "{{ item.path }}", "state": "absent"},
                 "loop": "{{ %s.files | selectattr('path', 'match', '.*\\.(wants|requires)/[^/]+$') | list }}" % reg,
                 "loop_control": {"label": "{{ item.path }}"}, "when": "xcscan_root != ''"}]
        tasks = []
        for i, unit in enumerate(a["names"]):
            r = "%s_%d" % (reg, i)
            installed = "%s_file.matched > 0" % r  # a unit that is not installed is skipped, as by the planner
            tasks += [
                {"ansible.builtin.find": {"paths": [_p(d) for d in UNIT_DIRS], "patterns": unit, "file_type": "any"},
                 "register": r + "_file"},
                {"ansible.builtin.systemd": {"name": unit, "enabled": True, "state": "started"},
                 "when": [LIVE, installed]},
                {"ansible.builtin.command": {"argv": ["systemctl", "--root=" + R, "is-enabled", unit]},
                 "register": r + "_state", "changed_when": False, "failed_when": False,
                 "when": ["xcscan_root != ''", installed]},
                {"ansible.builtin.command": {"argv": ["systemctl", "--root=" + R, "enable", unit]},
                 "when": ["xcscan_root != ''", installed, "%s_state.rc != 0" % r]}]
        return tasks
    if name == "lines":
        return [_stat(a["path"], reg)] + [
            {"ansible.builtin.lineinfile": {"path": _p(a["path"]), "line": line, "create": True,
                                            "mode": _create_mode(reg, a.get("mode", "0644"))}}
            for line in a["lines"]] + (
            [{"ansible.builtin.command": {"argv": ["augenrules", "--load"]}, "when": LIVE, "changed_when": False}]
            if a["path"].startswith("/etc/audit/rules.d/") else [])
    if name == "remove":
        tasks, files, task_vars = _find_globs(a["paths"], reg, "any")
        tasks.append({"ansible.builtin.file": {"path": "{{ item.path }}", "state": "absent"}, "vars": task_vars,
                      "loop": "{{ %s }}" % files.replace("| rejectattr('islnk') ", "| rejectattr('isdir') "),
                      "loop_control": {"label": "{{ item.path }}"}})
        return tasks
    if name == "lock_empty_passwords":
        return [{"ansible.builtin.replace": {"path": _p("/etc/shadow"), "regexp": r"(?m)^([^:\n]+)::",
                                             "replace": "\\1:!:"}}]
    if name == "pam_arg":
        tasks = []
        if a.get("authselect_feature"):
            tasks.append(_find("/etc/authselect/authselect.conf", reg + "_as"))
            tasks.append({"ansible.builtin.lineinfile": {"path": _p("/etc/authselect/authselect.conf"),
                                                         "line": a["authselect_feature"]},
                          "when": "%s_as.matched > 0" % reg})
        for path in a["files"]:
            tasks.append({"ansible.builtin.replace": {"path": _p(path),
                                                      "regexp": edits.pam_arg_absent_regex(a["module"], a["arg"]),
                                                      "replace": "\\1"},
                          "failed_when": False})
        return tasks
    raise ValueError("no Ansible rendering for action %r" % name)


def _owner_tasks(a, reg):
    """uid/gid from the target's own passwd/group (an image's ids may differ from the controller's)."""
    tasks = []
    for key, table, var in (("owner", "passwd", "uid"), ("group", "group", "gid")):
        if not a.get(key):
            continue
        tasks.append({"ansible.builtin.command": {"argv": ["awk", "-F:", "-v", "n=%s" % a[key],
                                                           "$1 == n { print $3; exit }", _p("/etc/" + table)]},
                      "register": "%s_%s_out" % (reg, var), "changed_when": False})
        tasks.append({"ansible.builtin.set_fact": {"%s_%s" % (reg, var): "{{ %s_%s_out.stdout | int }}" % (reg, var)}})
    return tasks


def playbook(items, lang="en"):
    from scanner.i18n import pick
    tasks, n = [], 0
    for rule, params in items:
        name_text = "%s: %s" % (rule["id"], pick(title_text(rule, params), lang).replace("\n", " "))
        rule_tasks = []
        requires = rule["fix"].get("requires") or []
        guard = None
        if requires:
            n += 1
            guard = "xc_%d_req" % n
            rule_tasks.append({"ansible.builtin.stat": {"path": "{{ xcscan_root }}{{ item }}"},
                               "loop": list(requires), "register": guard})
        for action in rule["fix"]["actions"]:
            name, args = list(action.items())[0]
            n += 1
            rule_tasks.extend(action_tasks(name, resolve(args or {}, params), n))
        for i, task in enumerate(rule_tasks):
            named = {"name": name_text}
            named.update(task)
            named.setdefault("tags", [rule["id"]])
            if guard and i > 0:
                cond = "%s.results | rejectattr('stat.exists') | list | length == 0" % guard
                when = task.get("when") or []
                named["when"] = [cond] + (when if isinstance(when, list) else [when])
            tasks.append(named)
    return [{"name": "xcscan fix (加固)", "hosts": "all", "become": True, "gather_facts": False,
             "vars": {"xcscan_root": ""}, "tasks": tasks}]


def render(items, lang="en"):
    import yaml
    doc = playbook(items, lang)
    return "# Generated by xcscan fix. Review before running:\n" \
           "#   ansible-playbook -i inventory fix.yml [--check --diff]\n" \
           "#   offline image: ansible-playbook -i localhost, -c local -e xcscan_root=/mnt/image fix.yml\n" + \
        yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), allow_unicode=True, sort_keys=False,
                  default_flow_style=False, width=1000)
