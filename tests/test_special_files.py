"""SUID/SGID and world-writable files: the on-demand walk (scanner/collect/special_files.py) on
fixture roots with real modes, and the three access-control rules that read it."""
import os
import subprocess

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
        "/var/lib/containers/storage/junk/world": "x", "/usr/bin/passwd-link": ("symlink", "/usr/bin/passwd"),
        "/usr/lib/openssh/ssh-keysign": b"\x7fELF", "/var/tmp/own.log": "x",
    })
    os.chmod(root + "/usr/bin/passwd", 0o4755)
    os.chmod(root + "/usr/lib/openssh/ssh-keysign", 0o4711)
    os.chmod(root + "/opt/app/bin/backup-helper", 0o6755)  # SUID and SGID, not a distribution program
    os.chmod(root + "/etc/app/app.conf", 0o666)
    os.chmod(root + "/var/spool/drop", 0o777)  # world-writable, no sticky bit
    os.chmod(root + "/var/shared", 0o1777)  # like /tmp: fine
    os.chmod(root + "/var/lib/containers/storage/junk/world", 0o666)  # under a skipped container store
    os.chmod(root + "/var/tmp", 0o1777)  # as distributions ship it
    os.chmod(root + "/var/tmp/own.log", 0o644)
    return root


def test_walk_finds_suid_sgid_and_world_writable_without_following_links(loose_root):
    facts, errors = walk(loose_root)
    assert facts["complete"] is True and errors == []
    assert facts["walked"] == ["/"]  # one tree: every local filesystem under the root, each once
    by_path = {x["path"]: x for x in facts["suid_sgid"]}
    assert sorted(by_path) == ["/opt/app/bin/backup-helper", "/usr/bin/passwd", "/usr/lib/openssh/ssh-keysign"]
    helper = by_path["/opt/app/bin/backup-helper"]
    assert helper["mode"] == "6755" and helper["suid"] and helper["sgid"] and helper["name"] == "backup-helper"
    assert by_path["/usr/bin/passwd"]["mode"] == "4755" and not by_path["/usr/bin/passwd"]["sgid"]
    assert facts["world_writable_files"] == ["/etc/app/app.conf"]  # not the container store, not the symlink
    assert facts["world_writable_dirs"] == ["/var/spool/drop"]  # /var/shared has the sticky bit
    assert facts["counts"] == {"suid_sgid": 3, "world_writable_files": 1, "world_writable_dirs": 1}


def test_the_walk_through_descriptors_finds_what_the_walk_by_paths_finds(loose_root, monkeypatch):
    """Each directory is listed through its descriptor (an entry's lstat is fstatat(directory, name)); where
    os.scandir takes no descriptor the walk lists by path: the same facts either way, no descriptor left
    open, and an unreadable directory (a file where a directory was listed) counted, not fatal."""
    import scanner.collect.special_files as special_files
    fds = len(os.listdir("/proc/self/fd"))
    by_fd, errors = walk(loose_root)
    assert errors == [] and len(os.listdir("/proc/self/fd")) == fds
    monkeypatch.setattr(os, "supports_fd", set())
    by_path, errors = walk(loose_root)
    assert errors == []
    for facts in (by_fd, by_path):
        facts.pop("elapsed_seconds", None)
    assert by_fd == by_path and by_fd["counts"]["suid_sgid"] == 3
    monkeypatch.undo()
    w = special_files._Walk(len(loose_root), frozenset(), float("inf"), 100, [])
    w.walk(loose_root + "/etc/hosts")        # not a directory: counted as unreadable
    assert w.unreadable == 1 and w.entries == 0 and len(os.listdir("/proc/self/fd")) == fds


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


def test_var_tmp_is_walked_its_sticky_bit_does_not_protect_file_contents(loose_root, make_root, tmp_path):
    """/var/tmp (1777) keeps others from deleting a user's file, not from rewriting a world-writable one,
    and a 0777 directory inside it has no sticky bit of its own: both are findings, like anywhere else."""
    from scanner.pipeline import scan_report
    os.makedirs(loose_root + "/var/tmp/exchange")
    with open(loose_root + "/var/tmp/nightly.sh", "w") as fh:
        fh.write("#!/bin/sh\n")
    os.chmod(loose_root + "/var/tmp/nightly.sh", 0o666)
    os.chmod(loose_root + "/var/tmp/exchange", 0o777)
    facts, errors = walk(loose_root)
    assert errors == [] and "/var/tmp" not in facts["skipped"]
    assert facts["world_writable_files"] == ["/etc/app/app.conf", "/var/tmp/nightly.sh"]
    assert facts["world_writable_dirs"] == ["/var/spool/drop", "/var/tmp/exchange"]  # not /var/tmp itself
    got = {r["rule_id"]: r for r in scan_report(loose_root, profile="mlps-l3")["results"]}
    assert "/var/tmp/nightly.sh" in got["mlps.ac.world-writable-files"]["reason"]["en"]
    assert "/var/tmp/exchange" in got["mlps.ac.world-writable-dirs-sticky"]["reason"]["en"]

    # /var/tmp as shipped (1777) with a user's own 0644 file and a sticky shared directory: both pass
    clean = make_root({"/etc/hosts": "x\n", "/var/tmp/own.log": "x", "/var/tmp/shared/.keep": ""},
                      root=tmp_path / "clean")
    os.chmod(clean + "/var/tmp", 0o1777)
    os.chmod(clean + "/var/tmp/own.log", 0o644)
    os.chmod(clean + "/var/tmp/shared", 0o1777)
    got = {r["rule_id"]: r["status"] for r in scan_report(clean, profile="mlps-l3")["results"]}
    assert got["mlps.ac.world-writable-files"] == "pass"
    assert got["mlps.ac.world-writable-dirs-sticky"] == "pass"
    # /var/tmp itself without its sticky bit is a finding of the directory rule
    os.chmod(clean + "/var/tmp", 0o777)
    report = scan_report(clean, profile="mlps-l3")
    assert report["facts"]["special_files"]["world_writable_dirs"] == ["/var/tmp"]
    got = {r["rule_id"]: r["status"] for r in report["results"]}
    assert got["mlps.ac.world-writable-dirs-sticky"] == "fail"


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


# --------------------------------------------------------------------------- mounts: -xdev per filesystem

# /proc/self/mountinfo as the kernel writes it (proc(5)); a bind mount shows the device of the tree it
# shows and, as its root, the directory inside that filesystem.
MOUNTINFO = """\
22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
23 27 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
27 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
28 27 254:2 / /boot rw,relatime shared:29 - xfs /dev/vda2 rw,attr2,inode64
29 27 0:45 / /opt/nfs rw,relatime shared:30 - nfs4 server:/export rw,vers=4.2
30 29 0:46 / /opt/nfs/inner rw,relatime shared:31 - ext4 /dev/vdb1 rw
31 27 254:1 /srv/data /mnt/data\\040copy rw,relatime shared:1 - ext4 /dev/vda1 rw
32 27 0:47 / /var/lib/docker/overlay2/x/merged rw,relatime - overlay overlay rw,lowerdir=/a
33 27 254:3 / /data rw,relatime shared:32 - ext4 /dev/vdc1 rw
34 27 0:48 / /tmp rw,nosuid,nodev shared:33 - tmpfs tmpfs rw,size=1024k
"""


def test_the_mount_table_plans_one_walk_per_local_filesystem():
    from scanner.collect import _mounts, special_files
    mounts = _mounts.parse_mountinfo(MOUNTINFO)
    assert mounts[6].mountpoint == "/mnt/data copy" and mounts[6].fsroot == "/srv/data"
    skip = frozenset(special_files.SKIP)
    tops, stops, not_walked, dups = _mounts.plan("/", mounts, special_files.NOT_WALKED_FS, skip)
    assert tops == ["/", "/boot", "/data", "/tmp"]
    assert not_walked == [("/opt/nfs", "nfs4")]  # and nothing under it (/opt/nfs/inner)
    assert dups == [("/mnt/data copy", "/")]  # a bind of /srv/data, walked as part of /
    assert {"/proc", "/sys", "/boot", "/opt/nfs", "/opt/nfs/inner", "/mnt/data copy", "/data", "/tmp",
            "/var/lib/docker/overlay2/x/merged"} == stops


@pytest.fixture
def mounts():
    """Mount for real (root only); every mount is undone, innermost first."""
    done = []

    def mount(*argv):
        res = subprocess.run(["mount"] + list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if res.returncode != 0:
            pytest.skip("cannot mount here (%s)" % res.stderr.decode().strip())
        done.append(argv[-1])
    yield mount
    for point in reversed(done):
        subprocess.run(["umount", "-l", point])


def test_each_local_filesystem_is_walked_once_and_no_walk_crosses_a_mount(loose_root, mounts, monkeypatch):
    from scanner.collect import special_files
    data, bind, cache = loose_root + "/data", loose_root + "/srv/bind", loose_root + "/var/lib/containers/mnt"
    for d in (data, bind, cache):
        os.makedirs(d)
    mounts("-t", "tmpfs", "-o", "size=4m", "xcscan-test", data)  # a second filesystem
    mounts("--bind", loose_root + "/opt/app", bind)  # the same tree again
    mounts("-t", "tmpfs", "-o", "size=1m", "xcscan-test", cache)  # under a skipped tree
    for path, mode in ((data + "/bin/tool", 0o4755), (data + "/share/open", 0o666), (cache + "/x", 0o4755)):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write("x")
        os.chmod(path, mode)
    facts, errors = walk(loose_root)
    assert facts["complete"] and errors == []
    assert facts["walked"] == ["/", "/data"]
    assert facts["bind_mounts"] == [{"path": "/srv/bind", "same_as": "/"}]
    suid = sorted(x["path"] for x in facts["suid_sgid"])
    # the bind mount's SUID helper once (as /opt/app/...), the tmpfs one once, nothing from the skipped container store
    assert suid == ["/data/bin/tool", "/opt/app/bin/backup-helper", "/usr/bin/passwd",
                    "/usr/lib/openssh/ssh-keysign"]
    assert facts["world_writable_files"] == ["/data/share/open", "/etc/app/app.conf"]

    # a mount the table does not list (made after it was read) still stops the walk: -xdev by device
    monkeypatch.setattr(special_files, "_mount_table", lambda ctx: "")
    facts, _ = walk(loose_root)
    assert facts["walked"] == ["/"]
    assert "/data/bin/tool" not in [x["path"] for x in facts["suid_sgid"]]


# --------------------------------------------------------------------------- data directories


@pytest.fixture
def pg_root(loose_root):
    """A PostgreSQL data directory (the layout initdb writes) holding a SUID and a world-writable file."""
    main = loose_root + "/var/lib/postgresql/15/main"
    for sub in ("base/1", "global", "pg_wal"):
        os.makedirs(main + "/" + sub)
    for name, mode in (("PG_VERSION", 0o600), ("base/1/PG_VERSION", 0o600), ("base/1/1259", 0o4755),
                       ("global/pg_control", 0o666)):
        with open(main + "/" + name, "w") as fh:
            fh.write("15\n")
        os.chmod(main + "/" + name, mode)
    return loose_root


def test_a_database_data_directory_is_listed_not_walked_and_the_report_says_so(pg_root, monkeypatch):
    from scanner.pipeline import scan_report
    facts, _ = walk(pg_root)
    assert facts["data_dirs_skipped"] == [{"path": "/var/lib/postgresql/15/main", "product": "postgresql",
                                           "markers": ["PG_VERSION", "base", "global"]}]
    assert not any("postgresql" in x["path"] for x in facts["suid_sgid"])
    assert not any("postgresql" in p for p in facts["world_writable_files"])
    report = scan_report(pg_root, profile="mlps-l3")
    assert report["facts"]["special_files"]["data_dirs_skipped"][0]["path"] == "/var/lib/postgresql/15/main"
    got = {r["rule_id"]: r["status"] for r in report["results"]}
    assert got["mlps.ac.suid-sgid-expected"] == "fail"  # the loose root's own helper, not the data file

    monkeypatch.setenv("XCSCAN_WALK_DATA_DIRS", "1")  # on request, data is walked like the rest
    facts, _ = walk(pg_root)
    assert facts["data_dirs_skipped"] == [] and facts["data_dirs_walked"] is True
    assert "/var/lib/postgresql/15/main/base/1/1259" in [x["path"] for x in facts["suid_sgid"]]
    assert "/var/lib/postgresql/15/main/global/pg_control" in facts["world_writable_files"]


def test_a_walk_out_of_budget_makes_the_rules_say_unknown_with_the_coverage(make_root, mounts, tmp_path,
                                                                            monkeypatch):
    from scanner.collect import special_files
    from scanner.pipeline import scan_report
    files = {"/usr/bin/ls": b"\x7fELF", "/etc/hosts": "x\n", "/var/log/syslog": "x\n"}
    monkeypatch.setattr(special_files, "MAX_ENTRIES", 2)
    # a directory inside a filesystem: how many entries there are in all is not known
    report = scan_report(make_root(files, root=tmp_path / "dir"), profile="mlps-l3")
    facts = report["facts"]["special_files"]
    assert facts["complete"] is False and facts["entries"] == 2 and facts["inodes_in_use"] is None
    got = {r["rule_id"]: r for r in report["results"]}
    for rid in ("mlps.ac.world-writable-files", "mlps.ac.world-writable-dirs-sticky", "mlps.ac.suid-sgid-expected"):
        assert got[rid]["status"] == "error", rid  # never pass: nothing found in a part is not "none"
        assert "after covering 2 entries (how many there are in all is not known)" in got[rid]["reason"]["en"]
        assert "仅覆盖 2 个条目" in got[rid]["reason"]["zh"]
    # a whole filesystem (an image's own): statvfs says how many inodes are in use
    (tmp_path / "image").mkdir()
    mounts("-t", "tmpfs", "-o", "size=1m", "xcscan-test", str(tmp_path / "image"))
    report = scan_report(make_root(files, root=tmp_path / "image"), profile="mlps-l3")
    facts = report["facts"]["special_files"]
    assert facts["inodes_in_use"] >= 7  # the root, 3 directories, 3 files
    got = {r["rule_id"]: r for r in report["results"]}
    for rid in ("mlps.ac.world-writable-files", "mlps.ac.world-writable-dirs-sticky", "mlps.ac.suid-sgid-expected"):
        assert got[rid]["status"] == "error", rid
        assert "covering 2 of about %d entries" % facts["inodes_in_use"] in got[rid]["reason"]["en"], rid
        assert "约 %d 个条目中的 2 个" % facts["inodes_in_use"] in got[rid]["reason"]["zh"], rid


# --------------------------------------------------------------------------- a big host

def _million(base, name):
    """1,000,000 directory entries under ``base``: 1,000 directories of 1,000 hard links to one file
    each (cheap to make: no data, one inode per directory)."""
    for d in range(1000):
        sub = os.path.join(base, "%s%03d" % (name, d))
        os.makedirs(sub)
        first = os.path.join(sub, "f000")
        open(first, "w").close()
        for f in range(1, 999):
            os.link(first, os.path.join(sub, "f%03d" % f))


@pytest.fixture(scope="module")
def big_root(tmp_path_factory):
    """A tmpfs root with a million entries in the system trees (SUID, world-writable file and
    directory placed deep inside) and a PostgreSQL data directory holding another million."""
    root = str(tmp_path_factory.mktemp("big"))
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g,nr_inodes=0", "xcscan-test", root],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if res.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (%s)" % res.stderr.decode().strip())
    try:
        _million(root + "/usr/share/many", "d")
        deep = root + "/opt/vendor" + "/level" * 30
        os.makedirs(deep + "/drop")
        for path, mode in ((deep + "/bin-helper", 0o4755), (deep + "/shared.conf", 0o666)):
            open(path, "w").close()
            os.chmod(path, mode)
        os.chmod(deep + "/drop", 0o777)
        main = root + "/var/lib/postgresql/15/main"
        os.makedirs(main + "/global")
        open(main + "/PG_VERSION", "w").close()
        _million(main + "/base", "1")
        yield root
    finally:
        subprocess.run(["umount", "-l", root])


@pytest.fixture(scope="module")
def big_walk(big_root):
    return walk(big_root)  # one walk for both tests (each takes seconds)


def test_a_million_entries_are_decided_within_the_default_budget(big_walk):
    facts, errors = big_walk
    assert errors == [] and facts["complete"] is True, facts["stopped"]
    assert facts["entries"] >= 1000000
    deep = "/opt/vendor" + "/level" * 30
    assert [x["path"] for x in facts["suid_sgid"]] == [deep + "/bin-helper"]
    assert facts["world_writable_files"] == [deep + "/shared.conf"]
    assert facts["world_writable_dirs"] == [deep + "/drop"]


def test_a_data_directory_of_a_million_files_is_skipped_and_stated(big_walk):
    facts, _ = big_walk
    assert facts["data_dirs_skipped"] == [{"path": "/var/lib/postgresql/15/main", "product": "postgresql",
                                           "markers": ["PG_VERSION", "base", "global"]}]
    assert 1000000 <= facts["entries"] < 1100000  # the second million was not walked


def test_var_cache_is_walked_both_ways(loose_root, make_root, tmp_path):
    """/var/cache is not excluded by the sources (STIG/CIS exclude only pseudo filesystems) and programs read
    back what is cached there: a world-writable file or sticky-less 0777 directory in it is a finding; a cache
    with ordinary modes gives none."""
    from scanner.pipeline import scan_report
    os.makedirs(loose_root + "/var/cache/man/exchange")
    with open(loose_root + "/var/cache/man/index.db", "w") as fh:
        fh.write("x")
    os.chmod(loose_root + "/var/cache/man/index.db", 0o666)
    os.chmod(loose_root + "/var/cache/man/exchange", 0o777)
    facts, errors = walk(loose_root)
    assert errors == [] and "/var/cache" not in facts["skipped"]
    assert facts["world_writable_files"] == ["/etc/app/app.conf", "/var/cache/man/index.db"]
    assert facts["world_writable_dirs"] == ["/var/cache/man/exchange", "/var/spool/drop"]
    got = {r["rule_id"]: r for r in scan_report(loose_root, profile="mlps-l3")["results"]}
    assert "/var/cache/man/index.db" in got["mlps.ac.world-writable-files"]["reason"]["en"]
    assert "/var/cache/man/exchange" in got["mlps.ac.world-writable-dirs-sticky"]["reason"]["en"]

    clean = make_root({"/usr/bin/passwd": b"\x7fELF", "/etc/hosts": "x\n", "/var/cache/man/index.db": "x",
                       "/var/cache/apt/archives/partial/.keep": ""}, root=tmp_path / "clean")
    os.chmod(clean + "/usr/bin/passwd", 0o4755)
    os.chmod(clean + "/var/cache/man/index.db", 0o664)
    os.chmod(clean + "/var/cache/apt/archives/partial", 0o700)
    facts, errors = walk(clean)
    assert errors == [] and facts["complete"] is True and "/var/cache" not in facts["skipped"]
    assert facts["world_writable_files"] == [] and facts["world_writable_dirs"] == []
    got = {r["rule_id"]: r["status"] for r in scan_report(clean, profile="mlps-l3")["results"]}
    assert got["mlps.ac.world-writable-files"] == "pass"
    assert got["mlps.ac.world-writable-dirs-sticky"] == "pass"
