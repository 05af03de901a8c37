"""Messages a person needs: the --fail-on exit-3 line naming the findings, warnings on stderr in every
format, nearest-match suggestions for mistyped profile and rule ids, `xcscan report` refusing a
damaged document, and an unprivileged scan (`runuser -u nobody`) saying so at the top."""
import copy
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from report_fixtures import FIXTURES, load
from scanner.cli import cli

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RHEL = os.path.join(HERE, "fixtures", "engine", "rhel-default", "root")


def run(*args):
    runner = CliRunner()
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        pass
    return runner.invoke(cli, list(args), env={"LANG": "en_US.UTF-8", "LC_ALL": ""}, catch_exceptions=False)


def test_fail_on_says_which_findings(tmp_path):
    res = run("scan", "--root", RHEL, "--profile", "mlps-l3", "--format", "json", "--fail-on", "high")
    assert res.exit_code == 3
    report = json.loads(res.stdout)
    failing = [r for r in report["results"] if r["status"] == "fail" and r["severity"] in ("high", "critical")]
    assert failing
    lines = [l for l in res.stderr.splitlines() if "exit 3" in l]
    assert len(lines) == 1
    assert lines[0].startswith("xcscan: exit 3: %d failed rule(s) at or above high: " % len(failing))
    assert failing[0]["rule_id"] in lines[0] or "and %d more" % (len(failing) - 5) in lines[0]
    assert all(r["rule_id"] in lines[0] for r in failing[:5] if r["severity"] == "critical") or len(failing) > 5
    ok = run("scan", "--root", RHEL, "--profile", "mlps-l3", "--format", "json", "--fail-on", "critical")
    if ok.exit_code == 0:
        assert "exit 3" not in ok.stderr


@pytest.mark.parametrize("fmt", ["table", "json", "html", "junit", "csv"])
def test_waiver_warning_on_stderr_in_every_format(tmp_path, fmt):
    wv = tmp_path / "w.yaml"
    wv.write_text(textwrap.dedent("""\
        waivers:
          - rule: mlps.ac.ssh-root-logn
            hosts: ["*"]
            justification: bastion only
            approver: security officer
            expires: 2999-12-31
        """), encoding="utf-8")
    res = run("scan", "--root", RHEL, "--profile", "mlps-l3", "--waivers", str(wv), "--format", fmt)
    assert res.exit_code == 0, res.stderr
    assert ("xcscan: warning: a waiver names rule mlps.ac.ssh-root-logn, which does not exist — did you mean "
            "mlps.ac.ssh-root-login?; it applies to nothing") in res.stderr
    if fmt == "json":
        json.loads(res.stdout)             # stdout stays a clean document


def test_report_reevaluate_warns_on_stderr_too(tmp_path):
    wv = tmp_path / "w.yaml"
    wv.write_text("waivers:\n  - rule: mlps.ac.ssh-root-logn\n    hosts: ['*']\n    justification: x\n"
                  "    approver: y\n    expires: 2999-12-31\n", encoding="utf-8")
    res = run("report", os.path.join(FIXTURES, "kylin-l3.json"), "--reevaluate", "--waivers", str(wv),
              "--format", "csv")
    assert res.exit_code == 0, res.stderr
    assert "did you mean mlps.ac.ssh-root-login?" in res.stderr and "mlps.ac.ssh-root-logn" not in res.stdout


def test_nearest_profile_and_rule():
    res = run("scan", "--root", RHEL, "--profile", "mlps-13")
    assert res.exit_code == 1 and "unknown profile 'mlps-13' — did you mean mlps-l3" in res.stderr
    res = run("rules", "show", "mlps.ia.ssh-root-login")
    assert res.exit_code == 1 and "did you mean mlps.ac.ssh-root-login?" in res.stderr
    res = run("rules", "show", "nothing.like.this.at-all-xyz")
    assert res.exit_code == 1 and "did you mean" not in res.stderr


def test_fix_rule_and_allow_typos_suggest_the_nearest_id():
    """`fix --rule` (id or glob) matching no rule, or `--allow` naming none, was a silent "nothing to
    fix" / no opt-in: now exit 1 with the nearest ids, before any scan."""
    res = run("fix", "--root", RHEL, "--rule", "mlps.ia.ssh-root-login", "--dry-run")
    assert res.exit_code == 1 and res.stdout == ""
    assert "--rule mlps.ia.ssh-root-login matches no rule — did you mean mlps.ac.ssh-root-login?" in res.stderr
    assert "scanning" not in res.stderr
    res = run("fix", "--root", RHEL, "--every", "--allow", "mlps.ac.ssh-root-logn", "--script", "bash")
    assert res.exit_code == 1 and res.stdout == ""
    assert "--allow mlps.ac.ssh-root-logn: unknown rule id — did you mean mlps.ac.ssh-root-login?" in res.stderr
    res = run("fix", "--root", RHEL, "--every", "--rule", "nothing.like.*", "--script", "bash")
    assert res.exit_code == 1 and "matches no rule" in res.stderr and "did you mean" not in res.stderr
    zh = run("fix", "--root", RHEL, "--every", "--allow", "mlps.ac.ssh-root-logn", "--lang", "zh")
    assert "未知的规则编号（是否应为 mlps.ac.ssh-root-login？）" in zh.stderr
    # a glob that matches, and an --allow that names a real rule, go ahead
    ok = run("fix", "--root", RHEL, "--every", "--rule", "mlps.ac.ssh-*", "--allow", "mlps.ac.ssh-root-login",
             "--script", "bash")
    assert ok.exit_code == 0, ok.stderr
    assert "mlps.ac.ssh-root-login" in ok.stdout and "not fixed without --allow" not in ok.stderr


def _write(tmp_path, doc):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.pop("summary"), "the report has results but no 'summary' section"),
    (lambda d: d["results"][0].update(status="passed"), "status 'passed' is not one of pass, fail"),
    (lambda d: d["results"][1].update(severity="urgent"), "severity 'urgent' is not one of"),
    (lambda d: d["results"][2].pop("rule_id"), "results[2] has no rule_id"),
    (lambda d: d["summary"]["counts"].update(fail=d["summary"]["counts"].get("fail", 0) + 3),
     "summary.counts.fail is"),
    (lambda d: d.update(results={"not": "a list"}), "report field results must be a list"),
])
def test_report_refuses_a_damaged_document(tmp_path, damage, message):
    doc = copy.deepcopy(load())
    damage(doc)
    path = _write(tmp_path, doc)
    for fmt in ("table", "html", "csv"):
        res = run("report", path, "--format", fmt)
        assert res.exit_code == 1, (fmt, res.stdout[:200])
        assert message in res.stderr and path in res.stderr and res.stdout == ""
        assert "cannot render the report" in res.stderr


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.pop("summary"), "报告有“results”却没有“summary”部分"),
    (lambda d: d["results"][0].update(status="passed"), "：状态“passed”不是以下之一：pass, fail"),
    (lambda d: d["results"][1].update(severity="urgent"), "：严重程度“urgent”不是以下之一："),
    (lambda d: d["results"][2].pop("rule_id"), "results[2] 没有 rule_id"),
    (lambda d: d["summary"]["counts"].update(fail=d["summary"]["counts"].get("fail", 0) + 3),
     "但检查结果中有"),
    (lambda d: d.update(results={"not": "a list"}), "报告字段 results 应为列表"),
    (lambda d: d.pop("host"), "报告缺少“host”部分"),
])
def test_report_refuses_a_damaged_document_in_chinese(tmp_path, damage, message):
    doc = copy.deepcopy(load())
    damage(doc)
    path = _write(tmp_path, doc)
    res = run("report", path, "--format", "html", "--lang", "zh")
    assert res.exit_code == 1 and res.stdout == ""
    line = res.stderr.strip()
    assert line.startswith("xcscan：错误：") and "无法生成报告" in line and message in line, line
    assert "re-run" not in line and "is not one of" not in line and "must be" not in line


def test_report_accepts_the_intact_document_and_reevaluates_a_damaged_one(tmp_path):
    assert run("report", _write(tmp_path, load()), "--format", "csv").exit_code == 0
    doc = copy.deepcopy(load())
    doc["results"][0]["status"] = "passed"          # results are recomputed from the facts
    res = run("report", _write(tmp_path, doc), "--reevaluate", "--format", "json")
    assert res.exit_code == 0, res.stderr
    assert all(r["status"] in ("pass", "fail", "error", "not_applicable", "manual", "waived")
               for r in json.loads(res.stdout)["results"])


needs_runuser = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser")
                                   or not os.path.exists("/usr/bin/python3"),
                                   reason="needs root, runuser and a system python3 to drop to nobody")


@pytest.fixture(scope="module")
def nobody_bundle():
    """The offline bundle (the agent's own dependencies inside) run by the system python3: the
    interpreter of this test run may live where `nobody` cannot read, and so may pytest's tmp_path."""
    import pathlib
    import tempfile
    base = pathlib.Path(tempfile.mkdtemp(prefix="xcscan-nobody-"))
    os.chmod(str(base), 0o755)
    out = str(base / "xcscan-agent.pyz")
    res = subprocess.run([sys.executable, os.path.join(REPO, "agents", "bundle", "build.py"), "-o", out],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
    assert res.returncode == 0, res.stdout
    os.chmod(out, 0o644)
    work = base / "work"
    work.mkdir()
    os.chown(str(work), 65534, 65534)
    yield out, str(work)
    shutil.rmtree(str(base), ignore_errors=True)


@needs_runuser
def test_unprivileged_scan_says_so_at_the_top(nobody_bundle):
    bundle, work = nobody_bundle
    table = os.path.join(work, "scan.txt")
    proc = subprocess.run([shutil.which("runuser"), "-u", "nobody", "--", "/usr/bin/python3", "-I", "-S", bundle, "scan",
                           "--profile", "mlps-l3", "--format", "json", "-o", "table:" + table, "--lang", "en"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300,
                          cwd="/", env={"PATH": "/usr/bin:/bin", "XCSCAN_BUNDLE_CACHE": os.path.join(work, "cache"),
                                        "LANG": "C.UTF-8"})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    notice = [n for n in report["notices"] if n["code"] in ("not_root", "not_root_no_loss")]
    assert len(notice) == 1 and notice[0]["fields"]["uid"] == 65534
    # /etc/shadow is root-only on every distribution: the accounts collector was refused
    assert "accounts" in notice[0]["fields"]["collectors"]
    assert notice[0]["code"] == "not_root"
    named = notice[0]["fields"]["rules"]
    status = dict((r["rule_id"], r["status"]) for r in report["results"])
    assert named and all(status[rule] == "error" for rule in named)
    assert "mlps.ia.no-empty-passwords" in named          # reads accounts (shadow) facts
    with open(table, encoding="utf-8") as fh:
        top = fh.read().split("\n\n", 1)[0]      # the notice paragraph (wrapped to the width)
    assert top.startswith("NOTE: Not run as root (uid 65534)") and "mlps.ia.no-empty-passwords" in top
    assert "xcscan: warning: Not run as root (uid 65534)" in proc.stderr


def test_root_scan_has_no_not_root_notice():
    if os.geteuid() != 0:
        pytest.skip("runs as root")
    res = run("scan", "--root", RHEL, "--profile", "mlps-l3", "--format", "json")
    assert not [n for n in json.loads(res.stdout).get("notices") or [] if n["code"].startswith("not_root")]
