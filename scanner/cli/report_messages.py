"""What a person running `xcscan scan` must see on stderr whatever the --format: the report's
notices (no OS under --root, not root), waivers naming no rule (with the nearest rule id), and the
one line saying which findings made --fail-on exit 3."""
from __future__ import absolute_import

import click


def warnings(report, lang):
    """Warning sentences for stderr."""
    from scanner import notices
    from scanner.i18n import t
    out = list(notices.texts(report, lang))
    unknown = ((report.get("summary") or {}).get("waivers") or {}).get("unknown_rules") or []
    if unknown:
        from scanner.engine import load_ruleset
        from scanner.suggest import did_you_mean
        ids = [r["id"] for r in load_ruleset()]
        for rule in unknown:
            out.append(t("scan.warn.waiver_unknown", lang, rule=rule, suggestion=did_you_mean(rule, ids, lang)))
    return out


def echo_warnings(report, lang):
    from scanner.i18n import t
    for text in warnings(report, lang):
        click.echo("xcscan: %s%s" % (t("warning.prefix", lang), text), err=True)


def fail_on_line(report, fail_on, lang, limit=5):
    """'exit 3: 2 failed rules at or above high: a.b (critical), c.d (high)' or None."""
    from scanner.engine import severity_rank
    from scanner.i18n import t
    threshold = severity_rank(fail_on)
    failing = [r for r in report.get("results") or []
               if r.get("status") == "fail" and severity_rank(r.get("severity")) >= threshold]
    if not failing:
        return None
    failing.sort(key=lambda r: -severity_rank(r.get("severity")))
    shown = ["%s (%s)" % (r.get("rule_id"), t("scan.severity." + str(r.get("severity")), lang)) for r in failing[:limit]]
    if len(failing) > limit:
        shown.append(t("scan.fail_on_more", lang, count=len(failing) - limit))
    return t("scan.fail_on", lang, count=len(failing), severity=t("scan.severity." + fail_on, lang),
             rules=("、" if lang == "zh" else ", ").join(shown))
