"""Which rules to fix: the failed results of a report (or every rule of the profile with a fix),
narrowed by id globs and a minimum severity; dangerous fixes only with an explicit per-rule opt-in.
"""
from __future__ import absolute_import

import fnmatch

from scanner.remediate.params import checked_params
from scanner.remediate.vocab import fix_kind


class Selection(object):
    def __init__(self):
        self.items = []          # [(rule, params)] to fix
        self.needs_opt_in = []   # [rule] dangerous, not allowed
        self.manual = []         # [rule] fix: manual
        self.no_fix = []         # [rule id] failed but no fix declared
        self.os_mismatch = []    # [rule] fix limited to other OS families
        self.cannot = []         # [(rule, reason {zh, en})] the fix's `when` does not hold on this host


def select(ruleset, report=None, profile=None, rule_globs=(), min_severity=None, allow=(), every=False):
    """``report``: a scan report (its failed results are the candidates, with the params they were
    judged with); ``every``: every rule of ``profile`` that has a fix, failed or not."""
    from scanner.engine import severity_rank
    out = Selection()
    candidates = []
    if every or report is None:
        for rule in ruleset:
            if profile is not None and not profile.selects(rule):
                continue
            params = profile.params_for(rule) if profile is not None else dict(rule.get("params") or {})
            severity = profile.severity_for(rule) if profile is not None else rule["severity"]
            candidates.append((rule, params, severity, []))
    else:
        for res in report.get("results") or []:
            if res.get("status") != "fail":
                continue
            rule = ruleset.get(res.get("rule_id"))
            if rule is None:
                out.no_fix.append(res.get("rule_id"))
                continue
            params, bad = checked_params(rule, res.get("params"))
            candidates.append((rule, params, res.get("severity") or rule["severity"], bad))
    family = (((report or {}).get("facts") or {}).get("os") or {}).get("family")
    threshold = severity_rank(min_severity) if min_severity else None
    allow = set(allow)
    for rule, params, severity, bad in candidates:
        if rule_globs and not any(fnmatch.fnmatchcase(rule["id"], g) for g in rule_globs):
            continue
        if threshold is not None and severity_rank(severity) < threshold:
            continue
        kind = fix_kind(rule)
        if kind is None:
            if not every:
                out.no_fix.append(rule["id"])
            continue
        if kind == "manual":
            out.manual.append(rule)
            continue
        fams = rule["fix"].get("os_family")
        if fams and family and family not in fams:
            out.os_mismatch.append(rule)
            continue
        if bad:  # a report's value no profile could have set: not fixed with it, nor with another value
            from scanner.i18n import t
            out.cannot.append((rule, dict((lang, t("fix.bad_params", lang, names=", ".join(bad)))
                                          for lang in ("zh", "en"))))
            continue
        if rule["fix"].get("when") is not None:
            # a precondition is a fact of the host: without a report (--every) it is unknown, and an
            # unknown precondition is never taken as met (e.g. audit logs another group must read)
            reason = _when_fails(rule, params, report) if report is not None else _when_unknown(rule)
            if reason is not None:
                out.cannot.append((rule, reason))
                continue
        if kind == "dangerous" and rule["id"] not in allow:
            out.needs_opt_in.append(rule)
            continue
        out.items.append((rule, params))
    return out


def _when_fails(rule, params, report):
    """None when the fix's `when` check passes on the report's facts, else the reason."""
    from scanner.engine.evaluator import evaluate_rule
    probe = dict(rule)
    probe["check"] = rule["fix"]["when"]
    probe.pop("applies_to", None)
    res = evaluate_rule(probe, report.get("facts") or {}, report.get("inventory") or {}, params=params,
                        live=(report.get("host") or {}).get("live"))
    if res["status"] == "pass":
        return None
    from scanner.i18n import t
    facts = ", ".join(_facts_of(rule["fix"]["when"]))
    if res.get("actual") is not None:
        facts = "%s = %s" % (facts, res["actual"])
    why = (res.get("reason") or {}).get("en") or res["status"]
    # zh: the fact paths and values only (the check's label is English)
    return {"zh": t("fix.precondition", "zh", why=facts or res["status"]),
            "en": t("fix.precondition", "en", why=why)}


def _when_unknown(rule):
    from scanner.i18n import t
    facts = ", ".join(_facts_of(rule["fix"]["when"]))
    return dict((lang, t("fix.precondition_needs_report", lang, facts=facts)) for lang in ("zh", "en"))


def _facts_of(check):
    out = []
    if isinstance(check, dict):
        if isinstance(check.get("fact"), str):
            out.append(check["fact"])
        for key, value in check.items():
            if key != "fact":
                out.extend(f for f in _facts_of(value) if f not in out)
    elif isinstance(check, list):
        for value in check:
            out.extend(f for f in _facts_of(value) if f not in out)
    return out


NOT_AUTOMATED = "remediation/not-automated.yaml"


def not_automated_reasons(path=None):
    """[(rule id globs, why {zh, en})]: why the rules without a fix block have none (rules/remediation/)."""
    import os
    import yaml
    from scanner.paths import rules_dir
    with open(path or os.path.join(rules_dir(), NOT_AUTOMATED), encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or []
    return [(list(entry["rules"]), dict(entry["why"])) for entry in doc]


def coverage(ruleset, reasons=None):
    """{automated, dangerous, manual, none} -> [rule ids]; "why" -> {rule id without a fix: (why {zh, en}
    or None when no entry of ``reasons`` says)}."""
    out = {"automated": [], "dangerous": [], "manual": [], "none": [], "why": {}}
    reasons = not_automated_reasons() if reasons is None else reasons
    for rule in ruleset:
        kind = fix_kind(rule) or "none"
        out[kind].append(rule["id"])
        if kind == "none":
            out["why"][rule["id"]] = next((why for globs, why in reasons
                                           if any(fnmatch.fnmatchcase(rule["id"], g) for g in globs)), None)
    return out
