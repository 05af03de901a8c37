"""Terminal table of scan results (called by scanner/render/table.py)."""
from __future__ import absolute_import

from scanner.i18n import pick, t

SHOWN = ("fail", "error", "waived", "manual")


def _block(label, text, cells, pad, lang):
    """``label: text`` wrapped to the terminal, continuation lines hanging under the text."""
    from scanner.render.textwidth import width, wrap
    prefix = pad + (label + ("：" if lang == "zh" else ": ") if label else "")
    hang = " " * width(prefix)
    lines = wrap(text, cells - width(prefix))
    return "\n".join([prefix + lines[0]] + [hang + line for line in lines[1:]])


def _finding(result, lang):
    lines = []
    why = pick(result.get("reason"), lang) if result.get("reason") else ""
    if why:
        lines.append(why)
    failing = [i for i in result.get("items") or [] if i.get("status") in ("fail", "error", "manual")]
    if len(failing) == 1 and failing[0].get("reason") == result.get("reason"):
        failing = []  # the reason already says it
    for item in failing[:6]:
        from scanner.render.view import actual_text
        text = "- %s: %s" % (item.get("key"), actual_text(item.get("actual"), lang) if item.get("actual") else pick(item.get("reason"), lang))
        subs = item.get("substitutes")
        if subs:
            text += " (%s: %s)" % (t("scan.substitutes", lang), ", ".join(pick(s.get("name"), lang) for s in subs))
        lines.append(text)
    if len(failing) > 6:
        lines.append("  (+%d)" % (len(failing) - 6))
    waiver = result.get("waiver")
    if waiver:
        key = "scan.waiver_expired" if waiver.get("expired") else "scan.waived_by"
        lines.append(t(key, lang, approver=waiver.get("approver"), expires=waiver.get("expires"),
                       justification=waiver.get("justification")))
    return "\n".join(lines)


def render_results(report, lang="en"):
    """One block per finding (fail, error, waived, manual), most severe first, then the summary.

    A block layout rather than a grid keeps Chinese text readable; every line fits the terminal
    (scanner/render/textwidth.py: display width, 禁则, words and commands kept whole).
    """
    summary = report.get("summary") or {}
    results = report.get("results") or []
    lines = [t("scan.title", lang, profile=summary.get("profile") or "?"), ""]
    hidden = 0
    pad = "    "
    from scanner.render.textwidth import terminal_width, wrap
    cells = terminal_width()
    for r in results:
        if r.get("status") not in SHOWN:
            hidden += 1
            continue
        head = "[%s] %s  %s" % (t("scan.severity." + str(r.get("severity")), lang),
                                t("scan.status." + str(r.get("status")), lang), r.get("rule_id"))
        lines.append(head)
        lines.append(_block("", pick(r.get("title"), lang), cells, pad, lang))
        finding = _finding(r, lang)
        if finding:
            lines.append(_block(t("scan.col.finding", lang), finding, cells, pad, lang))
        if r.get("status") in ("fail", "error", "waived"):
            lines.append(_block(t("scan.col.remediation", lang), pick(r.get("remediation"), lang), cells, pad, lang))
        lines.append("")
    if not results:
        lines.append(t("scan.none", lang))
    if hidden:
        lines.append(t("scan.passed_hidden", lang, count=hidden))
    counts = dict(summary.get("counts") or {})
    counts.setdefault("rules", summary.get("rules", len(results)))
    for k in ("pass", "fail", "error", "waived", "manual", "not_applicable"):
        counts.setdefault(k, 0)
    lines.append(t("scan.summary.counts", lang, **counts))
    if summary.get("score") is None:
        lines.append(t("scan.summary.score_na", lang))
    else:
        swo = summary.get("score_without_waivers")
        lines.append(t("scan.summary.score", lang, score=summary["score"],
                       score_without_waivers=t("html.na", lang) if swo is None else swo))
    wv = summary.get("waivers") or {}
    if wv.get("applied") or wv.get("expired"):
        lines.append(t("scan.summary.waivers", lang, applied=wv.get("applied", 0), expired=wv.get("expired", 0)))
    if wv.get("unknown_rules"):
        lines.append(t("scan.summary.waivers_unknown", lang, rules=", ".join(wv["unknown_rules"])))
    cov = summary.get("coverage")
    if cov:
        c = cov.get("counts") or {}
        lines.append(t("scan.summary.coverage", lang, level=cov.get("level"), automated=c.get("automated", 0),
                       partial=c.get("partial", 0), manual=c.get("manual", 0), not_covered=c.get("not_covered", 0)))
    return "\n".join("\n".join(wrap(line, cells)) if line and not line.startswith(" ") else line for line in lines)
