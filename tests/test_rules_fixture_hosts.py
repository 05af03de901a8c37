"""Fixture roots of a default and a hardened host, rhel-like and debian-like
(tests/fixtures/engine/<host>/root), scanned offline with profile `all`: every xinchuang, crypto and
data-security rule gives the verdict in tests/fixtures/engine/<host>/expected.yaml."""
import os
import shutil

import pytest
import yaml

from scanner.engine import load_ruleset

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "engine")
HOSTS = sorted(d for d in os.listdir(HERE) if os.path.isfile(os.path.join(HERE, d, "expected.yaml")))
AREAS = ("xinchuang", "crypto", "data-security")


def prepare(host, tmp_path):
    with open(os.path.join(HERE, host, "expected.yaml"), encoding="utf-8") as fh:
        spec = yaml.safe_load(fh)
    root = str(tmp_path / host)
    shutil.copytree(os.path.join(HERE, host, "root"), root, symlinks=True)
    setup = spec.get("setup") or {}
    for path, mode in (setup.get("modes") or {}).items():   # git keeps no directory modes
        os.chmod(root + path, int(mode, 8))
    can_chown = hasattr(os, "geteuid") and os.geteuid() == 0
    for path, uid in (setup.get("owners") or {}).items():
        if can_chown:
            os.chown(root + path, uid, uid)
    return root, spec["expected"], can_chown


def test_fixture_hosts_present():
    assert HOSTS == ["debian-default", "debian-hardened", "rhel-default", "rhel-hardened"]


@pytest.mark.parametrize("host", HOSTS)
def test_expected_verdicts(host, tmp_path):
    from scanner.pipeline import scan_report
    root, expected, can_chown = prepare(host, tmp_path)
    report = scan_report(root=root, profile="all")
    got = dict((r["rule_id"], r) for r in report["results"] if r["area"] in AREAS)
    ours = set(r["id"] for r in load_ruleset() if r["area"] in AREAS)
    assert set(expected) == ours, "expected.yaml must name every %s rule" % "/".join(AREAS)
    wrong = []
    for rid, want in sorted(expected.items()):
        if rid == "data-security.db.data-dir-owner" and not can_chown:
            continue
        if got[rid]["status"] != want:
            wrong.append("%s: expected %s, got %s (%s)" % (rid, want, got[rid]["status"],
                                                          (got[rid]["reason"] or {}).get("en")))
    assert wrong == []
    for r in got.values():  # every verdict carries its reason in both languages
        assert r["reason"] and r["reason"]["zh"] and r["reason"]["en"], r["rule_id"]
