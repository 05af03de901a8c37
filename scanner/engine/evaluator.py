"""Evaluate rules over facts + inventory: results and the summary."""
from __future__ import absolute_import

from scanner.engine import STATUSES, severity_rank
from scanner.engine.checks import ERROR, NA, evaluate_check
from scanner.engine.env import Env, _collection, bounded, utcnow
from scanner.engine.text import reason
from scanner.remediate.params import remediation_text, title_text

# Score weights by severity: info findings are informational and never move the score.
WEIGHTS = {"info": 0, "low": 1, "medium": 2, "high": 4, "critical": 8}


def _applies(rule, env):
    """None when the rule applies, else an outcome (not_applicable or error) with the reason."""
    applies = rule.get("applies_to") or {}
    if "live" in applies and env.live is not None and bool(applies["live"]) != bool(env.live):
        key = "scan.reason.live_only" if applies["live"] else "scan.reason.offline_only"
        return {"status": NA, "reason": reason(key)}
    fams = applies.get("os_family")
    if fams:
        os_facts = env.facts.get("os")
        if not isinstance(os_facts, dict):
            return {"status": ERROR, "reason": reason("scan.reason.os_unknown")}
        family = os_facts.get("family")
        if family not in fams:
            return {"status": NA, "reason": reason("scan.reason.os_family", family=family or "?",
                                                    families=", ".join(fams))}
    when = applies.get("when")
    if when is not None:
        gate = evaluate_check(when, env)
        if gate["status"] in ("error",):
            return {"status": ERROR, "reason": gate["reason"]}
        if gate["status"] == NA:
            return {"status": NA, "reason": gate["reason"]}
        if gate["status"] != "pass":
            from scanner.formula_text import actual_zh, expected_zh
            condition, found = gate.get("expected") or "", gate.get("actual") or ""
            return {"status": NA, "reason": reason("scan.reason.when", condition=condition, actual=found,
                                                    condition_zh=expected_zh(condition), actual_zh=actual_zh(found))}
        env.evidence = []
        env._seen = set()
    arch = applies.get("arch")
    if arch:
        os_facts = env.facts.get("os") or {}
        if os_facts.get("arch") not in arch:
            return {"status": NA, "reason": reason("scan.reason.arch", arch=os_facts.get("arch") or "?",
                                                    allowed=", ".join(arch))}
    return None


def evaluate_rule(rule, facts, inventory, params=None, severity=None, live=None, now=None, catalog=None,
                  collection=None):
    """One result (the report contract's result shape, waiver unset). ``collection``: the facts'
    collection statuses as Env reads them, when the caller evaluates many rules over the same facts."""
    env = Env(facts, inventory, params if params is not None else dict(rule.get("params") or {}),
              now=now, catalog=catalog, live=live, collection=collection)
    try:
        gate = _applies(rule, env)
        if gate is not None:
            out = {"status": gate["status"], "expected": None, "actual": None, "reason": gate["reason"]}
        else:
            out = evaluate_check(rule["check"], env)
    except Exception as exc:  # an engine bug (or a malformed stored report) must not lose the other rules
        out = {"status": ERROR, "expected": None, "actual": None,
               "reason": reason("scan.reason.engine_bug", why="%s: %s" % (type(exc).__name__, exc))}
    evidence = list(env.evidence)
    # evidence_facts: what the assessor needs to see beside the check's own reads (for a manual rule,
    # everything; for a decided rule, e.g. every location of a conflicting sysctl definition). A
    # decided rule lists only the ones present: their absence is the normal case, not a finding.
    manual = out["status"] == "manual"
    for path in rule.get("evidence_facts") or []:
        value, miss = env.resolve(path, record=False)
        if miss is None:
            evidence = [e for e in evidence if e["fact"] != path] + [{"fact": path, "value": bounded(value)}]
        elif manual:
            evidence.append({"fact": path, "value": None, "missing": miss.reason["en"]})
    result = {
        "rule_id": rule["id"],
        "title": title_text(rule, params),
        "category": rule["category"],
        "area": rule.get("area"),
        "severity": severity or rule["severity"],
        "status": out["status"],
        "reason": out.get("reason"),
        "refs": rule.get("refs") or {},
        "levels": rule.get("levels"),
        "expected": out.get("expected"),
        "actual": out.get("actual"),
        "evidence": evidence,
        "items": out.get("items") or [],
        "remediation": remediation_text(rule, params or {}),
        "params": params or {},
        "waiver": None,
    }
    return result


def select_rules(ruleset, profile):
    if profile is None:
        return list(ruleset)
    # a scan asks twice (which facts to collect, then which rules to evaluate): the selection from the
    # last ruleset is kept on the profile (profiles and loaded RuleSets are not modified; a list of
    # rules must hold the same rule objects)
    ids = [id(r) for r in ruleset] if isinstance(ruleset, list) else None
    memo = getattr(profile, "_selected", None)
    if memo is not None and memo[0] is ruleset and memo[1] == len(ruleset) and memo[2] == ids:
        return list(memo[3])
    chosen = [r for r in ruleset if profile.selects(r)]
    try:
        profile._selected = (ruleset, len(ruleset), ids, chosen)
    except AttributeError:
        pass
    return list(chosen)


def evaluate(facts, inventory, ruleset, profile=None, waivers=None, host=None, now=None, catalog=None):
    """Return (results, summary)."""
    from scanner.engine.waivers import apply_waivers
    now = now or utcnow()
    host = host or {}
    live = host.get("live")
    results = []
    collection = _collection((facts or {}).get("collection"))  # the same for every rule
    for rule in select_rules(ruleset, profile):
        params = profile.params_for(rule) if profile is not None else dict(rule.get("params") or {})
        severity = profile.severity_for(rule) if profile is not None else rule["severity"]
        result = evaluate_rule(rule, facts, inventory, params=params, severity=severity, live=live, now=now,
                               catalog=catalog, collection=collection)
        apply_waivers(result, waivers, host, now)
        results.append(result)
    results.sort(key=sort_key)
    summary = summarize(results, profile)
    if waivers:
        import fnmatch
        ids = [r["id"] for r in ruleset]
        # a waiver whose rule matches nothing is almost always a typo: say so instead of ignoring it
        summary["waivers"]["unknown_rules"] = sorted(set(
            w.rule for w in waivers if not any(fnmatch.fnmatchcase(i, w.rule) for i in ids)))
    return results, summary


STATUS_ORDER = {"fail": 0, "error": 1, "waived": 2, "manual": 3, "pass": 4, "not_applicable": 5}


def sort_key(result):
    """Most severe first, failures before passes, then by rule id."""
    return (-severity_rank(result["severity"]), STATUS_ORDER.get(result["status"], 9), result["rule_id"])


def score(results, waived_as_pass):
    got = total = 0
    for r in results:
        w = WEIGHTS.get(r["severity"], 2)
        st = r["status"]
        if st == "waived":
            st = "pass" if waived_as_pass else "fail"
        if st not in ("pass", "fail") or not w:
            continue
        total += w
        if st == "pass":
            got += w
    return round(100.0 * got / total, 1) if total else None


def summarize(results, profile=None):
    counts = dict((s, 0) for s in STATUSES)
    failed_by_severity = {}
    waivers = {"applied": 0, "expired": 0}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
        if r["status"] == "fail":
            failed_by_severity[r["severity"]] = failed_by_severity.get(r["severity"], 0) + 1
        if r.get("waiver"):
            waivers["expired" if r["waiver"].get("expired") else "applied"] += 1
    summary = {
        "profile": profile.id if profile is not None else "all",
        "rules": len(results),
        "counts": counts,
        "failed_by_severity": dict((s, failed_by_severity[s]) for s in
                                   sorted(failed_by_severity, key=severity_rank, reverse=True)),
        "score": score(results, True),
        "score_without_waivers": score(results, False),
        "waivers": waivers,
    }
    if profile is not None and profile.controls:
        from scanner.engine.coverage import coverage
        summary["coverage"] = coverage(profile.controls, results)
    return summary


def worst_failing_severity(results):
    """Highest severity among unwaived failures, or None."""
    worst = None
    for r in results:
        if r["status"] == "fail" and (worst is None or severity_rank(r["severity"]) > severity_rank(worst)):
            worst = r["severity"]
    return worst
