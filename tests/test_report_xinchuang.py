"""The 信创 (localization) report an IT director reads (issue #16 item 5): a real `--profile xinchuang`
scan of the TaiShan/Kylin fixture root (domestic CPU, OS, server and storage; a foreign NVIDIA
accelerator; a Xilinx card whose origin is unknown) rendered as HTML in both editions and both
languages: the rate per category as the inventory computes it, how it is computed and what counts as
unknown, the unknown components by name, every foreign component with its substitutes and the
evidence it was identified by."""
import html
import os
import re

import pytest

from scanner.render import render

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "hardware", "taishan-kylin")


@pytest.fixture(scope="module")
def report():
    from scanner.pipeline import scan_report
    return scan_report(root=ROOT, profile="xinchuang")


def _section(out, name, following):
    start = out.index('<section id="%s">' % name)
    return out[start:out.index('<section id="%s">' % following, start)]


def _cells(row):
    return [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


@pytest.mark.parametrize("fmt", ["html", "summary"])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_rate_per_category_as_computed_with_the_rule_and_the_unknown(report, fmt, lang):
    from scanner.i18n import t
    loc = report["inventory"]["localization"]
    assert (loc["domestic"], loc["foreign"], loc["unknown"]) == (7, 1, 1)
    out = render(report, fmt, lang)
    section = _section(out, "localization", "foreign")
    rows = [_cells(r) for r in re.findall(r"<tr>(.*?)</tr>", section, re.S) if "<td" in r]
    table = dict((r[0], r[1:]) for r in rows)
    # overall first, then every category the inventory counted, with its own counts and rate
    assert rows[0][0] == t("html.localization.overall", lang)
    assert table[rows[0][0]] == ["7", "1", "1", "87.5%"]
    for cat, counts in loc["by_category"].items():
        label = t("category." + cat, lang)
        want = [str(counts["domestic"]), str(counts["foreign"]), str(counts["unknown"]),
                "%.1f%%" % (100.0 * counts["rate"])]
        assert table[label] == want, (cat, table.get(label))
    assert len(rows) == 1 + len(loc["by_category"])
    # accelerators: 2 domestic / (2 + 1 foreign); the card of unknown origin is counted beside, not in the rate
    assert table[t("category.accelerator", lang)] == ["2", "1", "1", "66.7%"]
    # how the rate is computed and what counts as unknown, and the unknown ones by name
    assert t("html.localization.note", lang) in html.unescape(section)
    unknown = re.search(r'<p class="note" id="unknown-origin">(.*?)</p>', section).group(1)
    assert "Xilinx Corporation" in unknown
    assert '<figure id="localization-chart">' in section and "<svg" in section


@pytest.mark.parametrize("fmt", ["html", "summary"])
def test_every_foreign_component_with_substitutes_and_evidence(report, fmt):
    foreign = [c for c in report["inventory"]["components"] if c["origin"] == "foreign"]
    assert [c["product_id"] for c in foreign] == ["nvidia"]
    out = render(report, fmt, "zh")
    section = out[out.index('<section id="foreign">'):]
    section = section[:section.index("</section>")]
    rows = re.findall(r'<tr class="foreign-component">(.*?)</tr>', section, re.S)
    assert len(rows) == len(foreign)
    cells = _cells(rows[0])
    assert cells[0] == "加速卡" and cells[1].startswith("英伟达")
    # identified by its PCI ids, printed under the product with where it was read
    assert "10de:20b0" in cells[1] and "/sys/bus/pci/devices/0000:3b:00.0" in cells[1]
    # every substitute in the catalog named in Chinese
    from scanner.catalog import default_catalog
    products = default_catalog().products
    by_id = products if isinstance(products, dict) else dict((p["id"], p) for p in products)
    names = [by_id[s]["name"]["zh"] for s in foreign[0]["substitutes"]]
    assert cells[4] == "、".join(names) and "昇腾" in names


def test_the_xinchuang_rules_carry_their_findings_into_the_risks(report):
    """The profile's failures (the foreign accelerator, the unknown card) are problems with a risk,
    in the summary edition an IT director reads too."""
    failed = set(r["rule_id"] for r in report["results"] if r["status"] == "fail")
    assert "xinchuang.foreign.accelerator" in failed
    out = render(report, "summary", "zh")
    risks = out[out.index('<section id="risks">'):out.index('<section id="localization">')]
    listed = set(re.findall(r'<tr class="finding" data-rule="([^"]+)"', risks))
    assert listed == failed
    row = re.search(r'<tr class="finding" data-rule="xinchuang.foreign.accelerator".*?</tr>', risks, re.S).group(0)
    assert "英伟达" in row and "昇腾" in row
