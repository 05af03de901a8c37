"""bench/compare_peers.py: reading Lynis' report and log, and the OpenSCAP tailoring it writes."""
import importlib.util
import os
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load():
    spec = importlib.util.spec_from_file_location("compare_peers", os.path.join(REPO, "bench", "compare_peers.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lynis_verdicts_per_test_and_per_item(tmp_path):
    cp = load()
    (tmp_path / "lynis-report.dat").write_text(
        "lynis_version=3.0.8\ntests_executed=AUTH-9408|KRNL-6000|FIRE-4590|\ntests_skipped=SSH-7408|\n"
        "suggestion[]=KRNL-6000|One or more sysctl values differ from the scan profile|-|-|\n")
    (tmp_path / "lynis.log").write_text(
        "2026-11-24 00:23:20 Performing test ID AUTH-9408 (Logging of failed login attempts)\n"
        "2026-11-24 00:23:20 Result: found pam_faillock module on disk\n"
        "2026-11-24 00:23:27 Performing test ID KRNL-6000 (Check sysctl key pairs in scan profile)\n"
        "2026-11-24 00:23:28 Result: sysctl key fs.protected_fifos has a different value than expected in scan profile. Expected=2, Real=0\n"
        "2026-11-24 00:23:28 Result: sysctl key fs.suid_dumpable contains equal expected and current value (0)\n")
    results, report = cp.parse_lynis(str(tmp_path))
    assert report["lynis_version"] == "3.0.8"
    assert results["AUTH-9408"]["verdict"] == "no finding" and results["SSH-7408"]["verdict"] == "skipped"
    assert cp.lynis_verdict(results, "KRNL-6000") == "finding"
    assert cp.lynis_verdict(results, "KRNL-6000:fs.suid_dumpable") == "no finding"
    assert cp.lynis_verdict(results, "KRNL-6000:fs.protected_fifos") == "finding"
    assert cp.lynis_verdict(results, "KRNL-6000:kernel.kptr_restrict") == "not checked"
    assert cp.lynis_verdict(results, "NONE-0000") == "n/a"


def test_tailoring_selects_exactly_the_compared_rules(tmp_path):
    cp = load()
    path = cp.tailoring(str(tmp_path), ["accounts_maximum_age_login_defs", "no_empty_passwords"])
    root = ET.parse(path).getroot()
    ns = "{http://checklists.nist.gov/xccdf/1.2}"
    profile = root.find(ns + "Profile")
    assert profile.get("id") == "xccdf_xcscan_profile_peers" and profile.get("extends") is None
    assert [s.get("idref") for s in profile.findall(ns + "select")] == [
        cp.RULE_PREFIX + "accounts_maximum_age_login_defs", cp.RULE_PREFIX + "no_empty_passwords"]


def test_agreement_reading():
    cp = load()
    assert cp.agreement(["fail"], ["no finding"], ["fail"]) == "Lynis DISAGREES; OpenSCAP agrees"
    assert cp.agreement(["not_applicable"], ["skipped"], ["pass"]) == \
        "Lynis: not checked; OpenSCAP: pass where xcscan says not applicable"
    every_rule = set(r for c in cp.COMPARISONS for r in c[1])
    from scanner.engine import load_ruleset
    known = set(r["id"] for r in load_ruleset(use_cache=False))
    assert every_rule <= known
