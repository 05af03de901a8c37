"""`xcscan fix` end to end on copies of the baseline fixture roots: dry-run diff, tailored params,
guarded apply with backup, rescan and rollback, dangerous opt-in, validation refusal, the agent
lock, the generated bash script and Ansible playbook run for real."""
import json
import shutil
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from baseline_support import materialise
from fix_support import WEAKENED, differences, mutate, run_script, snapshot, status_of
from scanner.cli import cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="fixture owners need chown (run as root)")


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def rhel(tmp_path):
    return materialise("rhel-default", tmp_path)


@pytest.fixture
def debian(tmp_path):
    return materialise("debian-default", tmp_path)


def apply_args(tmp_path, root, *extra):
    return ("fix", "--root", root, "--apply", "--backup-dir", str(tmp_path / "backups"),
            "--lock", str(tmp_path / "agent.lock")) + extra


def test_dry_run_prints_a_diff_per_file_and_changes_nothing(rhel):
    before = snapshot(rhel)
    res = invoke("fix", "--root", rhel, "--profile", "mlps-l3", "--dry-run")
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    assert "--- a/etc/login.defs\n+++ b/etc/login.defs\n" in out
    assert "-PASS_MAX_DAYS\t99999\n-PASS_MIN_DAYS\t0\n+PASS_MAX_DAYS 90\n+PASS_MIN_DAYS 1\n" in out
    assert out.count("+++ b/etc/login.defs") == 1           # one diff per file, all rules together
    assert "+++ b/etc/sysctl.d/99-xcscan.conf" in out and "+net.ipv4.conf.all.send_redirects = 0" in out
    assert "# /etc/crontab: file 0644 0:0 -> file 0600 0:0" in out
    assert "--- a/root/.rhosts\n+++ /dev/null" in out
    # sshd: the value goes before the Include (first value wins); the drop-in's own line is corrected too
    assert "+X11Forwarding no\n Include /etc/ssh/sshd_config.d/*.conf" in out
    assert "-X11Forwarding yes\n+X11Forwarding no" in out
    assert "mlps.ac.ssh-root-login: not fixed without --allow mlps.ac.ssh-root-login" in res.stderr
    assert differences(before, snapshot(rhel)) == []
    # the diff is a real patch: applied inside a copy it gives the contents --apply writes
    proc = subprocess.run(["patch", "-p1", "-s", "-d", rhel], input=out, universal_newlines=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(rhel, "etc/login.defs")) as fh:
        assert "PASS_MAX_DAYS 90\nPASS_MIN_DAYS 1\n" in fh.read()


def test_tailored_params_reach_the_fix_and_the_remediation_text(rhel, tmp_path):
    profile = tmp_path / "tailored.yaml"
    profile.write_text("id: tailored\ntitle: {zh: 定制, en: tailored}\nselect: [{areas: [mlps], levels: [3]}]\n"
                       "rule_params: {mlps.ia.password-max-age: {max_days: 60}, mlps.ia.shell-timeout: "
                       "{max_seconds: 300}}\n")
    res = invoke("scan", "--root", rhel, "--profile", str(profile), "--format", "json")
    report = json.loads(res.stdout)
    by_id = dict((r["rule_id"], r) for r in report["results"])
    assert "PASS_MAX_DAYS 60/" in by_id["mlps.ia.password-max-age"]["remediation"]["en"]
    assert "PASS_MAX_DAYS 60/" in by_id["mlps.ia.password-max-age"]["remediation"]["zh"]
    assert "TMOUT=300" in by_id["mlps.ia.shell-timeout"]["remediation"]["zh"]
    # the title states the limit the tailored check applies, not the shipped default
    assert by_id["mlps.ia.password-max-age"]["title"] == {"zh": "新建账户口令最长使用期限不超过60天",
                                                        "en": "Password maximum age for new accounts is 60 days or less"}
    assert "TMOUT≤300 秒" in by_id["mlps.ia.shell-timeout"]["title"]["zh"]
    assert not [t for r in report["results"] for t in r["title"].values() if "{" in t]
    listed = invoke("rules", "list", "--profile", str(profile), "--format", "json")
    titles = dict((r["id"], r["title"]["en"]) for r in json.loads(listed.stdout))
    assert titles["mlps.ia.shell-timeout"] == "Idle shell sessions end (TMOUT at most 300 s, read-only)"
    assert titles["mlps.ia.password-min-length"] == "Passwords are at least 8 characters long"  # the default
    saved = tmp_path / "report.json"
    saved.write_text(res.stdout)
    res = invoke("fix", "--root", rhel, "--report", str(saved), "--rule", "mlps.ia.*", "--dry-run")
    assert "+PASS_MAX_DAYS 60\n" in res.stdout and "+TMOUT=300\n" in res.stdout
    assert "sysctl" not in res.stdout                        # --rule narrowed the selection
    script = invoke("fix", "--report", str(saved), "--rule", "mlps.ia.password-max-age", "--script", "bash")
    assert "xc_set_key '/etc/login.defs' 0644 'PASS_MAX_DAYS' ' ' '60'" in script.stdout
    assert "# mlps.ia.password-max-age  Password maximum age for new accounts is 60 days or less" in script.stdout


def test_apply_rescans_and_rollback_restores_bytes_modes_and_owners(rhel, tmp_path):
    before = snapshot(rhel)
    res = invoke(*apply_args(tmp_path, rhel, "--profile", "mlps-l3"))
    assert res.exit_code == 0, res.stdout + res.stderr
    lines = dict(line.split() for line in res.stdout.splitlines() if line.startswith("  "))
    assert lines and set(lines.values()) == {"PASS"}, res.stdout
    assert "mlps.ia.password-max-age" in lines and "mlps.ip.unneeded-services" in lines
    run_dirs = os.listdir(str(tmp_path / "backups"))
    assert len(run_dirs) == 1
    run_dir = os.path.join(str(tmp_path / "backups"), run_dirs[0])
    with open(os.path.join(run_dir, "log.txt")) as fh:
        log = fh.read()
    assert "/etc/login.defs: file 0644 0:0 -> file 0644 0:0" in log
    after = snapshot(rhel)
    assert "etc/sysctl.d/99-xcscan.conf" in after and "root/.rhosts" not in after
    # idempotent: the fixes just applied, planned again (failed or not: --every), change nothing
    res = invoke("fix", "--root", rhel, "--profile", "mlps-l3", "--every", "--dry-run",
                 *["--rule=%s" % r for r in lines])
    assert "+++" not in res.stdout and "->" not in res.stdout, res.stdout
    # the shell rollback script restores without Python
    proc = subprocess.run(["/bin/sh", os.path.join(run_dir, "rollback.sh")], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 0, proc.stderr
    assert differences(before, snapshot(rhel)) == []
    # and so does `xcscan fix --rollback` (after applying again)
    res = invoke(*apply_args(tmp_path, rhel, "--profile", "mlps-l3"))
    assert res.exit_code == 0
    newest = sorted(os.listdir(str(tmp_path / "backups")))[-1]
    res = invoke("fix", "--rollback", os.path.join(str(tmp_path / "backups"), newest), "--lock",
                 str(tmp_path / "agent.lock"))
    assert res.exit_code == 0 and "rolled back" in res.stderr
    assert differences(before, snapshot(rhel)) == []


def test_dangerous_fix_needs_its_own_opt_in(rhel, tmp_path):
    res = invoke(*apply_args(tmp_path, rhel, "--rule", "mlps.ac.ssh-root-login"))
    assert "not fixed without --allow mlps.ac.ssh-root-login" in res.stderr
    assert "nothing to fix" in res.stderr
    assert status_of(rhel, "mlps.ac.ssh-root-login") == "fail"
    res = invoke(*apply_args(tmp_path, rhel, "--rule", "mlps.ac.ssh-*", "--allow", "mlps.ia.ssh-max-auth-tries"))
    assert status_of(rhel, "mlps.ac.ssh-root-login") == "fail"  # an opt-in names the rule it is for
    res = invoke(*apply_args(tmp_path, rhel, "--rule", "mlps.ac.ssh-root-login", "--allow", "mlps.ac.ssh-root-login"))
    assert res.exit_code == 0, res.stderr
    assert status_of(rhel, "mlps.ac.ssh-root-login") == "pass"
    # the scripts leave dangerous fixes out unless allowed, too
    res = invoke("fix", "--root", rhel, "--every", "--profile", "mlps-l3", "--script", "bash")
    assert "PermitRootLogin" not in res.stdout and "-e 2" not in res.stdout
    res = invoke("fix", "--root", rhel, "--every", "--profile", "mlps-l3", "--script", "bash",
                 "--allow", "mlps.au.audit-immutable")
    assert "'-e 2'" in res.stdout


@pytest.mark.parametrize("broken,message", [
    ("MaxAuthTries\n", "MaxAuthTries needs an argument"),
    ("PermitRootLogin no\nBogusOption yes\n", "bad configuration option 'BogusOption'"),
    ("Include /etc/ssh\n", "/etc/ssh: is a directory"),
])
def test_a_broken_sshd_include_refuses_the_fix_and_changes_nothing(rhel, tmp_path, broken, message):
    with open(os.path.join(rhel, "etc/ssh/sshd_config.d/60-local.conf"), "w") as fh:
        fh.write(broken)
    before = snapshot(rhel)
    res = invoke(*apply_args(tmp_path, rhel, "--rule", "mlps.ia.ssh-max-auth-tries"))
    assert res.exit_code == 1
    assert "refused" in res.stderr and message in res.stderr
    assert differences(before, snapshot(rhel)) == []
    assert not os.path.exists(str(tmp_path / "backups"))
    # a fix that does not touch sshd still goes ahead
    res = invoke(*apply_args(tmp_path, rhel, "--rule", "mlps.ia.password-max-age"))
    assert res.exit_code == 0


def test_refuses_while_another_run_holds_the_agent_lock(rhel, tmp_path):
    from scanner.agent.lock import RunLock
    before = snapshot(rhel)
    with RunLock(str(tmp_path / "agent.lock")):
        res = invoke(*apply_args(tmp_path, rhel, "--rule", "mlps.ia.password-max-age"))
    assert res.exit_code == 75 and "in progress" in res.stderr
    assert differences(before, snapshot(rhel)) == []


def test_a_failing_step_rolls_back_everything(rhel, tmp_path):
    """On a live host the commands run after the files are written; a failing one undoes the files.
    (The runner is the one boundary replaced: this machine's kernel parameters must not change.)"""
    from scanner.engine import load_ruleset
    from scanner.errors import XcscanError
    from scanner.remediate.apply import apply_plan
    from scanner.remediate.planner import plan
    rules = load_ruleset()
    items = [(rules.get(r), dict(rules.get(r)["params"])) for r in (
        "mlps.ia.password-max-age", "mlps.ip.sysctl-send-redirects", "mlps.ac.cron-perms")]
    before = snapshot(rhel)
    the_plan = plan(rhel, items, live=True)
    ran = []

    def runner(argv):
        ran.append(argv)
        return (255, "sysctl: permission denied on key 'net.ipv4.conf.all.send_redirects'")
    with pytest.raises(XcscanError) as err:
        apply_plan(the_plan, str(tmp_path / "backups"), lock_path=str(tmp_path / "agent.lock"), run_command=runner)
    assert "rolled back" in str(err.value)
    assert ran == [["sysctl", "-q", "-w", "net.ipv4.conf.all.send_redirects=0"]]
    assert differences(before, snapshot(rhel)) == []


def test_a_changed_auditd_conf_makes_the_running_auditd_reread_it(rhel, tmp_path):
    """auditd reads auditd.conf at start and on SIGHUP (auditd(8)); its unit has no reload and refuses a
    stop, so a live fix signals it: a stand-in process named auditd (this machine runs none) gets the
    SIGHUP after the file is written; with no auditd running the fix still succeeds (pkill exits 1: the
    next start reads the file). The bash script and the Ansible playbook do the same on a live host."""
    import shutil
    import signal
    import time
    from scanner.engine import load_ruleset
    from scanner.remediate import ansible, bash
    from scanner.remediate.apply import apply_plan
    from scanner.remediate.diff import render
    from scanner.remediate.planner import plan
    rules = load_ruleset()
    items = [(rules.get("mlps.au.audit-disk-full-action"), dict(rules.get("mlps.au.audit-disk-full-action")["params"]))]
    conf = os.path.join(rhel, "etc", "audit", "auditd.conf")
    weak = open(conf).read().replace("disk_full_action = SUSPEND", "disk_full_action = IGNORE")
    with open(conf, "w") as fh:
        fh.write(weak)
    assert "# $ pkill -HUP -x auditd\n" in render(plan(rhel, items, live=True), "en")
    assert "pkill" not in render(plan(rhel, items, live=False), "en")
    script = bash.render(items)
    assert "XC_AUDITD_CONF_CHANGED=1" in script and "pkill -HUP -x auditd" in script
    book = ansible.render(items)
    assert book.count("- pkill") == 3 and "xcscan_auditd_hup.rc > 1" in book  # one per set_key of the file
    stand_in = str(tmp_path / "auditd")
    shutil.copy(shutil.which("sh"), stand_in)
    got, ready = tmp_path / "hup", tmp_path / "ready"
    # SIGHUP as a daemon has it: a suite run under nohup hands its children SIGHUP ignored, and a shell
    # cannot trap a signal ignored when it started (POSIX, "trap")
    proc = subprocess.Popen([stand_in, "-c", 'trap "echo hup >> %s" HUP; : > %s; while :; do sleep 0.1; done'
                             % (got, ready)], preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    try:
        deadline = time.time() + 30  # the trap is set (a signal before it would end the shell: a busy machine)
        while not ready.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert ready.exists()
        apply_plan(plan(rhel, items, live=True), str(tmp_path / "backups"), lock_path=str(tmp_path / "agent.lock"))
        assert "disk_full_action = IGNORE" not in open(conf).read()
        deadline = time.time() + 5
        while not got.exists() and time.time() < deadline:
            time.sleep(0.1)
        assert got.exists() and got.read_text().strip() == "hup"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # nothing named auditd runs now: the fix is applied all the same (here: put back, then again)
    with open(conf, "w") as fh:
        fh.write(weak)
    apply_plan(plan(rhel, items, live=True), str(tmp_path / "backups"), lock_path=str(tmp_path / "agent.lock"))
    assert "disk_full_action = IGNORE" not in open(conf).read()


def test_whole_report_bash_script_fixes_both_weak_roots(rhel, debian, tmp_path):
    for root in (rhel, debian):
        saved = tmp_path / ("report-%s.json" % os.path.basename(root))
        res = invoke("scan", "--root", root, "--profile", "mlps-l3", "--format", "json")
        saved.write_text(res.stdout)
        res = invoke("fix", "--report", str(saved), "--script", "bash", "-o", str(tmp_path / "fix.sh"))
        assert res.exit_code == 0 and "wrote" in res.stderr
        fixed = [l.split("'")[1].split()[1] for l in open(str(tmp_path / "fix.sh")) if l.startswith("xc_log '== ")]
        assert len(fixed) >= 12
        proc = run_script(open(str(tmp_path / "fix.sh")).read(), root, str(tmp_path / "bk"), tmp_path)
        assert proc.returncode == 0, proc.stderr
        after = dict((r["rule_id"], r["status"]) for r in json.loads(
            invoke("scan", "--root", root, "--profile", "mlps-l3", "--format", "json").stdout)["results"])
        skipped = [l.split()[1] for l in proc.stdout.splitlines() if l.startswith("skipped:")]
        # Debian's fixture has no auditd: those rules are skipped (said so), everything else passes
        assert set(r for r in fixed if after[r] != "pass") == (set([
            "mlps.au.audit-rules-core", "mlps.au.audit-rules-extended", "mlps.au.audit-rules-config-changes",
            "mlps.au.auditd-enabled"]) if root == debian else set()), proc.stdout
        assert sorted(skipped) == (["/etc/audit"] * 3 + ["unit"] if root == debian else []), proc.stdout


def _ansible(playbook, root, tmp_path):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
               ANSIBLE_HOME=str(tmp_path / "ansible-home"), ANSIBLE_RETRY_FILES_ENABLED="0")
    bindir = os.path.dirname(sys.executable)
    cmd = [os.path.join(bindir, "ansible-playbook"), "-i", "localhost,", "-c", "local",
           "-e", "ansible_python_interpreter=%s" % sys.executable]
    if root is None:
        cmd += ["--syntax-check"]
    else:
        cmd += ["-e", "xcscan_root=%s" % root]
    return subprocess.run(cmd + [playbook], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=600)


def _weakened(name, dest):
    """Fixture root ``name`` with every weakening of its family (fix_support.WEAKENED) applied: it fails
    every rule with a fix that the fixtures of that family can be made to fail."""
    root = materialise(name, dest)
    for rule_id, (where, mutations) in sorted(WEAKENED.items()):
        if where.split("-")[0] == name.split("-")[0]:
            mutate(root, mutations)
    return root


@pytest.mark.parametrize("name", ["rhel-default", "debian-default"])
def test_ansible_playbook_fixes_every_failure_of_a_weak_root(tmp_path, name):
    """The playbook of a whole report (every failure with a fix, opt-ins allowed) run for real with
    ansible-playbook -c local against a copy root: the rescan passes every rule --apply fixes, and the
    files, modes, owners and links are those --apply writes. Run twice on Debian: nothing changes."""
    pytest.importorskip("ansible")
    from scanner.engine import load_ruleset
    from scanner.remediate.vocab import fix_kind
    allow = []
    for rule in load_ruleset():
        if fix_kind(rule) == "dangerous":
            allow += ["--allow", rule["id"]]
    root, python_root = _weakened(name, tmp_path / "ansible"), _weakened(name, tmp_path / "py")
    saved = tmp_path / "report.json"
    saved.write_text(invoke("scan", "--root", root, "--profile", "all", "--format", "json").stdout)
    playbook = str(tmp_path / "fix.yml")
    res = invoke("fix", "--report", str(saved), "--script", "ansible", "-o", playbook, *allow)
    assert res.exit_code == 0, res.stderr
    res = invoke(*apply_args(tmp_path, python_root, "--report", str(saved), *allow))
    assert res.exit_code == 0, res.stdout + res.stderr
    fixed = [line.split()[0] for line in res.stdout.splitlines() if line.startswith("  ")]
    assert len(fixed) >= (25 if name == "rhel-default" else 18), fixed
    assert "mlps.ia.no-empty-passwords" in fixed or name == "rhel-default"   # lock_empty_passwords runs too

    proc = _ansible(playbook, root, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    after = dict((r["rule_id"], r["status"]) for r in json.loads(
        invoke("scan", "--root", root, "--profile", "all", "--format", "json").stdout)["results"])
    assert [r for r in fixed if after[r] != "pass"] == []
    a, b = snapshot(root), snapshot(python_root)
    assert [p for p in differences(a, b) if not p.startswith("var/lib/xcscan")] == []
    if name == "debian-default":
        proc = _ansible(playbook, root, tmp_path)
        assert proc.returncode == 0 and " changed=0 " in proc.stdout, proc.stdout[-3000:]


def test_full_ansible_playbooks_pass_syntax_check(rhel, debian, tmp_path):
    pytest.importorskip("ansible")
    for root in (rhel, debian):
        res = invoke("fix", "--root", root, "--profile", "mlps-l3", "--every", "--script", "ansible",
                     "-o", str(tmp_path / "all.yml"), "--allow", "mlps.ac.ssh-root-login")
        assert res.exit_code == 0
        proc = _ansible(str(tmp_path / "all.yml"), None, tmp_path)
        assert proc.returncode == 0, proc.stdout[-3000:]
        # builtin modules only: the playbook runs on a bare ansible-core, no collection to install
        import yaml
        tasks = yaml.safe_load(open(str(tmp_path / "all.yml")))[0]["tasks"]
        modules = set(k for t in tasks for k in t if "." in k)
        assert len(tasks) > 40 and all(len([k for k in t if "." in k]) == 1 for t in tasks)
        assert modules and all(m.startswith("ansible.builtin.") for m in modules), modules


def test_coverage_lists_automated_dangerous_and_manual(tmp_path):
    res = invoke("fix", "--coverage", "--lang", "en")
    assert res.exit_code == 0
    assert "Automated fixes (" in res.stdout and "Dangerous fixes (need --allow RULE) (" in res.stdout
    assert "  mlps.ac.ssh-root-login" in res.stdout.split("Dangerous")[1].split("Fixed by hand")[0]
    assert "  mlps.ip.host-firewall" in res.stdout.split("Fixed by hand")[1]
    zh = invoke("fix", "--coverage", "--lang", "zh")
    assert "可自动加固" in zh.stdout and "需人工整改" in zh.stdout


def test_chinese_messages(rhel, tmp_path):
    res = invoke("fix", "--root", rhel, "--rule", "mlps.ac.ssh-root-login", "--lang", "zh", "--dry-run")
    assert "未加 --allow mlps.ac.ssh-root-login 不执行（高风险" in res.stderr
    assert "没有需要整改的项" in res.stderr


def test_usage_errors():
    res = invoke("fix", "--apply", "--dry-run")
    assert res.exit_code == 2 and "--dry-run, --apply" in res.stderr
    res = invoke("fix", "--report", "x.json", "--every")
    assert res.exit_code == 2


BAD_FIXES = [
    ("  actions:\n  - set_key: {path: /etc/login.defs, key: PASS_MAX_DAYS, value: {param: max_dayz}}\n",
     "undeclared param 'max_dayz'"),
    ("  actions:\n  - chmod_everything: {paths: [/etc]}\n", "unknown action 'chmod_everything'"),
    ("  actions:\n  - file_mode: {paths: [/etc/shadow], mode: 640}\n", "mode must be an octal string"),
    ("  actions:\n  - file_mode: {paths: [etc/shadow], mode: '0640'}\n", "absolute paths"),
    ("  actions:\n  - unit: {names: [cups], state: disabled}\n", "systemd unit names"),
    ("  actions:\n  - sshd: {keyword: MaxAuthTries, value: 4, extra: 1}\n", "unknown argument 'extra' of sshd"),
    ("  actions:\n  - lines: {path: /etc/profile.d/t.sh, lines: ['TMOUT={timeout}']}\n", "undeclared param {timeout}"),
    ("  when: {fact: pam.no_such_fact, op: 'true'}\n  actions:\n  - lock_empty_passwords: {}\n",
     "unknown fact path 'pam.no_such_fact'"),
    ("  dangerous: {en: only English}\n  actions:\n  - lock_empty_passwords: {}\n", "dangerous must be a mapping"),
    ("  manual: {zh: 人工, en: by hand}\n  actions:\n  - lock_empty_passwords: {}\n", "exactly one of"),
]


@pytest.mark.parametrize("block,message", BAD_FIXES, ids=[m for b, m in BAD_FIXES])
def test_lint_rejects_bad_fix_blocks_with_file_and_line(tmp_path, block, message):
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "rules", "checks", "mlps", "identification", "password-max-age.yaml")
    text = open(src).read()
    text = text[:text.index("\nfix:\n")] + "\nfix:\n" + block
    d = tmp_path / "mlps"
    d.mkdir()
    (d / "rule.yaml").write_text(text)
    res = invoke("rules", "lint", str(tmp_path))
    assert res.exit_code != 0
    assert message in res.output + res.stderr
    assert "rule.yaml:" in res.output + res.stderr


def test_a_precondition_that_does_not_hold_is_said_in_both_languages(debian):
    """Debian's fixture has no pam_pwquality in any stack: writing pwquality.conf would change nothing."""
    res = invoke("fix", "--root", debian, "--rule", "mlps.ia.password-min-length", "--lang", "zh", "--dry-run")
    assert "mlps.ia.password-min-length：本机无法自动整改：本机不满足此加固的前提条件：pam.quality.module" in res.stderr
    assert "没有需要整改的项" in res.stderr and "pwquality.conf" not in res.stdout
    res = invoke("fix", "--root", debian, "--rule", "mlps.ia.password-min-length", "--lang", "en", "--dry-run")
    assert "pam_pwquality is in the password stack" in res.stderr


def test_severity_selects_that_severity_or_higher(rhel):
    res = invoke("fix", "--root", rhel, "--profile", "mlps-l3", "--severity", "high", "--dry-run")
    rules = [l.split()[1] for l in res.stdout.splitlines() if l.startswith("# mlps.")]
    from scanner.engine import load_ruleset
    ruleset = load_ruleset()
    assert rules and all(ruleset.get(r)["severity"] in ("high", "critical") for r in rules), rules
    assert "mlps.au.audit-rules-core" in rules and "mlps.ia.pam-no-nullok" not in rules  # high / medium


def test_runs_in_the_same_second_get_their_own_backup_directories(tmp_path):
    """Two applies by one process within a second (a script, or this test suite) never share a run directory."""
    from scanner.remediate.apply import new_run_dir
    dirs = [new_run_dir(str(tmp_path / "backups")) for _ in range(3)]
    assert len(set(dirs)) == 3 and all(os.path.isdir(os.path.join(d, "files")) for d in dirs)
    assert sorted(dirs) == dirs    # name order is run order


def test_a_chroot_is_fixed_as_an_image(tmp_path):
    """`/` that is not PID 1's root (kickstart %post, a chroot of a mounted disk), or no /proc at all:
    the fix edits files only and runs nothing against the system outside (tested on a /proc stand-in;
    the shell script's side runs for every rule in test_fix_rules, inside a real chroot)."""
    from scanner.remediate.planner import in_chroot, plan
    proc = tmp_path / "proc"
    assert in_chroot(str(proc)) is True                      # no /proc mounted
    (proc / "1").mkdir(parents=True)
    os.symlink(str(tmp_path), str(proc / "1" / "root"))
    assert in_chroot(str(proc)) is True                      # PID 1 lives elsewhere
    os.unlink(str(proc / "1" / "root"))
    os.symlink("/", str(proc / "1" / "root"))
    assert in_chroot(str(proc)) is False                     # the running system itself
    os.unlink(str(proc / "1" / "root"))
    os.symlink(str(tmp_path / "unreadable"), str(proc / "1" / "root"))
    assert in_chroot(str(proc)) is False                     # not ours to inspect: assume the running system
    from scanner.engine import load_ruleset
    rule = load_ruleset().get("mlps.ip.sysctl-send-redirects")
    assert plan("/", [(rule, dict(rule["params"]))], live=True).rules[0].commands   # live: sysctl -w planned
    assert plan(str(tmp_path), [(rule, dict(rule["params"]))]).rules[0].commands == []


def test_a_report_value_no_profile_could_set_is_not_used(rhel, tmp_path):
    """A saved report comes from the host it describes: a param with a newline (which would add a
    line of its own to the file) or of the wrong kind refuses that rule; a tailored value is used."""
    report = json.loads(invoke("scan", "--root", rhel, "--profile", "mlps-l3", "--format", "json").stdout)
    for res in report["results"]:
        if res["rule_id"] == "mlps.ia.password-max-age":
            res["params"] = {"max_days": "90\nPASS_MIN_LEN 1"}
        elif res["rule_id"] == "mlps.ia.ssh-max-auth-tries":
            res["params"] = {"max_tries": [4]}
        elif res["rule_id"] == "mlps.ia.password-min-age":
            res["params"] = {"min_days": 2, "undeclared": "x\ny"}
    saved = tmp_path / "report.json"
    saved.write_text(json.dumps(report))
    res = invoke("fix", "--report", str(saved), "--rule", "mlps.ia.*", "--script", "bash", "--lang", "en")
    assert res.exit_code == 0
    assert "mlps.ia.password-max-age: cannot be fixed here: the report gives max_days a value no profile" in res.stderr
    assert "mlps.ia.ssh-max-auth-tries: cannot be fixed here: the report gives max_tries" in res.stderr
    assert "PASS_MAX_DAYS" not in res.stdout and "PASS_MIN_LEN" not in res.stdout and "MaxAuthTries" not in res.stdout
    assert "xc_set_key '/etc/login.defs' 0644 'PASS_MIN_DAYS' ' ' '2'" in res.stdout   # undeclared names ignored
    zh = invoke("fix", "--report", str(saved), "--rule", "mlps.ia.password-max-age", "--dry-run", "--lang", "zh")
    assert "报告中 max_days 的取值不是检查方案可设置的值" in zh.stderr


def test_every_rule_without_a_fix_says_why():
    """rules/remediation/not-automated.yaml gives each rule without a fix block exactly one reason; an
    entry that matches no rule, or a rule that has a fix, is stale."""
    import fnmatch
    from scanner.engine import load_ruleset
    from scanner.remediate.select import coverage, not_automated_reasons
    from scanner.remediate.vocab import fix_kind
    ruleset = load_ruleset()
    reasons = not_automated_reasons()
    for globs, why in reasons:
        assert set(why) == {"zh", "en"} and all(why.values()), why
        for g in globs:
            matched = [r for r in ruleset if fnmatch.fnmatchcase(r["id"], g)]
            assert matched, "%s matches no rule" % g
            assert not [r["id"] for r in matched if fix_kind(r) is not None], "%s matches rules with a fix" % g
    cov = coverage(ruleset, reasons)
    assert [r for r, why in cov["why"].items() if why is None] == []
    for rule_id in cov["none"]:
        hits = [i for i, (globs, _) in enumerate(reasons) if any(fnmatch.fnmatchcase(rule_id, g) for g in globs)]
        assert len(hits) == 1, (rule_id, hits)
    res = invoke("fix", "--coverage", "--lang", "en")
    none = res.stdout.split("Rules without a fix block (%d)\n" % len(cov["none"]))[1]
    assert "  an assessor's check (documents, interviews, other systems); nothing on the host to change (22)\n" \
           "    mlps.ac.access-policy-manual\n" in none
    assert "    mlps.ia.login-lockout\n" in none and "no reason recorded" not in none
    zh = invoke("fix", "--coverage", "--lang", "zh").stdout
    assert "  人工核查项（文档、访谈或其他系统）：本机上没有可修改的配置 (22)" in zh


def test_a_fix_that_would_break_the_pam_stack_is_refused(rhel, tmp_path):
    """Whatever action changes a PAM file is validated before anything is written: a line naming a module
    the target does not have refuses the run and nothing changes (a rule set with such a fix stands in
    for a faulty rule: every shipped fix passes this check on every fixture root, test_fix_rules)."""
    import shutil
    rules = str(tmp_path / "rules")
    shutil.copytree(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "rules"), rules)
    src = os.path.join(rules, "checks", "mlps", "identification", "pam-no-nullok.yaml")
    text = open(src).read()
    text = text.replace("id: mlps.ia.pam-no-nullok", "id: mlps.ia.pam-no-nullok-faulty")
    text = text[:text.index("\nfix:\n")] + "\nfix:\n  actions:\n  - lines: {path: /etc/pam.d/system-auth, " \
        "lines: ['auth required pam_no_such_module.so']}\n"
    with open(os.path.join(rules, "checks", "mlps", "identification", "pam-no-nullok-faulty.yaml"), "w") as fh:
        fh.write(text)
    before = snapshot(rhel)
    res = CliRunner().invoke(cli, list(apply_args(tmp_path, rhel, "--every", "--rule", "mlps.ia.pam-no-nullok-faulty")),
                             env={"XCSCAN_RULES": rules})
    assert res.exit_code == 1, res.output
    assert "module pam_no_such_module.so is not installed" in res.stderr and "refused" in res.stderr
    assert differences(before, snapshot(rhel)) == [] and not os.path.exists(str(tmp_path / "backups"))
    # the shipped fix of the same files goes ahead
    res = CliRunner().invoke(cli, list(apply_args(tmp_path, rhel, "--every", "--rule", "mlps.ia.pam-no-nullok")),
                             env={"XCSCAN_RULES": rules})
    assert res.exit_code == 0, res.stderr
    assert status_of(rhel, "mlps.ia.pam-no-nullok") == "pass"


def test_apply_keeps_selinux_labels_and_rollback_restores_them(rhel, tmp_path):
    """The rewritten file carries the original's SELinux label (set as an extended attribute, as on an
    image built elsewhere); rollback brings back bytes, label and modification time."""
    path = os.path.join(rhel, "etc", "login.defs")
    label = b"system_u:object_r:etc_t:s0\0"
    try:
        os.setxattr(path, "security.selinux", label)
    except OSError as exc:  # a file system without security.* attributes: nothing to keep
        pytest.skip("cannot set security.selinux here: %s" % exc)
    before, st = open(path, "rb").read(), os.stat(path)
    res = invoke(*apply_args(tmp_path, rhel, "--rule", "mlps.ia.password-max-age"))
    assert res.exit_code == 0, res.stderr
    assert os.stat(path).st_ino != st.st_ino and open(path, "rb").read() != before   # a new file, renamed in
    assert os.getxattr(path, "security.selinux") == label
    run_dir = os.path.join(str(tmp_path / "backups"), os.listdir(str(tmp_path / "backups"))[0])
    assert invoke("fix", "--rollback", run_dir, "--lock", str(tmp_path / "agent.lock")).exit_code == 0
    assert open(path, "rb").read() == before and os.getxattr(path, "security.selinux") == label
    assert os.stat(path).st_mtime_ns == st.st_mtime_ns


def test_exit_3_when_a_fixed_rule_still_fails_on_the_rescan(rhel, tmp_path):
    """As for scan, 3 means findings: the host key's mode is fixed, but its group (wheel, neither root nor
    ssh_keys) is a person's decision, so the rescan still fails it and says so."""
    key = os.path.join(rhel, "etc", "ssh", "ssh_host_ed25519_key")
    os.chown(key, 0, 10)
    os.chmod(key, 0o644)
    res = invoke(*apply_args(tmp_path, rhel, "--rule", "mlps.ac.ssh-host-key-perms"))
    assert res.exit_code == 3, res.stdout + res.stderr
    assert "1 rule(s) still fail after the fix: mlps.ac.ssh-host-key-perms" in res.stderr
    assert oct(os.stat(key).st_mode & 0o777) == "0o640" and os.stat(key).st_gid == 10


# remediation texts that may name a number equal to a param's default: not the limit itself
LITERAL_OK = {("data-security.db.data-dir-permissions", "max_mode"): "chmod 0700 is advice stricter than the limit"}


def test_remediation_texts_state_the_tailored_values():
    """A profile that sets the maximum password age to 60 must not be told 'chage -M 90': a remediation
    text names a numeric param's value through its {placeholder}, never as the shipped default."""
    import re
    from scanner.engine import load_ruleset
    from scanner.remediate.params import placeholders, remediation_text
    found = []
    for rule in load_ruleset():
        for name, default in (rule.get("params") or {}).items():
            if isinstance(default, bool) or not isinstance(default, (int, float, str)) or (rule["id"], name) in LITERAL_OK:
                continue
            if isinstance(default, str) and not re.match(r"^[0-9]+$", default):
                continue
            for lang, text in (rule.get("remediation") or {}).items():
                if name not in placeholders(text) and re.search(r"(?<![0-9.])%s(?![0-9])" % re.escape(str(default)), text):
                    found.append((rule["id"], lang, name, default))
    assert found == []
    rule = load_ruleset().get("mlps.ia.password-max-age-accounts")
    assert "chage -M 60 <user>" in remediation_text(rule, {"max_days": 60})["en"]


def test_dry_run_lists_the_commands_a_live_host_would_run(rhel):
    """--dry-run on a running system ends with the commands --apply would run after writing the files;
    for an offline root (or a chroot) there are none."""
    from scanner.engine import load_ruleset
    from scanner.remediate.diff import render
    from scanner.remediate.planner import plan
    rules = load_ruleset()
    items = [(rules.get(r), dict(rules.get(r)["params"])) for r in (
        "mlps.ip.sysctl-send-redirects", "mlps.au.audit-rules-core", "mlps.ia.ssh-max-auth-tries")]
    live = render(plan(rhel, items, live=True), "en")
    assert "# $ sysctl -q -w net.ipv4.conf.all.send_redirects=0\n" in live
    assert "# $ augenrules --load\n" in live and "# $ sshd -t" in live
    offline = render(plan(rhel, items, live=False), "en")
    assert "# $ " not in offline and "+net.ipv4.conf.all.send_redirects = 0" in offline


def test_a_failing_write_stops_the_run_and_rolls_back_what_it_did(rhel, tmp_path):
    """sshd_config cannot be replaced (immutable, as `chattr +i` leaves it): the run stops there, what it
    had already changed gets its bytes, modes and owners back, exit 1. The journal's pending entry for
    the file that never changed is left alone (restoring it failed the same way and hid the error
    behind a traceback)."""
    if shutil.which("chattr") is None:
        pytest.skip("no chattr")
    target = os.path.join(rhel, "etc", "ssh", "sshd_config")
    proc = subprocess.run(["chattr", "+i", target], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    if proc.returncode != 0:
        pytest.skip("cannot make a file immutable here: %s" % proc.stdout)
    try:
        before = snapshot(rhel)
        res = invoke(*apply_args(tmp_path, rhel, "--rule", "mlps.ia.password-max-age", "--rule", "mlps.ac.cron-perms",
                                 "--rule", "mlps.ia.ssh-max-auth-tries"))
        assert res.exit_code == 1, res.stdout + res.stderr
        assert "rolled back" in res.stderr, res.stderr
        assert differences(before, snapshot(rhel)) == []
        run_dir = os.path.join(str(tmp_path / "backups"), os.listdir(str(tmp_path / "backups"))[0])
        with open(os.path.join(run_dir, "log.txt")) as fh:
            log = fh.read()
        assert "restored /etc/login.defs" in log                 # it had changed it before it stopped
        with open(os.path.join(run_dir, "manifest.json")) as fh:
            status = dict((e["path"], e["status"]) for e in json.load(fh)["entries"])
        assert status["/etc/login.defs"] == "rolled back" and status["/etc/ssh/sshd_config"] == "not changed"
    finally:
        subprocess.run(["chattr", "-i", target])


def test_a_rollback_that_cannot_restore_a_file_restores_the_others_and_says_which(rhel, tmp_path):
    if shutil.which("chattr") is None:
        pytest.skip("no chattr")
    before = snapshot(rhel)
    res = invoke(*apply_args(tmp_path, rhel, "--rule", "mlps.ia.password-max-age", "--rule", "mlps.ia.ssh-max-auth-tries"))
    assert res.exit_code == 0, res.stderr
    run_dir = os.path.join(str(tmp_path / "backups"), os.listdir(str(tmp_path / "backups"))[0])
    defs = os.path.join(rhel, "etc", "login.defs")
    if subprocess.run(["chattr", "+i", defs]).returncode != 0:
        pytest.skip("cannot make a file immutable here")
    try:
        res = invoke("fix", "--rollback", run_dir, "--lock", str(tmp_path / "agent.lock"))
        assert res.exit_code == 1
        assert "rollback incomplete; NOT restored: /etc/login.defs" in res.stderr
        assert [p for p in differences(before, snapshot(rhel)) if p != "etc/login.defs"] == []  # sshd_config back
    finally:
        subprocess.run(["chattr", "-i", defs])
    res = invoke("fix", "--rollback", run_dir, "--lock", str(tmp_path / "agent.lock"))   # again, once it can
    assert res.exit_code == 0 and differences(before, snapshot(rhel)) == []


def test_apply_and_rollback_errors_in_chinese(rhel, tmp_path):
    if shutil.which("chattr") is None:
        pytest.skip("no chattr")
    target = os.path.join(rhel, "etc", "ssh", "sshd_config")
    if subprocess.run(["chattr", "+i", target]).returncode != 0:
        pytest.skip("cannot make a file immutable here")
    try:
        res = invoke(*apply_args(tmp_path, rhel, "--rule", "mlps.ia.ssh-max-auth-tries", "--lang", "zh"))
        assert res.exit_code == 1 and "所有修改均已回退" in res.stderr and "日志位于 " in res.stderr, res.stderr
    finally:
        subprocess.run(["chattr", "-i", target])


def test_rollback_refuses_while_another_run_holds_the_agent_lock(rhel, tmp_path):
    from scanner.agent.lock import RunLock
    res = invoke(*apply_args(tmp_path, rhel, "--rule", "mlps.ia.password-max-age"))
    assert res.exit_code == 0
    fixed = snapshot(rhel)
    run_dir = os.path.join(str(tmp_path / "backups"), os.listdir(str(tmp_path / "backups"))[0])
    with RunLock(str(tmp_path / "agent.lock")):
        res = invoke("fix", "--rollback", run_dir, "--lock", str(tmp_path / "agent.lock"))
    assert res.exit_code == 75 and "in progress" in res.stderr
    assert differences(fixed, snapshot(rhel)) == []


def test_a_script_made_without_a_scan_leaves_out_fixes_with_a_precondition(rhel):
    """A fix whose precondition is a fact of the host (audit logs 0700 only while auditd's log_group is
    root; pwquality values only where pam_pwquality reads them) is left out of a script made without a
    scan (--every) and says why; from the host's report it is checked and planned."""
    res = invoke("fix", "--root", rhel, "--every", "--profile", "mlps-l3", "--script", "bash", "--lang", "en",
                 "--rule", "mlps.au.audit-log-perms", "--rule", "mlps.au.audit-config-perms")
    assert res.exit_code == 0, res.stderr
    assert "/var/log/audit" not in res.stdout and "/etc/audit" in res.stdout
    assert "mlps.au.audit-log-perms" in res.stderr and "audit.conf.log_group" in res.stderr
    assert "only a scan of the host can check" in res.stderr
