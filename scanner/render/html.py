"""Self-contained HTML report: one file, no script, no external asset, printable to PDF.

Everything taken from the report is escaped (text and attributes, inside SVG too); a
Content-Security-Policy forbids scripts and any network fetch as a second line of defence."""
from __future__ import absolute_import

from html import escape

from scanner.i18n import message, t, virt_label
from scanner.render import assessment, records, svg, view

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

_FONTS = ('"Noto Sans CJK SC","PingFang SC","Microsoft YaHei","WenQuanYi Micro Hei","Helvetica Neue",Arial,'
          'sans-serif')
CSS = """
:root{--ok:#2e7d32;--bad:#c62828;--err:#6a1b9a;--warn:#ef6c00;--mute:#757575;--line:#d0d7de}
*{box-sizing:border-box}
body{font-family:"Noto Sans CJK SC","PingFang SC","Microsoft YaHei","WenQuanYi Micro Hei",
 "Helvetica Neue",Arial,sans-serif;margin:0 auto;max-width:1180px;padding:24px;color:#1f2328;
 font-size:14px;line-height:1.45}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;border-bottom:2px solid #1f2328;padding-bottom:4px;
 margin-top:32px}h3{font-size:15px;margin:20px 0 6px;background:#f3f4f6;padding:6px 8px;
 border-left:4px solid #1f4e79}
table{border-collapse:collapse;width:100%;margin:6px 0 12px}
th,td{border:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}
table.results{table-layout:fixed}table.results td{overflow-wrap:anywhere}
table.results col.c-status{width:12%}table.results col.c-rule{width:23%}table.results col.c-rec{width:40%}
table.results col.c-rem{width:25%}table.results td .badge{white-space:normal;text-align:center}
details.raw summary{color:var(--mute);font-size:12px;cursor:pointer}.raw-k{color:var(--mute);font-size:12px;margin-top:4px}
td.wrap{white-space:pre-wrap;word-break:break-word}
p.notice{border:2px solid #b42318;background:#fef3f2;padding:6px 10px;font-weight:600}
td.pre,.pre{white-space:pre-wrap;word-break:break-word;font-family:"DejaVu Sans Mono",Consolas,monospace;
 font-size:12px}
.muted{color:var(--mute)}.nowrap{white-space:nowrap}.num{text-align:right}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;font-weight:600;
 color:#fff;white-space:nowrap}
.s-pass{background:var(--ok)}.s-fail{background:var(--bad)}.s-error{background:var(--err)}
.s-manual{background:var(--warn)}
.v-conform{background:var(--ok)}.v-partial{background:var(--warn)}.v-nonconform{background:var(--bad)}
.v-pending{background:#1565c0}.v-not_applicable{background:var(--mute)}.s-waived{background:#1565c0}.s-not_applicable,.s-none{background:var(--mute)}
.o-domestic{color:var(--ok);font-weight:600}.o-foreign{color:var(--bad);font-weight:600}
.o-unknown{color:var(--mute)}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:110px}
.card .v{font-size:22px;font-weight:700}.card .k{font-size:12px;color:var(--mute)}
dl.host{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}
dl.host dt{color:var(--mute)}dl.host dd{margin:0}
.chart text{font-size:12px;fill:#1f2328}
nav.toc{margin:10px 0;font-size:13px}nav.toc a{margin-right:12px}
footer{margin-top:36px;font-size:12px;color:var(--mute);border-top:1px solid var(--line);padding-top:8px}
table.kv th{width:13%;white-space:nowrap}table.kv td{width:37%}
table.controls th,table.controls td.num{text-align:center}table.controls td:first-child{white-space:nowrap}
table.controls tr.total th{background:#eef1f4}
table.risks,table.coverage,table.foreign,table.inventory{table-layout:fixed}
table.risks td,table.coverage td,table.foreign td,table.inventory td{overflow-wrap:anywhere}
table.risks col.c-risk{width:9%}table.risks col.c-item{width:13%}table.risks col.c-find{width:40%}
table.risks col.c-basis{width:16%}table.risks col.c-rem{width:22%}
table.risks.brief col.c-item{width:14%}table.risks.brief col.c-find{width:57%}table.risks.brief col.c-basis{width:20%}
table.coverage col.c-item{width:11%}table.coverage col.c-clause{width:9%}table.coverage col.c-area{width:9%}
table.coverage col.c-req{width:34%}table.coverage col.c-cov{width:9%}table.coverage col.c-rules{width:17%}
table.coverage col.c-res{width:11%}
td.rules{font-size:11px;color:var(--mute)}
.ev{white-space:pre-wrap;font-size:11px;color:var(--mute);overflow-wrap:anywhere}
table.foreign col.c-cat{width:12%}table.foreign col.c-prod{width:26%}table.foreign col.c-ver{width:12%}
table.foreign col.c-vendor{width:18%}table.foreign col.c-subs{width:32%}
table.inventory col.c-cat{width:10%}table.inventory col.c-prod{width:20%}table.inventory col.c-ver{width:10%}
table.inventory col.c-vendor{width:12%}table.inventory col.c-origin{width:8%}table.inventory col.c-ev{width:40%}
table.scope{width:auto;min-width:60%}
.note{font-size:12px;color:#444}
.r-high{background:var(--bad)}.r-medium{background:var(--warn)}.r-low{background:var(--mute)}
h3 .badge{margin-left:8px;vertical-align:1px}
@media print{
 body{max-width:none;padding:0;font-size:9pt;line-height:1.35}
 nav.toc,details.raw{display:none}
 h1{font-size:15pt}h2{font-size:12.5pt;margin-top:14pt;page-break-after:avoid;break-after:avoid}
 h3{font-size:10pt;margin:9pt 0 3pt;padding:3px 6px;page-break-after:avoid;break-after:avoid}
 th,td{padding:2px 4px}table{margin:3px 0 8px}
 td.pre,.pre{font-size:7.5pt}td.rules,.ev{font-size:7pt}.note{font-size:8pt}
 tr,.card,svg{page-break-inside:avoid;break-inside:avoid}
 thead{display:table-header-group}
 .cards{gap:6px}.card{padding:4px 10px;min-width:90px}.card .v{font-size:15pt}
 .badge{color:#000;border:1px solid #000;background:none!important}
 a{color:inherit;text-decoration:none}
 footer{margin-top:12pt}
}
"""


def _e(value):
    return escape(view.scalar_text(value), quote=True)


class _Page(object):
    """Collects HTML fragments; every value that reaches it goes through _e()."""

    def __init__(self, lang):
        self.lang = lang
        self.parts = []
        self.guide = {}

    def add(self, *fragments):
        self.parts.extend(fragments)

    def t(self, key, **fields):
        return _e(t(key, self.lang, **fields))


def _component_label(report, category, lang):
    """'Kunpeng 920 (Kunpeng-920)' for the first component of a category, for the host header."""
    for comp in _components(report):
        if comp.get("category") == category:
            parts = [view.pick(comp.get("name"), lang) or view.scalar_text(comp.get("product_id")),
                     view.scalar_text(comp.get("version"))]
            label = " ".join(p for p in parts if p)
            model = view.scalar_text(comp.get("model"))
            return "%s (%s)" % (label, model) if model and model not in label else label
    return None


def _host_label(report):
    host = report.get("host") or {}
    return view.scalar_text(host.get("hostname")) or view.scalar_text(host.get("root")) or "?"


def _badge(page, status):
    key = status if status in view.STATUSES else "none"
    label = t("report.status." + status, page.lang) if status in view.STATUSES else (status or "-")
    return '<span class="badge s-%s">%s</span>' % (key, _e(label))


def _category(lang, cat):
    cat = view.scalar_text(cat)
    text = t("category." + cat, lang) if cat else ""
    return text if text != "category." + cat else cat


def _table_head(page, keys, cls=None, cols=None):
    page.add('<table class="%s">' % cls if cls else "<table>")
    if cols:
        page.add("<colgroup>", "".join('<col class="%s">' % c for c in cols), "</colgroup>")
    page.add("<thead><tr>", "".join("<th>%s</th>" % page.t(k) for k in keys), "</tr></thead><tbody>")


def _header(page, report):
    host = report.get("host") or {}
    facts = report.get("facts") or {}
    osf = facts.get("os") if isinstance(facts.get("os"), dict) else {}
    summary = report.get("summary") or {}
    lang = page.lang
    page.add("<header><h1>%s</h1>" % _e(t("html.title", lang, host=_host_label(report))))
    from scanner.notices import texts as notice_texts   # no OS under --root, unprivileged scan
    for text in notice_texts(report, lang):
        page.add('<p class="notice" role="alert">%s</p>' % _e(text))
    if host.get("live"):
        target = t("inventory.target_live", lang)
    else:
        target = t("inventory.target_root", lang, root=view.scalar_text(host.get("root")))
    rows = [
        ("html.host.hostname", host.get("hostname")),
        ("html.host.machine_id", host.get("machine_id")),
        ("html.host.target", target),
        ("html.host.os", osf.get("pretty_name") or osf.get("name")),
        ("html.host.kernel", " ".join(x for x in (view.scalar_text(osf.get("kernel")),
                                                   view.scalar_text(osf.get("arch"))) if x)),
        ("html.host.cpu", _component_label(report, "cpu", lang)),
        ("html.host.server", _component_label(report, "server", lang)),
        ("html.host.virtualization", virt_label(host.get("virtualization"), lang)
                                      if host.get("virtualization") else None),
        ("html.host.collected_at", host.get("collected_at")),
        ("html.host.profile", summary.get("profile")),
        ("html.host.report_id", report.get("report_id")),
        ("html.host.scanner", (report.get("scanner") or {}).get("version")),
    ]
    page.add('<dl class="host">')
    for key, value in rows:
        if value not in (None, ""):
            page.add("<dt>%s</dt><dd>%s</dd>" % (page.t(key), _e(value)))
    page.add("</dl></header>")


def _toc(page, report, mode="full"):
    links = [("basic", "paper.section.basic"), ("summary", "html.section.summary")]
    if "results" in report and view.coverage(report):
        links += [("scope", "paper.section.scope"), ("controls", "paper.section.controls")]
    if "results" in report:
        links.append(("risks", "paper.section.risks"))
    links += [("localization", "html.section.localization"), ("foreign", "html.section.foreign")]
    if "results" in report and mode == "full":
        links.append(("results", "html.section.results"))
        if view.coverage(report):
            links.append(("coverage", "html.section.coverage"))
    if "results" in report:
        links.append(("waivers", "html.section.waivers"))
    if mode == "full":
        links.append(("inventory", "html.section.inventory"))
    page.add('<nav class="toc">', "".join('<a href="#%s">%s</a>' % (a, page.t(k)) for a, k in links), "</nav>")


def _summary(page, report, got=None):
    from scanner.render import html_paper
    lang = page.lang
    loc = (report.get("inventory") or {}).get("localization") or {}
    page.add('<section id="summary"><h2>%s</h2><div class="cards">' % page.t("html.section.summary"))
    if got is not None and got["items"]:
        html_paper.score_card(page, got)
    rate = view.percent(loc.get("rate"))
    page.add('<div class="card" id="card-localization"><div class="v">%s</div><div class="k">%s</div></div>'
             % (_e(rate or t("html.na", lang)), page.t("html.summary.localization")))
    if "results" in report:
        summary = report.get("summary") or {}
        score = view.score_text(summary.get("score"))
        if score is not None:
            page.add('<div class="card" id="card-score"><div class="v">%s</div><div class="k">%s</div></div>'
                     % (_e(score), page.t("html.summary.score")))
        without = view.score_text(summary.get("score_without_waivers"))
        if without is not None:
            page.add('<div class="card"><div class="v">%s</div><div class="k">%s</div></div>'
                     % (_e(without), page.t("html.summary.score_without_waivers")))
        counts = view.status_counts(report)
        for status in view.STATUSES:
            page.add('<div class="card status-count" data-status="%s"><div class="v">%s</div>'
                     '<div class="k">%s</div></div>' % (_e(status), _e(counts.get(status, 0)),
                                                        _badge(page, status)))
    page.add("</div>")
    if "results" in report:
        failed = view.failed_by_severity(report)
        page.add('<p id="failed-by-severity">%s %s</p>' % (page.t("html.summary.failed_by_severity"), "  ".join(
            '<span data-severity="%s">%s <b>%s</b></span>' % (
                _e(sev), page.t("report.severity." + sev), _e(failed.get(sev, 0))) for sev in view.SEVERITIES)))
    if got is not None and got["items"]:
        html_paper.score_note(page, got)
    errors = (report.get("facts") or {}).get("errors") or []
    if errors:
        page.add('<p class="muted">%s</p>' % page.t("html.summary.errors", count=len(errors)))
    page.add("</section>")


def _localization(page, report):
    lang = page.lang
    loc = (report.get("inventory") or {}).get("localization") or {}
    legend = dict((k, t("origin." + k, lang)) for k in ("domestic", "foreign", "unknown"))
    na = t("html.na", lang)
    rows = [(t("html.localization.overall", lang), loc, view.percent(loc.get("rate")) or na)]
    for cat, counts in (loc.get("by_category") or {}).items():
        counts = counts if isinstance(counts, dict) else {}
        rows.append((_category(lang, cat), counts, view.percent(counts.get("rate")) or na))
    page.add('<section id="localization"><h2>%s</h2>' % page.t("html.section.localization"))
    page.add('<figure id="localization-chart">',
             svg.localization_bars(rows, legend, t("html.localization.chart_title", lang)), "</figure>")
    _table_head(page, ["html.col.category", "origin.domestic", "origin.foreign", "origin.unknown",
                       "html.col.rate"])
    for label, counts, rate in rows:
        page.add('<tr><td>%s</td><td class="num">%s</td><td class="num">%s</td><td class="num">%s</td>'
                 '<td class="num">%s</td></tr>' % (_e(label), _e(counts.get("domestic", 0)),
                                                   _e(counts.get("foreign", 0)), _e(counts.get("unknown", 0)),
                                                   _e(rate)))
    page.add("</tbody></table><p class=\"note\">%s</p>" % page.t("html.localization.note"))
    unknown = [c for c in _components(report) if c.get("origin") not in ("domestic", "foreign")]
    if unknown:
        names = [view.pick(c.get("name"), lang) or view.scalar_text(c.get("product_id")) for c in unknown]
        page.add('<p class="note" id="unknown-origin">%s</p>' % page.t(
            "html.localization.unknown", names=("、" if lang == "zh" else ", ").join(names)))
    page.add("</section>")


def _components(report):
    return [c for c in (report.get("inventory") or {}).get("components") or [] if isinstance(c, dict)]


def _foreign(page, report, mode="full"):
    lang = page.lang
    comps = _components(report)
    foreign = [c for c in comps if c.get("origin") == "foreign"]
    page.add('<section id="foreign"><h2>%s</h2>' % page.t("html.section.foreign"))
    if not foreign:
        page.add("<p>%s</p></section>" % page.t("html.foreign.none"))
        return
    _table_head(page, ["html.col.category", "html.col.product", "html.col.version", "html.col.vendor",
                       "html.col.substitutes"], "foreign", ["c-cat", "c-prod", "c-ver", "c-vendor", "c-subs"])
    namer = view.SubstituteNamer(comps, lang, report.get("results"))
    for comp in foreign:
        subs = namer.names(comp.get("substitutes"))
        evidence = view.evidence_lines(comp.get("evidence"), lang)
        shown, rest = evidence[:3], evidence[3:]
        fold = ('<div class="ev">%s</div>' % _e("\n".join(shown))) if shown else ""
        if rest:
            fold += '<details class="raw"><summary>%s</summary><div class="pre evidence">%s</div></details>' % (
                page.t("html.foreign.more_evidence", count=len(rest)), _e("\n".join(rest)))
        page.add('<tr class="foreign-component"><td>%s</td><td>%s%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
            _e(_category(lang, comp.get("category"))), _e(view.pick(comp.get("name"), lang) or comp.get("product_id")),
            fold, _e(comp.get("version")), _e(view.pick(comp.get("vendor"), lang)),
            _e("、".join(subs) if lang == "zh" else ", ".join(subs))))
    page.add("</tbody></table></section>")


def _group_heading(page, item):
    lang = page.lang
    if item is None:
        return page.t("html.results.other")
    if not item.get("id"):
        return page.t("html.results.clause_only", clause=view.scalar_text(item.get("clause")))
    parts = [view.scalar_text(item.get("id")), view.scalar_text(item.get("clause")),
             view.pick(item.get("area"), lang), view.pick(item.get("title"), lang)]
    return _e(" · ".join(p for p in parts if p))


def _verdict_badge(page, verdict):
    return '<span class="badge verdict v-%s">%s</span>' % (_e(verdict), page.t("report.verdict." + verdict))


def _results(page, report, groups):
    lang = page.lang
    page.add('<section id="results"><h2>%s</h2>' % page.t("html.section.results"))
    if not groups:
        page.add("<p>%s</p></section>" % page.t("html.results.none"))
        return
    for item, members in groups:
        if item is None:
            anchor = "item-other"
        elif item.get("id"):
            anchor = "item-" + view.scalar_text(item.get("id"))
        else:
            anchor = "clause-" + view.scalar_text(item.get("clause")).replace(" ", "")
        verdict = ""
        if item is not None:
            judged, _counts = assessment.item_verdict(members, page.guide)
            verdict = " " + _verdict_badge(page, judged)
            members = assessment.order_results(members)
        page.add('<h3 id="%s" data-verdict="%s">%s%s</h3>' % (
            _e(anchor), _e(judged if item is not None else ""), _group_heading(page, item), verdict))
        _table_head(page, ["html.col.status", "html.col.rule", "html.col.record", "html.col.remediation"], "results",
                    ["c-status", "c-rule", "c-rec", "c-rem"])
        for res in members:
            _result_row(page, res)
        page.add("</tbody></table>")
    page.add("</section>")


def _result_row(page, res):
    lang = page.lang
    severity = view.scalar_text(res.get("severity"))
    sev_text = t("report.severity." + severity, lang) if severity in view.SEVERITIES else severity
    ref_text = view.refs_text(res, lang)
    raw = [("html.raw.expected", view.expected_text(res.get("expected"), lang)),
           ("html.raw.actual", view.actual_text(res.get("actual"), lang)),
           ("html.raw.evidence", view.result_evidence_text(res, lang)),
           ("html.raw.refs", ref_text)]
    raw_html = "".join('<div class="raw-k">%s</div><div class="pre evidence">%s</div>' % (page.t(k), _e(v))
                       for k, v in raw if v)
    page.add('<tr class="result" data-rule="%s" data-status="%s"><td>%s<br><span class="muted">%s</span></td>'
             '<td><b>%s</b><br><span class="muted">%s</span></td>'
             '<td class="record"><div class="rec">%s</div>%s</td><td class="wrap">%s</td></tr>' % (
                 _e(res.get("rule_id")), _e(res.get("status")), _badge(page, res.get("status")), _e(sev_text),
                 _e(view.pick(res.get("title"), lang)), _e(res.get("rule_id")),
                 _e(records.record(res, lang)),
                 ('<details class="raw"><summary>%s</summary>%s</details>' % (page.t("html.raw.summary"), raw_html))
                 if raw_html else "",
                 _e(view.pick(res.get("remediation"), lang))))


def _coverage(page, report, groups, got=None):
    lang = page.lang
    cov = view.coverage(report)
    if not cov:
        return
    page.add('<section id="coverage"><h2>%s</h2>' % page.t("html.section.coverage"))
    level = view.scalar_text(cov.get("level"))
    if cov.get("standard"):
        level += " (%s)" % view.scalar_text(cov.get("standard"))
    page.add("<p>%s</p>" % page.t("html.coverage.level", level=level))
    # the counts below are the host's part of 安全计算环境, never the other 安全类 (see 测评范围)
    page.add('<p class="note" id="coverage-scope">%s</p>' % page.t(
        "html.coverage.scope", items=len(view.coverage_items(report))))
    if cov.get("error"):
        page.add('<p class="coverage-error">%s</p>' % page.t("html.coverage.error",
                                                              why=view.scalar_text(cov.get("error"))))
    counts = cov.get("counts") or {}
    page.add('<div class="cards">')
    for key in view.COVERAGE_STATUSES:
        page.add('<div class="card coverage-count" data-coverage="%s"><div class="v">%s</div>'
                 '<div class="k">%s</div></div>' % (_e(key), _e(counts.get(key, 0)),
                                                    page.t("report.coverage." + key)))
    page.add("</div>")
    _table_head(page, ["html.col.item", "html.col.clause", "html.col.area", "html.col.requirement",
                       "html.col.coverage", "html.col.rules", "html.col.verdict"], "coverage",
                ["c-item", "c-clause", "c-area", "c-req", "c-cov", "c-rules", "c-res"])
    listed = set(view.scalar_text(item.get("id")) for item, _members in groups if item and item.get("id"))
    verdicts = dict((view.scalar_text(i.get("id")), i["verdict"]) for i in (got or {}).get("items") or [])
    for item in view.coverage_items(report):
        status = view.coverage_status(item)
        cov_text = t("report.coverage." + status, lang) if status in view.COVERAGE_STATUSES else status
        title = view.pick(item.get("title"), lang)
        if item.get("evidence"):
            title += "\n" + t("html.coverage.evidence", lang) + view.pick(item.get("evidence"), lang)
        verdict = verdicts.get(view.scalar_text(item.get("id")))
        page.add('<tr class="coverage-item" data-status="%s"><td class="nowrap">%s</td><td class="nowrap">%s</td><td>%s</td>'
                 '<td class="wrap">%s</td><td>%s</td><td class="rules">%s</td><td>%s</td></tr>' % (
                     _e(status), _item_link(item, listed), _e(item.get("clause")), _e(view.pick(item.get("area"), lang)),
                     _e(title), _e(cov_text), _e(" ".join(view.scalar_text(r) for r in view.as_list(item.get("rules")))),
                     _verdict_badge(page, verdict) if verdict else '<span class="muted">%s</span>'
                     % page.t("paper.col.not_checked")))
    page.add("</tbody></table></section>")


def _item_link(item, listed):
    """The item id, linked to its results when the results section lists it."""
    item_id = view.scalar_text(item.get("id"))
    if item_id in listed:
        return '<a href="#item-%s">%s</a>' % (_e(item_id), _e(item_id))
    return _e(item_id)


def _waivers(page, report):
    lang = page.lang
    page.add('<section id="waivers"><h2>%s</h2>' % page.t("html.section.waivers"))
    waived = view.waived(report)
    if not waived:
        page.add("<p>%s</p></section>" % page.t("html.waivers.none"))
        return
    _table_head(page, ["html.col.rule", "html.col.status", "html.col.justification", "html.col.approver",
                       "html.col.expiry"])
    for res in waived:
        waiver = res["waiver"]
        expiry = view.waiver_expiry(waiver)
        if waiver.get("expired"):
            expiry += " " + t("html.waivers.expired", lang)
        page.add('<tr class="waiver"><td><b>%s</b><br><span class="muted">%s</span></td><td>%s</td>'
                 '<td class="pre">%s</td><td>%s</td><td>%s</td></tr>' % (
                     _e(view.pick(res.get("title"), lang)), _e(res.get("rule_id")), _badge(page, res.get("status")),
                     _e(view.value_text(waiver.get("justification"), lang)),
                     _e(view.value_text(waiver.get("approver"), lang)), _e(expiry)))
    page.add("</tbody></table></section>")


def _inventory(page, report):
    lang = page.lang
    comps = _components(report)
    page.add('<section id="inventory"><h2>%s</h2>' % page.t("html.section.inventory"))
    if not comps:
        page.add("<p>%s</p></section>" % page.t("inventory.none"))
        return
    _table_head(page, ["html.col.category", "html.col.product", "html.col.version", "html.col.vendor",
                       "html.col.origin", "html.col.evidence"], "inventory",
                ["c-cat", "c-prod", "c-ver", "c-vendor", "c-origin", "c-ev"])
    for comp in comps:
        origin = comp.get("origin") if comp.get("origin") in ("domestic", "foreign") else "unknown"
        name = view.pick(comp.get("name"), lang) or view.scalar_text(comp.get("product_id"))
        if comp.get("model") and view.scalar_text(comp["model"]) not in name:
            name += " (%s)" % view.scalar_text(comp["model"])
        page.add('<tr class="component"><td>%s</td><td>%s</td><td>%s</td><td>%s</td>'
                 '<td class="o-%s">%s</td><td class="pre">%s</td></tr>' % (
                     _e(_category(lang, comp.get("category"))), _e(name), _e(comp.get("version")),
                     _e(view.pick(comp.get("vendor"), lang)), origin, page.t("origin." + origin),
                     _e("\n".join(view.evidence_lines(comp.get("evidence"), lang)))))
    page.add("</tbody></table></section>")


def _errors(page, report):
    errors = [e for e in (report.get("facts") or {}).get("errors") or []]
    if not errors:
        return
    page.add('<section id="errors"><h2>%s</h2>' % page.t("html.section.errors"))
    _table_head(page, ["html.col.collector", "html.col.path", "html.col.message"])
    for err in errors:
        err = err if isinstance(err, dict) else {"message": err}
        page.add('<tr><td>%s</td><td class="pre">%s</td><td class="pre">%s</td></tr>' % (
            _e(err.get("collector")), _e(err.get("path")), _e(message(view.value_text(err.get("message"), page.lang),
                                                                      page.lang))))
    page.add("</tbody></table></section>")


MODES = ("full", "summary")


def _css_string(text):
    """A CSS string literal that cannot end the string or the <style> element."""
    out = []
    for ch in text:
        if ch in '"\\<>&' or ord(ch) < 32:
            out.append("\\%x " % ord(ch))
        else:
            out.append(ch)
    return '"%s"' % "".join(out)


def _print_css(report, lang):
    """A4 portrait, the running header (host, system, date) and page numbers in the page margins."""
    from scanner.render import html_paper
    head = _css_string(html_paper.running_header(report, lang))
    title = _css_string(t("html.print_title", lang))
    number = _css_string(t("html.page_number", lang, page="\x00", pages="\x01"))
    number = number.replace("\\0 ", '" counter(page) "').replace("\\1 ", '" counter(pages) "')
    box = "font-family:%s;font-size:8pt;color:#555" % _FONTS   # margin boxes do not inherit the body's font
    return ("@page{size:A4 portrait;margin:16mm 12mm 15mm 12mm;"
            "@top-left{content:%s;%s;vertical-align:bottom}"
            "@top-right{content:%s;%s;vertical-align:bottom}"
            "@bottom-center{content:%s;%s}}" % (head, box, title, box, number, box))


def render(report, lang="en", mode="full"):
    from scanner.render import html_paper
    if mode not in MODES:
        raise ValueError("unknown HTML mode %r" % mode)
    view.check_report(report)
    page = _Page(lang)
    page.add('<!DOCTYPE html>\n<html lang="%s"><head><meta charset="utf-8">' % ("zh-CN" if lang == "zh" else "en"),
             '<meta http-equiv="Content-Security-Policy" content="%s">' % CSP,
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             '<meta name="generator" content="xcscan %s">' % _e((report.get("scanner") or {}).get("version")),
             "<title>%s</title>" % _e(t("html.title", lang, host=_host_label(report))),
             "<style>%s%s</style></head><body class=\"mode-%s\">" % (CSS, _print_css(report, lang), mode))
    _header(page, report)
    _toc(page, report, mode)
    got = None
    if "results" in report:
        page.guide = assessment.guide_hits([r for r in report.get("results") or [] if isinstance(r, dict)])
        got = assessment.assess(report)
    if mode == "summary":
        page.add('<p class="note" id="mode-note">%s</p>' % page.t("paper.mode.summary"))
    html_paper.basic_info(page, report)
    _summary(page, report, got)
    if got is not None and view.coverage(report):
        html_paper.scope(page, report, got)
        html_paper.controls(page, report, got)
    if got is not None:
        html_paper.risks(page, report, got, mode)
    _localization(page, report)
    _foreign(page, report, mode)
    if "results" in report:
        groups = view.group_results(report)
        if mode == "full":
            _results(page, report, groups)
            _coverage(page, report, groups, got)
        _waivers(page, report)
    if mode == "full":
        _inventory(page, report)
    _errors(page, report)
    page.add("<footer>%s</footer></body></html>\n" % page.t(
        "html.footer", version=view.scalar_text((report.get("scanner") or {}).get("version")),
        report_id=view.scalar_text(report.get("report_id"))))
    return "".join(page.parts)
