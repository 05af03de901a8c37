"""An unprivileged scan says so at the top of its report: that it did not run as root, which
collectors were refused (permission denied, root-only /proc entries) and which rules became
unknown (status error) because they read what those collectors could not."""
from __future__ import absolute_import

import os
import re

DENIED = re.compile(r"permission denied|run as root|readable only by root|\(run as root", re.I)


def refused_collectors(report):
    errors = (report.get("facts") or {}).get("errors") or []
    return sorted(set(e.get("collector") for e in errors
                      if isinstance(e, dict) and e.get("collector") and DENIED.search(str(e.get("message") or ""))))


def rules_unknown_because(report, collectors, ruleset):
    """Rule ids whose result is error and whose checks read a fact of ``collectors``."""
    from scanner.engine import facts_read
    wanted = set(collectors)
    out = []
    for res in report.get("results") or []:
        if res.get("status") != "error":
            continue
        rule = ruleset.get(res.get("rule_id"))
        if rule is not None and facts_read([rule]) & wanted:
            out.append(res["rule_id"])
    return out


def mark_unprivileged(report, ruleset=None, euid=None):
    """Add the not_root notice when this process is not root; returns the rule ids named."""
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        return None
    from scanner import notices
    collectors = refused_collectors(report)
    rules = []
    if "results" in report:
        if ruleset is None:
            from scanner.engine import load_ruleset
            ruleset = load_ruleset()
        rules = rules_unknown_because(report, collectors, ruleset)
    if rules:
        notices.add(report, "not_root", uid=euid, collectors=collectors or ["-"], count=len(rules), rules=rules)
    else:
        notices.add(report, "not_root_no_loss", uid=euid, collectors=collectors or ["-"])
    return rules
