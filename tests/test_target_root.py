"""An empty, unmounted or wrong --root is caught: `scan` and `inventory` exit 1 with "no operating
system found under ROOT — is the image mounted?" unless --allow-unknown-os, and then every report
format says so at the top. The project's own fixture roots all have an OS."""
import glob
import json
import os

import pytest
from click.testing import CliRunner

from corpus import corpus_dir
from scanner.cli import cli
from scanner.target import os_marker

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE_ROOTS = sorted(glob.glob(os.path.join(HERE, "fixtures", "baseline", "*-*[!s]")) +
                       glob.glob(os.path.join(HERE, "fixtures", "engine", "*", "root")) +
                       glob.glob(os.path.join(HERE, "fixtures", "hardware", "*")))


def run(*args):
    runner = CliRunner()
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        pass
    return runner.invoke(cli, list(args), env={"LANG": "en_US.UTF-8", "LC_ALL": ""}, catch_exceptions=False)


def unmounted(tmp_path):
    """What an image's mount point looks like before `mount`: empty, or a bare filesystem's lost+found."""
    root = tmp_path / "mnt-image"
    (root / "lost+found").mkdir(parents=True)
    return root


def usr_not_mounted(tmp_path):
    """The root partition is there, the separate /usr partition is not: os-release dangles."""
    root = tmp_path / "rootpart"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("db01\n")
    os.symlink("../usr/lib/os-release", str(root / "etc" / "os-release"))
    return root


def wrong(tmp_path):
    """A directory that is not a system at all (someone's documents)."""
    root = tmp_path / "docs"
    (root / "etc").mkdir(parents=True)          # even with an etc/, no release file: no OS
    (root / "notes.txt").write_text("meeting notes\n")
    return root


def empty(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    return root


@pytest.mark.parametrize("make", [empty, unmounted, usr_not_mounted, wrong])
@pytest.mark.parametrize("command", ["scan", "inventory"])
def test_no_os_is_an_error(tmp_path, make, command):
    root = make(tmp_path)
    out = tmp_path / "r.json"
    res = run(command, "--root", str(root), "--format", "json", "-o", str(out))
    assert res.exit_code == 1
    assert "no operating system found under %s — is the image mounted?" % root in res.stderr
    assert "--allow-unknown-os" in res.stderr
    assert not out.exists() and res.stdout == ""


@pytest.mark.parametrize("make", [empty, unmounted, usr_not_mounted])
def test_fix_refuses_a_root_without_an_os(tmp_path, make):
    """`fix --root` on an unmounted mount point would scan nothing and --apply would write a made-up
    /etc under it (hidden again once the image is mounted over it)."""
    root = make(tmp_path)
    before = sorted(os.path.relpath(os.path.join(d, n), str(root)) for d, ds, fs in os.walk(str(root)) for n in ds + fs)
    for mode in (["--dry-run"], ["--apply", "--backup-dir", str(tmp_path / "bk"), "--lock", str(tmp_path / "lock")],
                 ["--script", "bash"]):
        res = run("fix", "--root", str(root), "--profile", "mlps-l3", *mode)
        assert res.exit_code == 1, (mode, res.stdout[:300])
        assert "no operating system found under %s — is the image mounted?" % root in res.stderr
        assert res.stdout == "" and "scanning" not in res.stderr
    after = sorted(os.path.relpath(os.path.join(d, n), str(root)) for d, ds, fs in os.walk(str(root)) for n in ds + fs)
    assert after == before and not (tmp_path / "bk").exists()
    # a script for every rule, or from a saved report, does not read the root: no check there
    assert run("fix", "--root", str(root), "--every", "--script", "bash").exit_code == 0
    allowed = run("fix", "--root", str(root), "--allow-unknown-os", "--profile", "mlps-l3", "--dry-run")
    assert allowed.exit_code == 0, allowed.stderr
    assert "+++ b/etc/" in allowed.stdout


def test_dangling_os_release_names_the_link(tmp_path):
    root = usr_not_mounted(tmp_path)
    res = run("scan", "--root", str(root))
    assert "/etc/os-release -> ../usr/lib/os-release points nowhere" in res.stderr and "/usr" in res.stderr


def test_allowed_unknown_os_is_said_at_the_top_of_every_format(tmp_path):
    root = unmounted(tmp_path)
    res = run("scan", "--root", str(root), "--allow-unknown-os", "--profile", "xinchuang", "--format", "json",
              "-o", "html:%s" % (tmp_path / "r.html"), "-o", "table:%s" % (tmp_path / "r.txt"), "--lang", "en")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["notices"] == [{"code": "unknown_os", "fields": {"root": str(root)}}]
    table = (tmp_path / "r.txt").read_text(encoding="utf-8")
    assert table.splitlines()[0].startswith("NOTE: No operating system was found under %s" % root)
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    notice = html.index('<p class="notice" role="alert">No operating system was found under')
    assert notice < html.index('<dl class="host">')     # at the top, before the host details
    zh = run("inventory", "--root", str(root), "--allow-unknown-os", "--lang", "zh")
    assert zh.exit_code == 0 and zh.stdout.startswith("注意：在 %s 下未找到操作系统" % root)


def test_allowed_unknown_os_in_junit_summary_and_csv(tmp_path):
    """JUnit carries the notice as a suite property (schema-valid), the summary edition at its top; CSV
    has no place for it, and stderr says it whatever the format."""
    import xml.etree.ElementTree as ET
    import xmlschema
    root = empty(tmp_path)
    junit, summary, csv_path = tmp_path / "r.xml", tmp_path / "s.html", tmp_path / "r.csv"
    res = run("scan", "--root", str(root), "--allow-unknown-os", "--profile", "xinchuang", "--format", "csv",
              "-o", str(csv_path), "-o", "junit:%s" % junit, "-o", "summary:%s" % summary, "--lang", "en")
    assert res.exit_code == 0, res.stderr
    assert "xcscan: warning: No operating system was found under %s" % root in res.stderr
    xmlschema.XMLSchema(os.path.join(HERE, "fixtures", "junit", "junit-10.xsd")).validate(str(junit))
    suite = ET.parse(str(junit)).getroot().find("testsuite")
    notices = [p.get("value") for p in suite.find("properties") if p.get("name") == "notice"]
    assert len(notices) == 1 and notices[0].startswith("No operating system was found under %s" % root)
    html = summary.read_text(encoding="utf-8")
    assert html.index('<p class="notice" role="alert">No operating system') < html.index('<dl class="host">')
    report = run("scan", "--root", str(root), "--allow-unknown-os", "--profile", "xinchuang", "--format", "json",
                 "--quiet")
    saved = tmp_path / "r.json"
    saved.write_text(report.stdout, encoding="utf-8")
    zh = run("report", str(saved), "--format", "junit", "--lang", "zh")
    assert zh.exit_code == 0, zh.stderr
    assert [p.get("value")[:20] for p in ET.fromstring(zh.stdout.encode("utf-8")).iter("property")
            if p.get("name") == "notice"] == [("在 %s 下未找到操作系统" % root)[:20]]


@pytest.mark.skipif(os.geteuid() != 0, reason="an unprivileged scan carries the not_root notice")
def test_a_root_scan_has_no_notice_property(tmp_path):
    import xml.etree.ElementTree as ET
    res = run("scan", "--root", os.path.join(HERE, "fixtures", "engine", "rhel-default", "root"),
              "--profile", "xinchuang", "--format", "junit")
    assert res.exit_code == 0, res.stderr
    assert [p for p in ET.fromstring(res.stdout.encode("utf-8")).iter("property") if p.get("name") == "notice"] == []


@pytest.mark.parametrize("root", FIXTURE_ROOTS, ids=lambda p: os.path.relpath(p, HERE))
def test_fixture_roots_have_an_os(root):
    assert os_marker(root)[0] is not None


def test_corpus_os_roots_have_an_os():
    base = corpus_dir()
    if base is None:
        pytest.skip("no shared corpus")
    roots = glob.glob(os.path.join(base, "os", "*"))
    assert len(roots) >= 27
    assert [r for r in roots if os_marker(r)[0] is None] == []


def test_fixture_root_scans_without_the_flag(tmp_path):
    root = os.path.join(HERE, "fixtures", "engine", "rhel-default", "root")
    res = run("scan", "--root", root, "--profile", "xinchuang", "--format", "json")
    assert res.exit_code == 0, res.stderr
    assert "notices" not in json.loads(res.stdout)
