"""The report as an assessor prints it: real scans of the default fixture roots rendered in zh and
en, full and summary, printed to A4 PDF by headless Chromium; page count bounds, the running header
and page numbers on every page (read back from the PDF), no table column narrower than a minimum,
and no English of the report's own in the Chinese edition."""
import json
import re

import pytest

from baseline_support import materialise
from browser_support import browser_page  # noqa: F401
from pdf_text import pages_text
from scanner.render import render

FRAME = {"organization": "某市财政局", "system": "非税收入管理系统", "record_number": "11010013001-20001",
         "report_number": "CP-2026-0042", "level": 3, "assessors": ["张伟", "李娜"],
         "assessed_on": "2026-12-01 至 2026-12-05", "timezone": "+08:00"}
FULL_MAX, SUMMARY_MAX = 40, 8
MIN_COLUMN_PX = 45          # about 12 mm on A4
A4_CONTENT_PX = 703         # 210 mm - 2 x 12 mm margins at 96 dpi


def cjk_font():
    """Whether fontconfig (which Chromium prints with) has a font covering Chinese. CI installs one
    (fonts-wqy-microhei, README's test command): without it the zh edition prints boxes and its page
    count and header say nothing about a real print."""
    import os
    import shutil
    import subprocess
    if shutil.which("fc-list"):
        found = subprocess.run(["fc-list", ":lang=zh", "family"], stdout=subprocess.PIPE, universal_newlines=True)
        if found.stdout.strip():
            return True
    if os.environ.get("CI") == "true":
        pytest.fail("no font covering Chinese is installed (fc-list :lang=zh is empty); README's test command "
                    "installs fonts-wqy-microhei")
    return False


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    from scanner.pipeline import scan_report
    base = tmp_path_factory.mktemp("roots")
    out = {}
    for name in ("rhel-default", "debian-default"):
        report = scan_report(root=materialise(name, base), profile="mlps-l3")
        report["assessment"] = dict(FRAME)
        out[name] = report
    return out


def print_pdf(page, tmp_path, html, name):
    path = tmp_path / (name + ".html")
    path.write_text(html, encoding="utf-8")
    page.goto(path.as_uri())
    pdf = page.pdf(prefer_css_page_size=True)
    assert page.requests_seen[-1] == path.as_uri()
    return pages_text(pdf)


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_printed_report_pages_header_and_numbers(browser_page, tmp_path, reports, lang):
    for host, report in reports.items():
        full = print_pdf(browser_page, tmp_path, render(report, "html", lang), "%s-%s-full" % (host, lang))
        summary = print_pdf(browser_page, tmp_path, render(report, "summary", lang), "%s-%s-summary" % (host, lang))
        assert 8 <= len(full) < FULL_MAX, (host, lang, len(full))
        assert 2 <= len(summary) < SUMMARY_MAX, (host, lang, len(summary))
        hostname = report["host"]["hostname"]
        day = "2026-" if report["host"]["collected_at"].startswith("2026") else report["host"]["collected_at"][:5]
        for pages in (full, summary):
            total = len(pages)
            for number, text in enumerate(pages, 1):
                top = text[:300]
                # running header: host and date (system name too, where the font has its glyphs)
                assert hostname in top and day in top, (host, lang, number, top)
                # page number "Page N of M" / "第 N 页 / 共 M 页" in the bottom margin box
                assert re.search(r"(?s)\b%d\b.*\b%d\b" % (number, total), top), (host, lang, number, top)
            if lang == "zh" and cjk_font():
                # with glyphs for Chinese the header names the system and the footer reads 第 N 页 / 共 M 页
                assert all(FRAME["system"] in text[:300] for text in pages), (host, pages[0][:300])
                assert re.search(r"第\s*1\s*页\s*/\s*共\s*%d\s*页" % total, pages[0]), (host, pages[0][:300])
            if lang == "en":
                assert "Page \n1\n of \n%d" % total in pages[0]
                assert "System name" in "".join(pages) and "Problem analysis and risk evaluation" in "".join(pages)


@pytest.mark.browser
def test_no_printed_column_is_narrower_than_the_minimum(browser_page, tmp_path, reports):
    """Every table of both editions of both hosts in both languages, laid out at the A4 text width
    with the print styles: no column under the minimum; records and findings get the room."""
    browser_page.set_viewport_size({"width": A4_CONTENT_PX, "height": 1000})
    measured = {}
    for host, report in reports.items():
        for fmt in ("html", "summary"):
            for lang in ("zh", "en"):
                path = tmp_path / ("cols-%s-%s-%s.html" % (host, fmt, lang))
                path.write_text(render(report, fmt, lang), encoding="utf-8")
                browser_page.goto(path.as_uri())
                browser_page.emulate_media(media="print")
                widths = browser_page.evaluate("""() => Array.from(document.querySelectorAll('table')).map(t =>
                    [t.className, Array.from(t.querySelectorAll('thead th')).map(th => th.getBoundingClientRect().width)])""")
                classes = set(c for c, _w in widths)
                want = {"controls", "risks", "foreign", "scope", "kv"} if fmt == "summary" else \
                    {"controls", "risks", "results", "coverage", "inventory", "foreign", "scope", "kv"}
                assert want <= set(w for c in classes for w in c.split()), (host, fmt, lang, classes)
                narrow = [(c, round(w)) for c, ws in widths for w in ws if w < MIN_COLUMN_PX]
                assert narrow == [], (host, fmt, lang, narrow)
                # the finding and record columns get the room
                risks = [ws for c, ws in widths if c.startswith("risks")][0]
                assert risks[2] == max(risks) and risks[2] > 0.35 * A4_CONTENT_PX, (host, fmt, lang, risks)
                if fmt == "html":
                    results = [ws for c, ws in widths if c == "results"][0]
                    assert results[2] == max(results) and results[2] > 0.35 * A4_CONTENT_PX
                measured[(host, fmt, lang)] = min(w for _c, ws in widths for w in ws)
    assert len(measured) == 8


def test_summary_mode_has_the_frame_and_risks_but_not_every_record(reports):
    report = reports["rhel-default"]
    summary, full = render(report, "summary", "zh"), render(report, "html", "zh")
    for out in (summary, full):
        for anchor in ('id="basic"', 'id="scope"', 'id="controls"', 'id="risks"', 'id="foreign"'):
            assert anchor in out
        assert "某市财政局" in out and "非税收入管理系统" in out and "第三级" in out and "张伟、李娜" in out
        assert "2026-12-01 至 2026-12-05" in out
    assert '<section id="results">' in full and '<section id="inventory">' in full
    assert '<section id="results">' not in summary and '<section id="inventory">' not in summary
    assert len(summary) < len(full) / 3


def _zh_data_words(report):
    """Words the report's own data carries, taking the Chinese side of every {zh, en} pair."""
    def zh_only(value):
        if isinstance(value, dict):
            if value and set(value) <= {"zh", "en"}:
                return value.get("zh")
            return dict((k, zh_only(v)) for k, v in value.items())
        if isinstance(value, list):
            return [zh_only(v) for v in value]
        return value
    from scanner.catalog import default_catalog
    products = default_catalog().products
    names = [p.get("name") for p in (products.values() if isinstance(products, dict) else products)]
    text = json.dumps([zh_only(report), names], ensure_ascii=False)   # substitutes are named from the catalog
    # JSON's own words for a value are not data: the report says 是 / 否 / 未知
    return set(re.findall(r"[A-Za-z][A-Za-z0-9_-]*", text)) - {"true", "false", "null"}


# product, command and standard names the report's own text uses
NAMES = {"xcscan", "GB", "T", "CSV", "JSON", "HTML", "SSH", "PAM", "TLS", "SUID", "SGID", "root", "sshd", "sudo",
         "auditd", "journald", "su", "wheel", "shell", "umask", "SELinux", "AppArmor", "systemd", "lastlog",
         "requirepass", "nullok", "remember", "deny", "minlen", "unlock_time", "even_deny_root", "enforce_for_root",
         "pam_unix", "pam_wheel", "audit", "e", "format", "html", "assessment", "docs", "reports", "md", "Web",
         "ClientAliveInterval", "ClientAliveCountMax", "MaxAuthTries", "UTC", "ISEAA", "TMOUT", "UMASK",
         "NOPASSWD", "UID", "GID", "CPU", "ID", "pg_hba", "conf", "auditd", "login", "defs", "shadow", "etc"}


def visible_text(html):
    html = re.sub(r"(?s)<style>.*?</style>|<details class=\"raw\">.*?</details>|<[^>]+>", " ", html)
    html = re.sub(r"\S+…", " ", html)   # a long value cut short
    return re.sub(r"&[a-z]+;|&#\d+;", " ", html)


@pytest.mark.parametrize("host", ["rhel-default", "debian-default"])
def test_no_english_of_its_own_in_the_chinese_report(reports, host):
    report = reports[host]
    allowed = _zh_data_words(report) | NAMES
    for fmt in ("html", "summary"):
        text = visible_text(render(report, fmt, "zh"))
        words = [w for w in re.findall(r"[A-Za-z][A-Za-z0-9_-]*", text)
                 if w not in allowed and not w.isupper() and not re.search(r"[0-9_]", w)]
        assert words == [], (host, fmt, sorted(set(words))[:40])
