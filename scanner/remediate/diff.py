"""--dry-run: a unified diff per file (like `diff -u`), mode/owner and link changes, and the
commands a live host would run."""
from __future__ import absolute_import

import difflib


def _meta(st):
    if st is None or st.kind is None:
        return "absent"
    if st.kind == "link":
        return "symlink -> %s" % st.data
    return "%s %04o %d:%d" % (st.kind, st.mode, st.uid, st.gid)


def file_diff(path, before, after):
    """Text of one change: unified diff of the contents (patch -p1 applies it inside the root) and a
    comment line for mode, owner and link changes."""
    out = []
    old = before.text() if before is not None and before.kind == "file" else None
    new = after.text() if after is not None and after.kind == "file" else None
    if old != new:
        a = (old or "").splitlines(True)
        b = (new or "").splitlines(True)
        for line in difflib.unified_diff(a, b, "a" + path if old is not None else "/dev/null",
                                         "b" + path if new is not None else "/dev/null"):
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    meta_before, meta_after = _meta(before), _meta(after)
    same_kind_file = before is not None and after is not None and before.kind == after.kind == "file"
    if meta_before != meta_after and not (old != new and not same_kind_file):
        out.insert(0, "# %s: %s -> %s\n" % (path, meta_before, meta_after))
    return "".join(out)


def render(plan, lang="en"):
    """Which rules change which files, then one diff per file (original -> final), then the commands."""
    from scanner.i18n import pick, t
    from scanner.remediate.params import title_text
    out = []
    touched = {}
    for rp in plan.rules:
        title = pick(title_text(rp.rule, rp.params), lang)
        out.append("# %s  %s\n" % (rp.rule_id, title))
        if rp.skipped:
            out.append("#   %s\n" % t("fix.skipped", lang, why=pick(rp.skipped, lang)))
            continue
        if not rp.changes:
            out.append("#   %s\n" % t("fix.nothing_to_change", lang))
        for path, before, after in rp.changes:
            out.append("#   %s\n" % path)
            touched.setdefault(path, []).append(rp.rule_id)
    for path, before, after in plan.changes():
        out.append(file_diff(path, before, after))
    commands = [["sshd", "-t"]] if plan.live and plan.touches_sshd() else []
    for rp in plan.applicable():
        for argv in rp.commands:
            if argv not in commands:
                commands.append(argv)
    for argv in commands:
        out.append("# $ %s\n" % " ".join(argv))
    return "".join(out)
