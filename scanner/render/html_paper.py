"""The working paper's frame in the HTML report: 基本信息, the stated scope, the summary per 控制点,
问题分析与风险评价 and the item score with its definition (numbers from scanner/render/assessment.py)."""
from __future__ import absolute_import

from scanner.assessment_info import local_time
from scanner.i18n import t
from scanner.render import assessment, records, view
from scanner.render import html as base

_e = base._e
# GB/T 22239-2019 安全类 (security categories), technical then management
SECURITY_CATEGORIES = ("physical", "network", "boundary", "computing", "management_center", "policy",
                       "organization", "personnel", "construction", "operation")
IN_SCOPE = "computing"


def level_of(report):
    """(level number or None, from_profile): the 安全保护等级 from --assessment, else the profile."""
    frame = report.get("assessment") if isinstance(report.get("assessment"), dict) else {}
    if frame.get("level") in (1, 2, 3, 4):
        return frame["level"], False
    profile = view.scalar_text((report.get("summary") or {}).get("profile"))
    if profile in ("mlps-l2", "mlps-l3"):
        return int(profile[-1]), True
    return None, False


def frame_of(report):
    return report.get("assessment") if isinstance(report.get("assessment"), dict) else {}


def zone_of(report):
    return view.scalar_text(frame_of(report).get("timezone")) or None


def running_header(report, lang):
    """'gov-app-01 · 非税收入管理系统 · 2026-11-20' for the top of every printed page."""
    host = base._host_label(report)
    system = view.scalar_text(frame_of(report).get("system"))
    when = local_time(view.scalar_text((report.get("host") or {}).get("collected_at")), zone_of(report))
    date = view.scalar_text(when)[:10]
    return " · ".join(p for p in (host, system, date) if p)


def basic_info(page, report):
    """基本信息: who, what, level, by whom, when (local time)."""
    lang = page.lang
    frame = frame_of(report)
    level, from_profile = level_of(report)
    level_text = None
    if level is not None:
        level_text = t("paper.level.%d" % level, lang)
        if from_profile:
            level_text += t("paper.level.from_profile", lang)
    host = report.get("host") or {}
    scanned = view.scalar_text(host.get("collected_at"))
    joiner = "、" if lang == "zh" else ", "
    rows = [("paper.info.organization", frame.get("organization")), ("paper.info.system", frame.get("system")),
            ("paper.info.record_number", frame.get("record_number")),
            ("paper.info.report_number", frame.get("report_number") or report.get("report_id")),
            ("paper.info.level", level_text),
            ("paper.info.assessors", joiner.join(view.as_list(frame.get("assessors"))) or None),
            ("paper.info.assessed_on", frame.get("assessed_on")),
            ("paper.info.scanned_at", local_time(scanned, zone_of(report)) if scanned else None)]
    page.add('<section id="basic"><h2>%s</h2><table class="kv">' % page.t("paper.section.basic"))
    shown = [(k, v) for k, v in rows if v not in (None, "")]
    missing = [k for k, v in rows[:6] if v in (None, "")]
    for i in range(0, len(shown), 2):
        cells = "".join('<th>%s</th><td>%s</td>' % (page.t(k), _e(v)) for k, v in shown[i:i + 2])
        page.add("<tr>%s</tr>" % cells)
    page.add("</table>")
    if missing:
        page.add('<p class="muted">%s</p>' % page.t(
            "paper.info.missing", fields=("、" if lang == "zh" else ", ").join(t(k, lang) for k in missing)))
    page.add("</section>")


def score_card(page, got):
    score = got["score"]
    value = view.score_text(score["value"])
    page.add('<div class="card" id="card-item-score"><div class="v">%s</div><div class="k">%s</div></div>'
             % (_e(value if value is not None else t("html.na", page.lang)), page.t("paper.score.card")))


def score_note(page, got):
    score = got["score"]
    page.add('<p id="score-definition" class="note">%s</p>' % page.t(
        "paper.score.definition", counted=score["counted"], pending=score["pending"],
        excluded=score["excluded"]))


def scope(page, report, got):
    """What a host scan covers (part of 安全计算环境) and what it does not (every other 安全类)."""
    lang = page.lang
    cov = view.coverage(report) or {}
    counts = cov.get("counts") or {}
    in_scope = len(view.coverage_items(report))
    page.add('<section id="scope"><h2>%s</h2>' % page.t("paper.section.scope"))
    page.add("<p>%s</p>" % page.t("paper.scope.intro", items=in_scope, automated=counts.get("automated", 0),
                                  partial=counts.get("partial", 0), manual=counts.get("manual", 0),
                                  not_covered=counts.get("not_covered", 0)))
    base._table_head(page, ["paper.col.security_category", "paper.col.in_scope"], "scope", ["c-cat", "c-scope"])
    for cat in SECURITY_CATEGORIES:
        inside = cat == IN_SCOPE and in_scope > 0
        page.add('<tr class="scope-row" data-in-scope="%s"><td>%s</td><td>%s</td></tr>' % (
            "yes" if inside else "no", page.t("paper.category." + cat),
            page.t("paper.scope.in" if inside else "paper.scope.out")))
    page.add("</tbody></table></section>")


def controls(page, report, got):
    """The summary per 控制点 (control point) of 安全计算环境."""
    if not got["by_control"]:
        return
    lang = page.lang
    page.add('<section id="controls"><h2>%s</h2>' % page.t("paper.section.controls"))
    keys = ["paper.col.control_point", "paper.col.items"] + ["report.verdict." + v for v in assessment.VERDICTS] + \
        ["paper.col.not_checked"]
    base._table_head(page, keys, "controls")
    total = dict((k, 0) for k in ("items", "not_checked") + assessment.VERDICTS)
    for area, row in got["by_control"]:
        for k in total:
            total[k] += row[k]
        page.add('<tr class="control" data-control="%s"><td>%s</td>%s</tr>' % (
            _e(view.pick(area, "en")), _e(view.pick(area, lang)),
            "".join('<td class="num" data-k="%s">%s</td>' % (k, _e(row[k]))
                    for k in ("items",) + assessment.VERDICTS + ("not_checked",))))
    page.add('<tr class="total"><th>%s</th>%s</tr>' % (page.t("paper.col.total"), "".join(
        '<th class="num">%s</th>' % _e(total[k]) for k in ("items",) + assessment.VERDICTS + ("not_checked",))))
    page.add("</tbody></table>")
    page.add('<p class="note">%s</p></section>' % page.t("paper.controls.note"))


def risks(page, report, got, mode="full"):
    """问题分析与风险评价: every failure rated 高/中/低, guide-listed findings marked."""
    lang = page.lang
    findings = got["findings"]
    page.add('<section id="risks"><h2>%s</h2>' % page.t("paper.section.risks"))
    counts = dict((r, sum(1 for f in findings if f["risk"] == r)) for r in assessment.RISKS)
    guided = sum(1 for f in findings if f["guide"])
    page.add("<p>%s</p>" % page.t("paper.risks.summary", high=counts["high"], medium=counts["medium"],
                                  low=counts["low"], guided=guided))
    page.add('<p class="note">%s</p>' % page.t("paper.risks.rule", source=view.pick(assessment.guide_source(), lang)
                                               or "-"))
    if not findings:
        page.add("<p>%s</p></section>" % page.t("paper.risks.none"))
        return
    # the summary leaves the remediation to the full report: the problems and their risk fit on fewer pages
    full = mode == "full"
    keys = ["paper.col.risk", "paper.col.item", "paper.col.finding", "paper.col.basis"]
    cols = ["c-risk", "c-item", "c-find", "c-basis"]
    base._table_head(page, keys + (["html.col.remediation"] if full else []), "risks" if full else "risks brief",
                     cols + (["c-rem"] if full else []))
    for f in findings:
        res, item, entry = f["result"], f["item"], f["guide"]
        item_text = view.scalar_text(item.get("id")) if item else "-"
        if item and item.get("area"):
            item_text += "\n" + view.pick(item.get("area"), lang)
        if entry:
            basis = "%s\n%s %s" % (view.pick(entry.get("title"), lang), t("paper.risks.clause", lang),
                                   view.scalar_text(entry.get("clause")))
        else:
            severity = view.scalar_text(res.get("severity"))
            basis = t("paper.risks.by_severity", lang, severity=t("report.severity." + severity, lang)
                      if severity in view.SEVERITIES else severity)
        page.add('<tr class="finding" data-rule="%s" data-risk="%s"%s><td><span class="badge r-%s">%s</span></td>'
                 '<td class="wrap">%s</td><td><b>%s</b> <span class="muted">%s</span><br>%s</td>'
                 '<td class="wrap">%s</td>%s</tr>' % (
                     _e(res.get("rule_id")), _e(f["risk"]), ' data-guide="%s"' % _e(entry.get("id")) if entry else "",
                     _e(f["risk"]), page.t("paper.risk." + f["risk"]), _e(item_text),
                     _e(view.pick(res.get("title"), lang)), _e(res.get("rule_id")), _e(records.record(res, lang)),
                     _e(basis), '<td class="wrap">%s</td>' % _e(view.pick(res.get("remediation"), lang)) if full else ""))
    page.add("</tbody></table></section>")
