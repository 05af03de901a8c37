"""Effective configuration as the real programs apply it (issue 13): fixture roots shaped like the real
system, each with a compliant and a non-compliant case, and where the real binary exists here, a check
against what the binary itself decides."""
import datetime
import os
import shutil
import subprocess

import pytest

from scanner.context import Context

NOW = datetime.datetime(2024, 1, 15)
ELF = b"\x7fELF\x02\x01\x01"


def run(root, name, live=False):
    import importlib
    ctx = Context(root=root, live=live)
    module = importlib.import_module("scanner.collect." + name)
    ctx.set_collector(module.NAME)
    return module.collect(ctx), ctx.errors


def verdict(root, rule_id, live=False):
    """The rule's result on a scan of ``root`` (only the collectors it reads)."""
    from scanner.collect import collect_facts
    from scanner.engine import facts_read, load_ruleset
    from scanner.engine.evaluator import evaluate_rule
    rule = [r for r in load_ruleset() if r["id"] == rule_id][0]
    ctx = Context(root=root, live=live)
    wanted = facts_read([rule])
    facts = collect_facts(ctx, only=wanted, wanted=wanted)
    return evaluate_rule(rule, facts, None, live=live, now=NOW)


# ---------------------------------------------------------------- sysctl (item 1)
# RHEL 9's systemd ships /usr/lib/sysctl.d/50-default.conf with globs and "-key" exclusions and
# /etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf; systemd-sysctl lives in /usr/lib/systemd.
RHEL_50_DEFAULT = (
    "kernel.sysrq = 16\n"
    "net.ipv4.conf.default.rp_filter = 2\n"
    "net.ipv4.conf.*.rp_filter = 2\n"
    "-net.ipv4.conf.all.rp_filter\n"
    "net.ipv4.conf.default.accept_source_route = 0\n"
    "net.ipv4.conf.*.accept_source_route = 0\n"
    "-net.ipv4.conf.all.accept_source_route\n"
    "fs.protected_hardlinks = 1\n"
)


def systemd_root(make_root, files, root=None):
    base = {"/usr/lib/systemd/systemd-sysctl": ELF, "/usr/lib/sysctl.d/50-default.conf": RHEL_50_DEFAULT}
    base.update(files)
    return make_root(base, root=root)


def test_sysctl_conf_is_not_read_by_systemd_sysctl_without_the_99_link(make_root, tmp_path):
    # no link: what an admin wrote into /etc/sysctl.conf never reaches the kernel at boot
    root = systemd_root(make_root, {"/etc/sysctl.conf": "net.ipv4.ip_forward = 0\nkernel.randomize_va_space = 0\n",
                                    "/etc/sysctl.d/10-router.conf": "net.ipv4.ip_forward = 1\n"})
    facts, _ = run(root, "sysctl")
    assert facts["order"] == "systemd-sysctl"
    assert facts["net"]["ipv4"]["ip_forward"] == 1 and facts["kernel"]["randomize_va_space"] == 2
    assert facts["not_applied"][-1]["path"] == "/etc/sysctl.conf"
    assert verdict(root, "mlps.ip.sysctl-ip-forward")["status"] == "fail"
    # with the link distributions ship, the file is applied as 99-sysctl.conf: last, so it wins
    root = systemd_root(make_root, {"/etc/sysctl.conf": "net.ipv4.ip_forward = 0\n",
                                    "/etc/sysctl.d/10-router.conf": "net.ipv4.ip_forward = 1\n",
                                    "/etc/sysctl.d/99-sysctl.conf": ("symlink", "../sysctl.conf")},
                        root=tmp_path / "linked")
    facts, _ = run(root, "sysctl")
    assert facts["net"]["ipv4"]["ip_forward"] == 0
    assert facts["sources"]["net.ipv4.ip_forward"] == "/etc/sysctl.d/99-sysctl.conf:1"
    res = verdict(root, "mlps.ip.sysctl-ip-forward")
    assert res["status"] == "pass"
    # compliant at boot, but the same key is set to different values: every location is in the evidence
    conflict = [e for e in res["evidence"] if e["fact"] == "sysctl.conflicts.net.ipv4.ip_forward"][0]["value"]
    assert conflict == [{"value": 1, "location": "/etc/sysctl.d/10-router.conf:1"},
                        {"value": 0, "location": "/etc/sysctl.d/99-sysctl.conf:1"}]


def test_procps_system_order_reads_sysctl_conf_last(make_root):
    # no systemd: the init script runs `sysctl --system`, which applies /etc/sysctl.conf after every sysctl.d file
    root = make_root({"/etc/sysctl.conf": "net.ipv4.ip_forward = 0\n",
                      "/etc/sysctl.d/99-zz-router.conf": "net.ipv4.ip_forward = 1\n"})
    facts, _ = run(root, "sysctl")
    assert facts["order"] == "procps" and facts["net"]["ipv4"]["ip_forward"] == 0
    assert facts["files"] == ["/etc/sysctl.d/99-zz-router.conf", "/etc/sysctl.conf"]
    assert verdict(root, "mlps.ip.sysctl-ip-forward")["status"] == "pass"


def test_sysctl_globs_explicit_keys_and_exclusions(make_root, tmp_path):
    # RHEL's default: the glob sets every interface's rp_filter to 2 but "-net.ipv4.conf.all.rp_filter"
    # keeps "all" out of it, so "all" keeps the kernel default 0 -- not compliant
    root = systemd_root(make_root, {})
    facts, _ = run(root, "sysctl")
    assert facts["net"]["ipv4"]["conf"]["all"]["rp_filter"] == 0
    assert facts["net"]["ipv4"]["conf"]["default"]["rp_filter"] == 2
    assert facts["sources"]["net.ipv4.conf.all.rp_filter"] == "kernel default"
    assert verdict(root, "mlps.ip.sysctl-rp-filter")["status"] == "fail"
    # the exclusion keeps "all" out of every glob, a later admin glob too; a glob without an exclusion
    # reaches "all"; a key with an explicit assignment (even in an earlier file) is never set by a glob
    root = systemd_root(make_root, {"/etc/sysctl.d/60-rp.conf": "net/ipv4/conf/*/rp_filter = 1\n",
                                    "/etc/sysctl.d/60-martians.conf": "net.ipv4.conf.*.log_martians = 1\n",
                                    "/etc/sysctl.d/70-src.conf": "net.ipv4.conf.*.accept_source_route = 1\n",
                                    "/etc/sysctl.d/10-src.conf": "net.ipv4.conf.all.accept_source_route=0\n"},
                        root=tmp_path / "glob")
    facts, _ = run(root, "sysctl")
    assert facts["net"]["ipv4"]["conf"]["all"]["rp_filter"] == 0
    assert facts["net"]["ipv4"]["conf"]["all"]["log_martians"] == 1
    assert facts["sources"]["net.ipv4.conf.all.log_martians"] == "/etc/sysctl.d/60-martians.conf:1"
    assert facts["net"]["ipv4"]["conf"]["all"]["accept_source_route"] == 0
    assert verdict(root, "mlps.ip.sysctl-rp-filter")["status"] == "fail"
    assert verdict(root, "mlps.ip.sysctl-log-martians")["status"] == "pass"
    assert verdict(root, "mlps.ip.sysctl-source-route")["status"] == "pass"
    root = systemd_root(make_root, {"/etc/sysctl.d/60-rp.conf": "net.ipv4.conf.all.rp_filter = 1\n"},
                        root=tmp_path / "explicit")
    assert verdict(root, "mlps.ip.sysctl-rp-filter")["status"] == "pass"


def test_sysctl_masking_and_same_name_shadowing(make_root, tmp_path):
    root = systemd_root(make_root, {"/usr/lib/sysctl.d/10-hardening.conf": "kernel.randomize_va_space = 2\n",
                                    "/etc/sysctl.d/10-hardening.conf": "kernel.randomize_va_space = 0\n"})
    facts, _ = run(root, "sysctl")
    assert facts["kernel"]["randomize_va_space"] == 0
    assert {"path": "/usr/lib/sysctl.d/10-hardening.conf", "why": "shadowed by /etc/sysctl.d/10-hardening.conf"} \
        in facts["not_applied"]
    assert facts["conflicts"] == {}  # a shadowed file is not applied, so it does not conflict
    assert verdict(root, "mlps.ip.sysctl-aslr")["status"] == "fail"
    # /etc/sysctl.d/NAME -> /dev/null masks the vendor file of that name
    root = systemd_root(make_root, {"/usr/lib/sysctl.d/10-weak.conf": "kernel.randomize_va_space = 0\n",
                                    "/etc/sysctl.d/10-weak.conf": ("symlink", "/dev/null")}, root=tmp_path / "m")
    facts, _ = run(root, "sysctl")
    assert facts["kernel"]["randomize_va_space"] == 2
    assert verdict(root, "mlps.ip.sysctl-aslr")["status"] == "pass"
    # a masked systemd-sysctl.service applies nothing at boot: kernel defaults persist
    root = systemd_root(make_root, {"/etc/sysctl.d/90-mlps.conf": "net.ipv4.conf.all.accept_redirects = 0\n",
                                    "/etc/systemd/system/systemd-sysctl.service": ("symlink", "/dev/null")},
                        root=tmp_path / "masked")
    facts, _ = run(root, "sysctl")
    assert facts["masked"] is True and facts["files"] == []
    assert facts["net"]["ipv4"]["conf"]["all"]["accept_redirects"] == 1
    assert verdict(root, "mlps.ip.sysctl-accept-redirects")["status"] == "fail"


def test_sysctl_key_separators_and_whitespace(make_root):
    from scanner.collect.sysctl import normalize_key
    assert normalize_key("net/ipv4/conf/enp3s0.200/forwarding") == "net.ipv4.conf.enp3s0/200.forwarding"
    assert normalize_key("net.ipv4.conf.enp3s0/200.forwarding") == "net.ipv4.conf.enp3s0/200.forwarding"
    root = make_root({"/etc/sysctl.d/50-x.conf": "  ; comment\n  -kernel/randomize_va_space   =   1  \n"})
    facts, _ = run(root, "sysctl")
    assert facts["kernel"]["randomize_va_space"] == 1


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_sysctl_file_order_matches_systemd_analyze_cat_config(make_root):
    """systemd's own file resolution (systemd-analyze cat-config --root) picks the same files in the same order."""
    root = systemd_root(make_root, {
        "/etc/sysctl.d/50-default.conf": "kernel.sysrq = 0\n",
        "/run/sysctl.d/20-run.conf": "kernel.sysrq = 1\n",
        "/usr/local/lib/sysctl.d/20-run.conf": "kernel.sysrq = 2\n",
        "/usr/local/lib/sysctl.d/30-local.conf": "kernel.sysrq = 3\n",
        "/usr/lib/sysctl.d/99-sysctl.conf": ("symlink", "../../../etc/sysctl.conf"),
        "/etc/sysctl.conf": "kernel.sysrq = 4\n",
        "/etc/sysctl.d/README": "not a conf file\n",
    })
    out = subprocess.run(["systemd-analyze", "cat-config", "--root=" + root, "sysctl.d"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert out.returncode == 0, out.stderr
    theirs = [line[2:][len(root):] for line in out.stdout.splitlines() if line.startswith("# " + root)]
    facts, _ = run(root, "sysctl")
    assert facts["files"] == theirs
    assert facts["kernel"]["sysrq"] == 4 and facts["sources"]["kernel.sysrq"] == "/usr/lib/sysctl.d/99-sysctl.conf:1"


@pytest.mark.skipif(not os.path.isdir("/proc/sys/kernel"), reason="needs /proc")
def test_sysctl_live_value_kept_beside_the_boot_value():
    facts, _ = run("/", "sysctl", live=True)
    with open("/proc/sys/net/ipv4/ip_forward") as fh:
        running = int(fh.read())
    assert facts["live"]["net.ipv4.ip_forward"] == running
    boot = facts["net"]["ipv4"]["ip_forward"]
    assert ("net.ipv4.ip_forward" in facts["live_differs"]) == (boot != running)
    # the rule fails when either the persisted or the running value is wrong
    res = verdict("/", "mlps.ip.sysctl-ip-forward", live=True)
    assert res["status"] == ("pass" if boot == 0 and running == 0 else "fail")
