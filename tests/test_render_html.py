"""HTML report: content, clause order, self-containment, escaping; Chromium opens it offline."""
import re

import pytest

from browser_support import browser_page  # noqa: F401
from report_fixtures import PAYLOAD, inject, inventory_only, load
from scanner.render import render
from scanner.render import view


@pytest.fixture(scope="module")
def report():
    return load()


def test_header_has_host_identity_scan_time_and_profile(report):
    out = render(report, "html", "en")
    for text in ("gov-app-01", "8f3a1c2e9b7d4e6fa1b2c3d4e5f60718", "2026-11-20T02:00:13Z", "mlps-l3",
                 "Kylin Linux Advanced Server V10 (Lance)", "5b0c8f64-2f7e-4a8e-9a0c-3e1d2b7f9c11",
                 "Kunpeng 920 (Kunpeng-920)", "TaiShan server 2280 V2"):
        assert text in out
    assert out.startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in out


def test_chinese_report_uses_chinese_labels(report):
    out = render(report, "html", "zh")
    assert '<html lang="zh-CN">' in out
    for text in ("合规检查报告", "国产化率", "国外组件及国产替代", "条款覆盖情况", "豁免", "完整资产清单",
                 "口令最长使用期限不超过90天", "不符合", "张伟（信息安全处）"):
        assert text in out
    assert "Password maximum age" not in out


def test_results_are_grouped_by_item_in_clause_order(report):
    out = render(report, "html", "en")
    ids = re.findall(r'<h3 id="item-([^"]+)"', out)
    # the fixture's coverage items are deliberately shuffled; items without results are not listed
    assert ids == ["L3-CES1-01", "L3-CES1-02", "L3-CES1-03", "L3-CES1-04", "L3-CES1-06", "L3-CES1-11",
                   "L3-CES1-12", "L3-CES1-18", "other"]
    section = out[out.index('id="item-L3-CES1-02"'):out.index('id="item-L3-CES1-03"')]
    assert 'data-rule="mlps.ia.faillock"' in section and 'data-rule="mlps.ia.session-timeout"' in section
    other = out[out.index('id="item-other"'):]
    assert 'data-rule="xc.db.foreign"' in other


def test_natural_clause_order_puts_10_after_9():
    assert view.natural_key("8.1.4.10 a)") > view.natural_key("8.1.4.9 b)")
    assert view.natural_key("L3-CES1-10") > view.natural_key("L3-CES1-9")


def test_result_rows_show_expected_actual_evidence_and_remediation(report):
    out = render(report, "html", "en")
    row = out[out.index('<tr class="result" data-rule="mlps.ia.ssh-ciphers"'):]
    row = row[:row.index("</tr>")]
    assert "no CBC, no arcfour, no 3des" in row                 # expected
    assert "aes128-cbc,3des-cbc" in row                         # actual
    assert "sshd.effective.ciphers = chacha20-poly1305" in row  # evidence
    assert "3des-cbc [fail]: 3des-cbc is a weak cipher" in row  # per-item finding
    assert "Set Ciphers aes256-gcm@openssh.com" in row          # remediation
    assert "GB/T 39786 8.3 c)" in row                           # references (notes left out)


def test_localization_chart_and_table(report):
    out = render(report, "html", "en")
    chart = out[out.index('<figure id="localization-chart">'):out.index("</figure>")]
    assert "<svg" in chart and "55.6%" in chart
    # one bar row per category plus the overall row; database is half domestic, half foreign
    assert chart.count('class="chart-rate"') == 1 + len(report["inventory"]["localization"]["by_category"])
    assert "Database" in chart and "50.0%" in chart
    assert 'class="bar-foreign"' in chart


def test_foreign_components_list_domestic_substitutes(report):
    out = render(report, "html", "en")
    section = out[out.index('<section id="foreign">'):out.index('<section id="results">')]
    assert "Oracle Database" in section and "WebLogic Server" in section
    assert "DM Database" in section      # substitute named from the report's own components
    assert "TongWeb" in section
    assert "Kunpeng" not in section      # domestic components are not in this table


def test_coverage_table_counts_and_rows(report):
    out = render(report, "html", "en")
    section = out[out.index('<section id="coverage">'):out.index('<section id="waivers">')]
    for key, n in (("automated", 5), ("partial", 3), ("manual", 1), ("not_covered", 1)):
        assert re.search(r'data-coverage="%s"><div class="v">%d<' % (key, n), section)
    rows = re.findall(r'<tr class="coverage-item" data-status="([^"]+)"><td class="nowrap">(?:<a href="#item-[^"]+">)?([^<]+)<',
                      section)
    assert [r[1] for r in rows][:3] == ["L3-CES1-01", "L3-CES1-02", "L3-CES1-03"]
    assert ("not_covered", "L3-CES1-20") in rows
    assert "Inspect access control lists" in section   # manual item evidence for the assessor
    # items with results link to them; items without (L3-CES1-20) do not
    assert '<a href="#item-L3-CES1-01">L3-CES1-01</a>' in section
    assert 'href="#item-L3-CES1-20"' not in section


def test_waivers_show_justification_approver_expiry(report):
    out = render(report, "html", "zh")
    section = out[out.index('<section id="waivers">'):out.index('<section id="inventory">')]
    assert "由堡垒机统一实施登录失败锁定" in section
    assert "张伟（信息安全处）" in section
    assert "2027-03-31" in section


def test_expired_waiver_is_marked(report):
    doc = load()
    doc["results"][2]["waiver"]["expired"] = True
    doc["results"][2]["status"] = "fail"
    out = render(doc, "html", "en")
    section = out[out.index('<section id="waivers">'):out.index('<section id="inventory">')]
    assert "2027-03-31 (expired)" in section


def test_full_inventory_lists_every_component(report):
    out = render(report, "html", "en")
    assert out.count('<tr class="component">') == len(report["inventory"]["components"])
    assert "Unidentified device 19e5:d801" in out
    assert "/sys/bus/pci/devices/0000:3b:00.0" in out


def test_inventory_only_report_renders_without_results_sections(report):
    out = render(inventory_only(report), "html", "en")
    assert '<section id="inventory">' in out and '<section id="localization">' in out
    assert '<section id="results">' not in out and '<section id="coverage">' not in out


def test_self_contained_no_external_reference(report):
    out = render(report, "html", "en")
    assert "<script" not in out
    assert not re.search(r"\b(src|href)\s*=\s*[\"']?(https?:|//)", out)
    assert "<link" not in out and "@import" not in out and "url(" not in out
    assert "Content-Security-Policy" in out and "default-src 'none'" in out
    # every internal link points at an anchor on the page
    for target in re.findall(r'href="#([^"]+)"', out):
        assert 'id="%s"' % target in out


def test_markup_in_every_string_is_escaped_in_the_text(report):
    out = render(inject(report), "html", "en")
    assert "<script" not in out
    assert "<img" not in out and "<iframe" not in out and "<b id=" not in out and "<style>body" not in out
    assert "&lt;script&gt;" in out
    # attribute values cannot be broken out of either
    assert 'onerror="' not in out and "onload=\"" not in out


def test_print_css_present(report):
    out = render(report, "html", "en")
    assert "@media print" in out and "@page" in out


@pytest.mark.browser
def test_chromium_shows_summary_chart_and_evidence_without_network(browser_page, tmp_path, report):
    path = tmp_path / "report.html"
    path.write_text(render(report, "html", "en"), encoding="utf-8")
    browser_page.goto(path.as_uri())
    assert browser_page.title() == "Compliance report for gov-app-01"
    summary = browser_page.inner_text("#summary")
    assert "55.6%" in summary and "61.5" in summary
    assert browser_page.inner_text('.status-count[data-status="fail"] .v') == "6"
    chart = browser_page.query_selector("#localization-chart svg")
    assert chart is not None and chart.bounding_box()["width"] > 300
    assert len(browser_page.query_selector_all("#localization-chart rect.bar-domestic")) >= 5
    # the 测评记录 is shown; the raw facts are folded in a <details> (no script needed to open it)
    record = browser_page.inner_text('tr[data-rule="mlps.ac.root-login"] td.record .rec')
    assert "permitrootlogin is yes" in record
    assert not browser_page.is_visible('tr[data-rule="mlps.ac.root-login"] details.raw .evidence')
    browser_page.click('tr[data-rule="mlps.ac.root-login"] details.raw summary')
    evidence = browser_page.inner_text('tr[data-rule="mlps.ac.root-login"] details.raw')
    assert "sshd.effective.permitrootlogin = yes (sshd -T)" in evidence
    assert browser_page.is_visible('tr[data-rule="mlps.ac.root-login"]')
    assert browser_page.requests_seen == [path.as_uri()]


@pytest.mark.browser
def test_chromium_injected_markup_stays_inert(browser_page, tmp_path, report):
    path = tmp_path / "evil.html"
    path.write_text(render(inject(report), "html", "en"), encoding="utf-8")
    browser_page.set_default_timeout(5000)
    browser_page.goto(path.as_uri())
    browser_page.wait_for_load_state("load")
    assert browser_page.evaluate("window.__pwned") is None
    assert browser_page.query_selector("#injected") is None
    assert browser_page.query_selector("iframe, img, script, link, body style") is None
    assert browser_page.is_visible("#summary")   # the injected <style> did not hide the page
    # the payload is shown as text where the data was
    assert PAYLOAD[:20] in browser_page.inner_text('header')
    assert browser_page.requests_seen == [path.as_uri()]


def test_result_citing_only_a_22239_clause_is_grouped_under_that_clause():
    doc = load()
    for res in doc["results"]:
        if res["rule_id"] == "xc.db.foreign":
            res["refs"] = {"gbt22239": "8.1.4.4 a)", "note": "internal note"}
    out = render(doc, "html", "en")
    ids = re.findall(r'<h3 id="([^"]+)"', out)
    assert ids.index("item-L3-CES1-12") < ids.index("clause-8.1.4.4a)") < ids.index("item-L3-CES1-18")
    assert "GB/T 22239 clause 8.1.4.4 a) (no GB/T 28448 test item mapped)" in out
    assert "internal note" not in out


@pytest.mark.browser
def test_prints_to_pdf_with_print_styles(browser_page, tmp_path, report):
    path = tmp_path / "report.html"
    path.write_text(render(report, "html", "zh"), encoding="utf-8")
    browser_page.goto(path.as_uri())
    assert browser_page.is_visible("nav.toc")
    browser_page.emulate_media(media="print")
    assert not browser_page.is_visible("nav.toc")          # screen-only navigation hidden on paper
    assert browser_page.evaluate(
        "getComputedStyle(document.querySelector('thead')).display") == "table-header-group"
    pdf = browser_page.pdf(format="A4")
    assert pdf.startswith(b"%PDF-") and pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") >= 3
    assert browser_page.requests_seen == [path.as_uri()]


def test_coverage_item_whose_rules_did_not_run_shows_not_covered_and_errors_are_shown():
    doc = load()
    cov = doc["summary"]["coverage"]
    cov["items"][0]["result"] = None          # L3-CES1-18: automated, but its rule gave no result
    cov["error"] = "rules/controls/mlps-l3.yaml: <missing>"
    cov["standard"] = "GB/T 28448-2019"
    out = render(doc, "html", "en")
    section = out[out.index('<section id="coverage">'):out.index('<section id="waivers">')]
    assert '<tr class="coverage-item" data-status="not_covered"><td class="nowrap"><a href="#item-L3-CES1-18">' in section
    assert "Coverage could not be computed: rules/controls/mlps-l3.yaml: &lt;missing&gt;" in section
    assert "Control level: mlps-l3 (GB/T 28448-2019)" in section


def test_failed_rules_by_severity_counted_from_results_or_taken_from_summary():
    doc = load()
    out = render(doc, "html", "en")
    line = out[out.index('<p id="failed-by-severity">'):]
    line = line[:line.index("</p>")]
    # fixture fails: high x3 (ssh-ciphers, root-login, high-risk-ports), medium x3
    assert '<span data-severity="high">high <b>3</b></span>' in line
    assert '<span data-severity="medium">medium <b>3</b></span>' in line
    assert '<span data-severity="critical">critical <b>0</b></span>' in line
    doc["summary"]["failed_by_severity"] = {"critical": 7}
    assert '<span data-severity="critical">critical <b>7</b></span>' in render(doc, "html", "en")


def test_localization_section_says_how_the_rate_is_computed_and_shows_evidence(report):
    for lang, words in (("zh", ("国产化率 = 国产组件数", "来源未知的组件：OpenSSL、未识别设备 19e5:d801")),
                        ("en", ("Localization rate = domestic components", "Components of unknown origin: OpenSSL, "
                                "Unidentified device 19e5:d801"))):
        out = render(report, "html", lang)
        section = out[out.index('<section id="localization">'):out.index('<section id="foreign">')]
        for text in words:
            assert text in section
        foreign = out[out.index('<section id="foreign">'):out.index('</section>', out.index('<section id="foreign">'))]
        assert foreign.count('<tr class="foreign-component">') == 4
        row = [r for r in foreign.split('<tr class="foreign-component">') if "ora_pmon_ORCL" in r][0]
        # evidence printed under the product, substitutes beside it
        assert '<div class="ev">' in row and "ora_pmon_ORCL" in row and "1521" in row
        assert ("达梦" in row or "DM Database" in row)
