"""Every rule with an automated (or opt-in) fix, on a root where it fails: the fix applied with
--root makes the rescan pass, applying it again changes nothing, rollback restores the original
bytes, modes and owners, and the generated POSIX-shell script, run inside a chroot of the root,
does exactly what the Python apply did."""
import os
import shutil

import pytest
import yaml

from baseline_support import BASE, ROOTS, materialise
from fix_support import NOW, WEAKENED, differences, mutate, run_script_in_chroot, snapshot, status_of

EXPECTED = yaml.safe_load(open(os.path.join(BASE, "expected.yaml")))

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="fixture owners need chown (run as root)")

# (rule, root) where the fix cannot work and says so instead of pretending
CANNOT = {("mlps.au.auditd-enabled", "debian-default"): "not installed",
          ("mlps.au.audit-rules-core", "debian-default"): "/etc/audit does not exist",
          ("mlps.au.audit-rules-config-changes", "debian-default"): "/etc/audit does not exist",
          ("mlps.au.audit-rules-extended", "debian-default"): "/etc/audit does not exist",
          ("mlps.au.audit-immutable", "debian-default"): "/etc/audit does not exist",
          ("mlps.ia.password-complexity", "debian-default"): "pam_pwquality is in the password stack",
          ("mlps.ia.password-min-length", "debian-default"): "pam_pwquality is in the password stack",
          ("mlps.ia.password-quality-root", "debian-default"): "pam_pwquality is in the password stack"}


def _ruleset():
    from scanner.engine import load_ruleset
    return load_ruleset()


def fixable_rules():
    from scanner.remediate.vocab import fix_kind
    return sorted(r["id"] for r in _ruleset() if fix_kind(r) in ("automated", "dangerous"))


def cases():
    out = []
    for rule_id in fixable_rules():
        for root in ROOTS:
            if EXPECTED.get(rule_id, {}).get(root) == "fail":
                out.append((rule_id, root, ()))
        if rule_id in WEAKENED:
            out.append((rule_id, WEAKENED[rule_id][0], tuple(WEAKENED[rule_id][1])))
    return out


def test_every_fix_has_a_failing_case():
    covered = set(c[0] for c in cases())
    assert covered == set(fixable_rules()), "fixes without a failing root: %s" % sorted(
        set(fixable_rules()) - covered)


@pytest.mark.parametrize("rule_id,root_name,mutations", cases(),
                         ids=["%s@%s%s" % (c[0], c[1], "+weakened" if c[2] else "") for c in cases()])
def test_fix_makes_the_rule_pass(tmp_path, rule_id, root_name, mutations):
    from scanner.remediate import bash
    from scanner.remediate.apply import apply_plan, rollback
    from scanner.remediate.planner import plan
    from scanner.remediate.validate import pam_problems, sshd_problems
    from scanner.pipeline import scan_report
    from scanner.remediate.select import select
    rule = _ruleset().get(rule_id)
    params = dict(rule.get("params") or {})
    root = materialise(root_name, tmp_path)
    mutate(root, mutations)
    report = scan_report(root, profile="all", live=False, now=NOW)
    assert [r["status"] for r in report["results"] if r["rule_id"] == rule_id] == ["fail"]
    original = snapshot(root)

    sel = select(_ruleset(), report=report, rule_globs=[rule_id], allow=[rule_id])
    if sel.cannot:
        assert (rule_id, root_name) in CANNOT, sel.cannot[0][1]
        assert CANNOT[(rule_id, root_name)] in sel.cannot[0][1]["en"]
        return
    assert sel.items == [(rule, params)]
    the_plan = plan(root, [(rule, params)], live=False)
    rp = the_plan.rules[0]
    if (rule_id, root_name) in CANNOT:
        assert rp.skipped and CANNOT[(rule_id, root_name)] in rp.skipped["en"]
        assert the_plan.changes() == []
        return
    assert rp.skipped is None, rp.skipped
    assert rp.changes, "the plan changes nothing although the rule fails"
    assert sshd_problems(the_plan.overlay) == [] if "sshd" in rp.validate else True
    assert pam_problems(the_plan.overlay, [c[0] for c in rp.changes]) == []

    run_dir = apply_plan(the_plan, str(tmp_path / "backups"), lock_path=str(tmp_path / "agent.lock"))
    assert status_of(root, rule_id) == "pass"
    fixed = snapshot(root)
    assert plan(root, [(rule, params)], live=False).changes() == [], "a second apply would change files"

    rollback(run_dir)
    assert differences(original, snapshot(root)) == []

    # the standalone script, run by the target's own /bin/sh inside a chroot of the (restored) copy,
    # does the same and is idempotent too; it sees the chroot and runs no command outside it
    script = bash.render([(rule, params)])
    proc = run_script_in_chroot(script, root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "xcscan-fix: in a chroot (no /proc)" in proc.stdout, proc.stdout
    backup = os.path.join(root, ".xcscan-test-backup")
    backups = snapshot(backup) if os.path.isdir(backup) else {}
    if os.path.isdir(backup):
        shutil.rmtree(backup)
    assert status_of(root, rule_id) == "pass"
    assert differences(fixed, snapshot(root)) == []
    proc = run_script_in_chroot(script, root)
    assert proc.returncode == 0 and "changed" not in proc.stdout and "removed" not in proc.stdout, proc.stdout
    if os.path.isdir(backup):             # (file modes: a copy is kept before chmod, changing or not)
        shutil.rmtree(backup)
    assert differences(fixed, snapshot(root)) == []
    # the script's backups hold the original of every file it changed
    for rel, before in original.items():
        if before[0] == "file" and fixed.get(rel) != before:
            assert backups[rel][1] == before[1], rel
