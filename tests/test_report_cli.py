"""`xcscan report` and the multi-output writer: re-rendering, several artefacts, atomic writes."""
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from report_fixtures import FIXTURES, inventory_only, load
from scanner.cli import cli
from scanner.render import render

FIXTURE = os.path.join(FIXTURES, "kylin-l3.json")


def run(args, env=None):
    runner = CliRunner()
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        pass
    return runner.invoke(cli, args, env=env or {"LANG": "en_US.UTF-8", "LC_ALL": ""}, catch_exceptions=False)


@pytest.mark.parametrize("fmt", ["html", "junit", "csv", "json"])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_rerender_matches_scan_time_output(fmt, lang):
    res = run(["report", FIXTURE, "--format", fmt, "--lang", lang])
    assert res.exit_code == 0, res.output
    # byte for byte (CSV keeps \r\n); stdout here is a pipe, so JSON is the compact form scan writes there too
    assert res.stdout_bytes == render(load(), fmt, lang, pretty=False).encode("utf-8")


def test_table_of_an_inventory_report(tmp_path):
    path = tmp_path / "inv.json"
    path.write_text(json.dumps(inventory_only(load()), ensure_ascii=False), encoding="utf-8")
    res = run(["report", str(path), "--format", "table", "--lang", "en"])
    assert res.exit_code == 0
    assert "Inventory of gov-app-01" in res.stdout and "Oracle Database" in res.stdout


def test_language_defaults_from_the_locale():
    res = run(["report", FIXTURE, "--format", "csv"], env={"LANG": "zh_CN.UTF-8", "LC_ALL": ""})
    assert res.stdout.startswith("主机,规则编号")
    res = run(["report", FIXTURE, "--format", "csv"], env={"LANG": "C.UTF-8", "LC_ALL": ""})
    assert res.stdout.startswith("Host,Rule ID")


def test_several_outputs_from_one_run(tmp_path):
    html, xml, csv_path = tmp_path / "r.html", tmp_path / "r.xml", tmp_path / "r.csv"
    res = run(["report", FIXTURE, "--format", "json", "-o", "html:%s" % html, "-o", "junit:%s" % xml,
               "--output-csv", str(csv_path), "--bom", "--lang", "zh"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["report_id"] == load()["report_id"]   # --format still goes to stdout
    report = load()
    assert html.read_text(encoding="utf-8") == render(report, "html", "zh")
    assert xml.read_text(encoding="utf-8") == render(report, "junit", "zh")
    assert csv_path.read_bytes().startswith(b"\xef\xbb\xbf\xe4\xb8\xbb\xe6\x9c\xba")   # BOM + 主机
    assert sorted(os.listdir(str(tmp_path))) == ["r.csv", "r.html", "r.xml"]            # no temp files


def test_plain_output_path_takes_the_main_format(tmp_path):
    out = tmp_path / "r.html"
    res = run(["report", FIXTURE, "--format", "html", "--output", str(out), "--lang", "en"])
    assert res.exit_code == 0 and res.stdout == ""
    assert out.read_text(encoding="utf-8") == render(load(), "html", "en")


def test_unwritable_output_fails_and_leaves_earlier_files_untouched(tmp_path):
    keep = tmp_path / "r.csv"
    keep.write_text("previous run\n", encoding="utf-8")
    bad = tmp_path / "no-such-dir" / "r.html"
    res = run(["report", FIXTURE, "--format", "json", "--output-csv", str(keep), "-o", "html:%s" % bad])
    assert res.exit_code == 1
    assert str(bad) in res.stderr and "cannot write output" in res.stderr and "No such file" in res.stderr
    assert res.stdout == ""                                  # nothing half-emitted either
    assert keep.read_text(encoding="utf-8") == "previous run\n"
    assert sorted(os.listdir(str(tmp_path))) == ["r.csv"]


def test_output_onto_a_directory_is_refused(tmp_path):
    res = run(["report", FIXTURE, "--format", "html", "-o", str(tmp_path)])
    assert res.exit_code == 1 and "is a directory" in res.stderr


@pytest.fixture
def tiny_fs(tmp_path):
    """A real 32 KiB tmpfs, so writes hit ENOSPC (needs root; skipped otherwise)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(mnt)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % proc.stderr.decode(errors="replace").strip())
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)])


def test_full_disk_is_a_clear_error_and_keeps_the_old_report(tiny_fs):
    old = tiny_fs / "report.html"
    old.write_text("<p>yesterday</p>", encoding="utf-8")
    filler = tiny_fs / "filler"
    filler.write_bytes(b"x" * (20 * 1024))
    res = run(["report", FIXTURE, "--format", "html", "-o", str(old)])
    assert res.exit_code == 1
    assert "no space left on device" in res.stderr and str(old) in res.stderr
    assert old.read_text(encoding="utf-8") == "<p>yesterday</p>"
    assert sorted(os.listdir(str(tiny_fs))) == ["filler", "report.html"]


@pytest.mark.parametrize("content, message", [
    (b'{"schema": "xcscan.report/1", "host": {', "not valid JSON"),
    (b'{"schema": "other/2"}', "not an xcscan report"),
    (b"\xff\xfe junk", "not UTF-8"),
])
def test_corrupt_or_foreign_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "in.json"
    path.write_bytes(content)
    res = run(["report", str(path), "--format", "html"])
    assert res.exit_code == 1
    assert message in res.stderr and str(path) in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_file_and_localized_prefix(tmp_path):
    res = run(["report", str(tmp_path / "nope.json"), "--lang", "zh"])
    assert res.exit_code == 1 and "无法生成报告" in res.stderr and "无法读取报告：文件不存在" in res.stderr
    assert "cannot read report" not in res.stderr and res.stderr.startswith("xcscan：错误：")
    res = run(["report", str(tmp_path / "nope.json"), "--lang", "en"])
    assert res.exit_code == 1 and "cannot render the report" in res.stderr and "cannot read report" in res.stderr


@pytest.mark.parametrize("args, message", [
    (["-o", "pdf:x.pdf"], "unknown output format 'pdf'"),
    (["-o", "html:"], "names no file"),
    (["--bom"], "--bom applies to CSV output only"),
    (["--profile", "mlps-l3"], "only with --reevaluate"),
])
def test_bad_options(tmp_path, args, message):
    res = run(["report", FIXTURE, "--format", "json"] + args)
    assert res.exit_code in (1, 2)
    assert message in res.stderr


def test_same_file_twice_is_refused(tmp_path):
    target = tmp_path / "x"
    res = run(["report", FIXTURE, "-o", "html:%s" % target, "--output-csv", str(target)])
    assert res.exit_code == 1 and "given twice" in res.stderr
    assert not target.exists()


def test_console_script_in_a_real_process(tmp_path):
    out = tmp_path / "r.xml"
    proc = subprocess.run([sys.executable, "-m", "scanner", "report", FIXTURE, "--format", "junit",
                           "-o", str(out), "--lang", "en"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text(encoding="utf-8") == render(load(), "junit", "en")


def test_real_scan_writes_every_artefact_in_one_run(tmp_path):
    """`xcscan scan` on a real corpus root: json on stdout, html/junit/csv files, all from one report."""
    import csv
    import io

    import xmlschema
    from corpus import require_corpus
    root = os.path.join(require_corpus(), "os", "centos-7")
    html, xml, csv_path = tmp_path / "s.html", tmp_path / "s.xml", tmp_path / "s.csv"
    res = run(["scan", "--root", root, "--profile", "all", "--format", "json", "--lang", "zh",
               "--output-html", str(html), "-o", "junit:%s" % xml, "-o", "csv:%s" % csv_path, "--bom"])
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["results"]
    assert html.read_text(encoding="utf-8") == render(report, "html", "zh")
    xmlschema.XMLSchema(os.path.join(FIXTURES, "..", "junit", "junit-10.xsd")).validate(str(xml))
    rows = list(csv.reader(io.StringIO(csv_path.read_bytes().decode("utf-8-sig"), newline="")))
    assert sorted(r[1] for r in rows[1:]) == sorted(r["rule_id"] for r in report["results"])
    # re-rendering the saved JSON later gives the same artefacts
    saved = tmp_path / "s.json"
    saved.write_text(res.stdout, encoding="utf-8")
    again = run(["report", str(saved), "--format", "junit", "--lang", "zh"])
    assert again.stdout_bytes == xml.read_bytes()


def test_bad_output_option_fails_before_scanning(tmp_path):
    res = run(["scan", "--root", str(tmp_path), "-o", "pdf:x.pdf"])
    assert res.exit_code == 1 and "unknown output format 'pdf'" in res.stderr


def test_new_files_are_not_world_readable_and_replaced_files_keep_their_mode(tmp_path):
    new, old = tmp_path / "new.html", tmp_path / "old.csv"
    old.write_text("x", encoding="utf-8")
    os.chmod(str(old), 0o604)
    res = run(["report", FIXTURE, "--format", "json", "--output-html", str(new), "--output-csv", str(old)])
    assert res.exit_code == 0
    assert os.stat(str(new)).st_mode & 0o007 == 0
    assert os.stat(str(old)).st_mode & 0o777 == 0o604


def test_report_from_stdin_in_a_pipe():
    with open(FIXTURE, "rb") as fh:
        proc = subprocess.run([sys.executable, "-m", "scanner", "report", "-", "--format", "csv", "--lang", "en"],
                              stdin=fh, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode("utf-8") == render(load(), "csv", "en")


def test_reevaluate_judges_saved_facts_with_another_profile(tmp_path):
    from corpus import require_corpus
    root = os.path.join(require_corpus(), "os", "centos-7")
    saved = tmp_path / "s.json"
    res = run(["scan", "--root", root, "--profile", "all", "--format", "json", "-o", str(saved)])
    assert res.exit_code == 0, res.stderr
    res = run(["report", str(saved), "--reevaluate", "--profile", "crypto", "--format", "json"])
    assert res.exit_code == 0, res.stderr
    again = json.loads(res.stdout)
    first = json.loads(saved.read_text(encoding="utf-8"))
    assert again["report_id"] == first["report_id"] and again["facts"] == first["facts"]
    assert again["summary"]["profile"] == "crypto" and first["summary"]["profile"] == "all"
    assert all(r["category"] == "crypto" for r in again["results"])
    # without --reevaluate the saved judgement is rendered as it was
    plain = json.loads(run(["report", str(saved), "--format", "json"]).stdout)
    assert plain["summary"] == first["summary"]


def test_inventory_as_html_on_a_real_root(tmp_path):
    from corpus import require_corpus
    root = os.path.join(require_corpus(), "os", "kylin-v10-sp2-aarch64")
    out = tmp_path / "inv.html"
    res = run(["inventory", "--root", root, "--format", "html", "-o", str(out), "--lang", "zh"])
    assert res.exit_code == 0, res.stderr
    page = out.read_text(encoding="utf-8")
    assert "国产化率" in page and "Kylin" in page and '<section id="results">' not in page


def test_damaged_report_is_refused_with_the_field_and_nothing_written(tmp_path):
    doc = load()
    doc["results"][2]["refs"] = "L3-CES1-02"
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "r.html"
    res = run(["report", str(path), "--format", "junit", "--output-html", str(out)])
    assert res.exit_code == 1
    assert "report field results[2].refs must be an object, found str" in res.stderr
    assert not out.exists() and res.stdout == ""


def test_a_planted_symlink_is_not_followed(tmp_path):
    """Temporary files are created exclusively: a symlink planted where an old, predictable temp name
    would be cannot redirect the write (the scan often runs as root in a shared directory)."""
    victim = tmp_path / "victim"
    victim.write_text("keep", encoding="utf-8")
    out = tmp_path / "r.html"
    for pid in range(os.getpid() - 2, os.getpid() + 3):
        os.symlink(str(victim), str(tmp_path / (".r.html.%d.tmp" % pid)))
    res = run(["report", FIXTURE, "--format", "html", "-o", str(out)])
    assert res.exit_code == 0
    assert victim.read_text(encoding="utf-8") == "keep"
    assert out.read_text(encoding="utf-8") == render(load(), "html", "en") and not out.is_symlink()


def test_umask_narrows_the_mode_of_new_files(tmp_path):
    out = tmp_path / "r.csv"
    old = os.umask(0o077)
    try:
        res = run(["report", FIXTURE, "--format", "csv", "-o", str(out)])
    finally:
        os.umask(old)
    assert res.exit_code == 0 and os.stat(str(out)).st_mode & 0o777 == 0o600


def test_terminal_inventory_names_substitutes_in_the_chosen_language():
    from scanner.render.table import render_inventory
    report = {"host": {"hostname": "h", "live": True}, "inventory": {"components": [
        {"category": "cpu", "product_id": "intel-xeon", "name": {"zh": "英特尔至强", "en": "Intel Xeon"},
         "origin": "foreign", "substitutes": ["kunpeng", "hygon", "phytium", "zhaoxin", "loongson"], "evidence": []}]}}
    zh = render_inventory(report, "zh")
    assert "鲲鹏\n" in zh or "鲲鹏 " in zh
    assert "海光" in zh and "kunpeng" not in zh and "(+2)" in zh
    en = render_inventory(report, "en")
    assert "Kunpeng" in en and "Hygon" in en and "(+2)" in en
