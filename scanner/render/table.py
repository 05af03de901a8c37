"""Terminal table: the inventory grouped by category (and scan results when present)."""
from __future__ import absolute_import

from scanner.i18n import pick, t, virt_label


def _evidence_text(comp, lang="en", limit=3):
    parts = []
    for ev in comp.get("evidence") or []:
        value = ev.get("value")
        if isinstance(value, (dict, list)):
            value = str(value)
        kind = ev.get("kind")
        from scanner.render.view import EVIDENCE_KINDS
        if kind in EVIDENCE_KINDS:
            kind = t("sw.evidence." + kind, lang)
        text = "%s: %s" % (kind, value)
        if len(text) > 70:
            text = text[:67] + "..."
        parts.append(text)
    if len(parts) > limit:
        parts = parts[:limit] + ["(+%d)" % (len(parts) - limit)]
    return "\n".join(parts)


def _list_text(items, limit=4):
    """One per line (a narrow column); the rest counted."""
    items = list(items)
    if len(items) > limit:
        items = items[:limit - 1] + ["(+%d)" % (len(items) - limit + 1)]
    return "\n".join(items)


def render_inventory(report, lang):
    from scanner.render import grid
    from scanner.render.textwidth import terminal_width
    host = report.get("host") or {}
    inv = report.get("inventory") or {}
    lines = []
    target = t("inventory.target_live", lang) if host.get("live") else t("inventory.target_root", lang,
                                                                           root=host.get("root"))
    lines.append(t("inventory.title", lang, host=host.get("hostname") or "?") + "  [" + target + "]")
    if host.get("virtualization"):
        lines.append(t("inventory.virtualization", lang,
                       kind=virt_label(host["virtualization"], lang)))
    from scanner.render.view import SubstituteNamer
    namer = SubstituteNamer(inv.get("components"), lang, report.get("results"))
    rows = []
    for comp in inv.get("components") or []:
        name = pick(comp.get("name"), lang)
        if comp.get("model") and comp["model"] not in name:
            name = "%s\n%s" % (name, comp["model"])
        rows.append([
            t("category." + comp["category"], lang),
            name,
            comp.get("version") or "",
            t("origin." + (comp.get("origin") or "unknown"), lang),
            _list_text(namer.names(comp.get("substitutes"))),
            _evidence_text(comp, lang),
        ])
    if rows:
        headers = [t("inventory.col." + k, lang) for k in
                   ("category", "product", "version", "origin", "substitutes", "evidence")]
        lines.append(grid.render(headers, rows, terminal_width()))
    else:
        lines.append(t("inventory.none", lang))
    loc = inv.get("localization") or {}
    if loc.get("rate") is None:
        lines.append(t("inventory.localization_na", lang))
    else:
        lines.append(t("inventory.localization", lang, rate="%.1f%%" % (loc["rate"] * 100),
                       domestic=loc.get("domestic", 0), foreign=loc.get("foreign", 0),
                       unknown=loc.get("unknown", 0)))
    errors = (report.get("facts") or {}).get("errors") or []
    if errors:
        lines.append(t("inventory.errors", lang, count=len(errors)))
    return "\n".join(lines)


def render(report, lang="en"):
    from scanner.notices import texts
    from scanner.render.textwidth import terminal_width, wrap
    cells = terminal_width()
    parts = ["\n".join("\n".join(wrap(t("notice.prefix", lang) + text, cells)) for text in texts(report, lang))] \
        if report.get("notices") else []
    parts.append(render_inventory(report, lang))
    if "results" in report:
        from scanner.render import table_results  # added by the scan command
        parts.append(table_results.render_results(report, lang))
    return "\n\n".join(parts) + "\n"
