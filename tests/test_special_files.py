"""SUID/SGID and world-writable files: the on-demand walk (scanner/collect/special_files.py) on
fixture roots with real modes, and the three access-control rules that read it."""
import os

import pytest

from scanner.context import Context


def walk(root):
    from scanner.collect import special_files
    ctx = Context(root=root, live=False)
    ctx.set_collector("special_files")
    return special_files.collect(ctx), ctx.errors


@pytest.fixture
def loose_root(make_root):
    root = make_root({
        "/usr/bin/passwd": b"\x7fELF passwd", "/usr/bin/ls": b"\x7fELF ls",
        "/opt/app/bin/backup-helper": b"#!/bin/sh\n", "/etc/app/app.conf": "key=1\n",
        "/etc/hosts": "127.0.0.1 localhost\n", "/var/spool/drop/.keep": "", "/var/shared/.keep": "",
        "/var/cache/junk/world": "x", "/usr/bin/passwd-link": ("symlink", "/usr/bin/passwd"),
        "/usr/lib/openssh/ssh-keysign": b"\x7fELF",
    })
    os.chmod(root + "/usr/bin/passwd", 0o4755)
    os.chmod(root + "/usr/lib/openssh/ssh-keysign", 0o4711)
    os.chmod(root + "/opt/app/bin/backup-helper", 0o6755)  # SUID and SGID, not a distribution program
    os.chmod(root + "/etc/app/app.conf", 0o666)
    os.chmod(root + "/var/spool/drop", 0o777)  # world-writable, no sticky bit
    os.chmod(root + "/var/shared", 0o1777)  # like /tmp: fine
    os.chmod(root + "/var/cache/junk/world", 0o666)  # under a skipped cache tree
    return root


def test_walk_finds_suid_sgid_and_world_writable_without_following_links(loose_root):
    facts, errors = walk(loose_root)
    assert facts["complete"] is True and errors == []
    assert {"/usr", "/etc", "/opt", "/var"} <= set(facts["walked"])
    by_path = {x["path"]: x for x in facts["suid_sgid"]}
    assert sorted(by_path) == ["/opt/app/bin/backup-helper", "/usr/bin/passwd", "/usr/lib/openssh/ssh-keysign"]
    helper = by_path["/opt/app/bin/backup-helper"]
    assert helper["mode"] == "6755" and helper["suid"] and helper["sgid"] and helper["name"] == "backup-helper"
    assert by_path["/usr/bin/passwd"]["mode"] == "4755" and not by_path["/usr/bin/passwd"]["sgid"]
    assert facts["world_writable_files"] == ["/etc/app/app.conf"]  # not /var/cache/..., not the symlink
    assert facts["world_writable_dirs"] == ["/var/spool/drop"]  # /var/shared has the sticky bit
    assert facts["counts"] == {"suid_sgid": 3, "world_writable_files": 1, "world_writable_dirs": 1}


def test_rules_fail_on_the_loose_root_and_pass_on_a_clean_one(loose_root, make_root, tmp_path):
    from scanner.pipeline import scan_report
    report = scan_report(loose_root, profile="mlps-l3")
    got = {r["rule_id"]: r for r in report["results"]}
    suid = got["mlps.ac.suid-sgid-expected"]
    assert suid["status"] == "fail"
    assert [i["key"] for i in suid["items"] if i["status"] == "fail"] == ["/opt/app/bin/backup-helper"]
    assert got["mlps.ac.world-writable-files"]["status"] == "fail"
    assert "/etc/app/app.conf" in got["mlps.ac.world-writable-files"]["reason"]["en"]
    assert got["mlps.ac.world-writable-dirs-sticky"]["status"] == "fail"

    clean = make_root({"/usr/bin/passwd": b"\x7fELF", "/etc/hosts": "x\n", "/var/shared/.keep": ""},
                      root=tmp_path / "clean")
    os.chmod(clean + "/usr/bin/passwd", 0o4755)
    os.chmod(clean + "/var/shared", 0o1777)
    got = {r["rule_id"]: r["status"] for r in scan_report(clean, profile="mlps-l3")["results"]}
    assert got["mlps.ac.suid-sgid-expected"] == "pass"
    assert got["mlps.ac.world-writable-files"] == "pass"
    assert got["mlps.ac.world-writable-dirs-sticky"] == "pass"


def test_the_walk_runs_only_when_a_selected_rule_reads_it(loose_root):
    from scanner.pipeline import inventory_report, scan_report
    for report in (inventory_report(loose_root), scan_report(loose_root, profile="xinchuang")):
        assert report["facts"]["special_files"] is None
        assert report["facts"]["collection"]["special_files"]["status"] == "not_collected"
    report = scan_report(loose_root, profile="mlps-l2")
    assert report["facts"]["collection"]["special_files"]["status"] == "ok"


def test_a_walk_stopped_early_keeps_what_it_found_and_leaves_the_rest_unknown(loose_root, monkeypatch):
    from scanner.collect import special_files
    monkeypatch.setattr(special_files, "MAX_ENTRIES", 4)
    facts, errors = walk(loose_root)
    assert facts["complete"] is False and "stopped after 4 entries" in facts["stopped"]
    assert any("special-file walk stopped" in e["message"] for e in errors)
    for key in ("suid_sgid", "world_writable_files", "world_writable_dirs"):
        assert facts[key] is None or len(facts[key]) >= 1  # never an empty list that would read "none"


def test_live_walk_skips_network_and_pseudo_mounts(tmp_path, monkeypatch):
    from scanner.collect import special_files
    ctx = Context(root="/", live=True)
    monkeypatch.setattr(ctx.fs, "read_text", lambda path, **kw: (
        "proc /proc proc rw 0 0\nserver:/export /opt/nfs nfs4 rw 0 0\n/dev/sda1 / ext4 rw 0 0\n"
        "tmpfs /opt/scratch tmpfs rw 0 0\n"))
    skipped = special_files._skipped_mounts(ctx)
    assert skipped == {"/proc", "/opt/nfs"}
