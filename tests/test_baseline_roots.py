"""Every MLPS rule gives the expected verdict on the four baseline fixture roots."""
import datetime
import os

import pytest
import yaml

from baseline_support import BASE, ROOTS, materialise

NOW = datetime.datetime(2024, 1, 15)
EXPECTED = yaml.safe_load(open(os.path.join(BASE, "expected.yaml")))

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="fixture owners need chown (run as root)")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    from scanner.pipeline import scan_report
    base = tmp_path_factory.mktemp("baseline")
    out = {}
    for name in ROOTS:
        root = materialise(name, base)
        out[name] = scan_report(root, profile="all", live=False, now=NOW)
    return out


def mlps_results(report):
    return dict((r["rule_id"], r) for r in report["results"] if r["rule_id"].startswith("mlps."))


@pytest.mark.parametrize("name", ROOTS)
def test_every_rule_gives_the_expected_verdict(reports, name):
    results = mlps_results(reports[name])
    assert set(results) == set(EXPECTED), "rules without an expected verdict (or gone): %s" % sorted(
        set(results) ^ set(EXPECTED))
    wrong = ["%s: expected %s, got %s (%s)" % (rid, EXPECTED[rid][name], res["status"], res.get("actual"))
             for rid, res in sorted(results.items()) if res["status"] != EXPECTED[rid][name]]
    assert not wrong, "\n".join(wrong)


def test_hardened_roots_fail_nothing_automated(reports):
    for name in ("rhel-hardened", "debian-hardened"):
        failing = [rid for rid, r in mlps_results(reports[name]).items() if r["status"] in ("fail", "error")]
        assert failing == [], name


def test_public_tool_mistakes_are_not_repeated(reports):
    deb = mlps_results(reports["debian-default"])
    # nullok in Debian's common-auth: OpenSCAP's no_empty_passwords only reads RHEL's system-auth
    assert deb["mlps.ia.pam-no-nullok"]["status"] == "fail"
    assert "common-auth" in str(reports["debian-default"]["facts"]["pam"]["nullok"])
    # pam_faillock.so exists on disk but no stack uses it
    assert "pam_faillock" in reports["debian-default"]["facts"]["pam"]["modules_on_disk"]
    assert deb["mlps.ia.login-lockout"]["status"] == "fail"
    # nft is installed and nftables.conf has an input chain, but it filters nothing
    fw = reports["debian-default"]["facts"]["firewall"]
    assert fw["backends"] and fw["backends"][0]["name"] == "nftables" and fw["filtering"] is False
    assert deb["mlps.ip.host-firewall"]["status"] == "fail"
    # sshd absent: not_applicable, never a vacuous pass
    assert reports["debian-default"]["facts"]["sshd"]["installed"] is False
    for rid, res in deb.items():
        if "ssh" in rid and rid != "mlps.ia.multi-factor":
            assert res["status"] == "not_applicable", rid


def test_failures_carry_evidence(reports):
    res = mlps_results(reports["rhel-default"])["mlps.ia.password-max-age"]
    assert res["status"] == "fail"
    assert "99999" in str(res["actual"])
    res = mlps_results(reports["rhel-default"])["mlps.ip.unneeded-services"]
    keys = sorted(i["key"] for i in res["items"] if i["status"] == "fail")
    assert keys == ["avahi-daemon.service", "cups.service"]


def test_level_2_profile_selects_fewer_rules(reports):
    from scanner.pipeline import evaluate_report
    l2 = evaluate_report(reports["rhel-default"], profile="mlps-l2", now=NOW)
    l3 = evaluate_report(reports["rhel-default"], profile="mlps-l3", now=NOW)
    ids2 = set(r["rule_id"] for r in l2["results"] if r["rule_id"].startswith("mlps."))
    ids3 = set(r["rule_id"] for r in l3["results"] if r["rule_id"].startswith("mlps."))
    assert ids2 < ids3
    assert "mlps.au.audit-immutable" in ids3 and "mlps.au.audit-immutable" not in ids2
    assert "mlps.ac.mandatory-access-control" not in ids2
