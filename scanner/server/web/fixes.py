"""Fix scripts for what a user sees: a host's failures, or one rule's, as a POSIX-shell script or an
Ansible playbook (scanner.remediate renders them). Scoped like the host and rule pages; audited as
an export. The aggregator only hands the script out: it never pushes changes to hosts, and it never
includes a dangerous (opt-in) fix — those are applied on the host with `xcscan fix --allow RULE`."""
from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response

from scanner.i18n import t
from scanner.server.access.auth import client_ip
from scanner.server.store import queries
from scanner.server.web.pages import error_page, lang_of, page_user

router = APIRouter(include_in_schema=False)
KINDS = {"sh": ("bash", "text/x-shellscript; charset=utf-8"), "yml": ("ansible", "application/yaml; charset=utf-8")}


def _items(pairs, judged=None):
    """[(rule_id, profile)] -> [(rule, params)] with an automated fix. Params: those the host's report
    was judged with (``judged``: {(profile, rule_id): params}, a tailored profile's values), checked like
    any report's (a value no profile could set leaves the rule out); else the shipped profile's."""
    from scanner.engine import load_profile, load_ruleset
    from scanner.engine.profiles import list_profiles
    from scanner.remediate.params import checked_params
    from scanner.remediate.vocab import fix_kind
    ruleset, shipped, profiles, out, seen = load_ruleset(), set(list_profiles()), {}, [], set()
    for rule_id, profile in pairs:
        rule = ruleset.get(rule_id)
        if rule is None or rule_id in seen or fix_kind(rule) != "automated":
            continue
        if rule["fix"].get("when") is not None:
            # a fix with a precondition (a fact of the host, e.g. auditd's log_group) is planned only by
            # `xcscan fix` on the host or from its report, where the precondition is checked
            continue
        seen.add(rule_id)
        params = dict(rule.get("params") or {})
        if judged and (profile, rule_id) in judged:
            params, bad = checked_params(rule, judged[(profile, rule_id)])
            if bad:
                continue
        elif profile in shipped:
            if profile not in profiles:
                profiles[profile] = load_profile(profile)
            params = profiles[profile].params_for(rule)
        out.append((rule, params))
    return out


def _judged_params(engine, scope, host_id, profiles):
    """{(profile, rule_id): params} of the host's latest report of each of ``profiles``."""
    from scanner.server.store.jsondoc import Unreadable
    from scanner.server.store.reports import report_document
    latest = {}
    for row in queries.host_history(engine, scope, host_id):  # newest first
        latest.setdefault(row["profile"], row["id"])
    out = {}
    for profile in sorted(set(profiles)):
        if profile not in latest:
            continue
        try:
            doc = report_document(queries.get_report(engine, scope, latest[profile], host_id=host_id))
        except Unreadable:  # pruned or damaged: the shipped profile's values
            continue
        for res in (doc.get("results") if isinstance(doc, dict) else None) or []:
            if isinstance(res, dict) and isinstance(res.get("params"), dict):
                out[(profile, res.get("rule_id"))] = res["params"]
    return out


def _script(request, user, items, name, kind, object_id, org):
    from scanner.server.store import db
    from scanner.server.store.audit import audit
    lang = lang_of(request)
    renderer, media = KINDS[kind]
    if renderer == "bash":
        from scanner.remediate.bash import render
        text = render(items, generated_by="the xcscan aggregator", lang=lang)
    else:
        from scanner.remediate.ansible import render
        text = render(items, lang=lang)
    with db.write_tx(request.app.state.engine) as conn:
        audit(conn, user["username"], "export.fix_script", object_id, {"format": renderer, "rules": len(items)},
              client_ip(request), org=org)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80]
    return Response(text, media_type=media,
                    headers={"Content-Disposition": 'attachment; filename="xcscan-fix-%s.%s"' % (safe, kind)})


def _host(request, host_id, kind):
    user = page_user(request)
    host = queries.get_host(request.app.state.engine, user["scope"], host_id[:64])
    failed = [(r["rule_id"], r["profile"]) for r in host["results"] if r["status"] == "fail"]
    judged = _judged_params(request.app.state.engine, user["scope"], host["id"], [p for _, p in failed])
    items = _items(failed, judged)
    if not items:
        return error_page(request, 404, t("server.fix_none", lang_of(request)))
    return _script(request, user, items, host.get("hostname") or host["id"], kind, host["id"], host["org_path"])


def _rule(request, rule_id, kind):
    user = page_user(request)
    rule_id = rule_id[:128]
    counts = queries.rule_status_counts(request.app.state.engine, user["scope"], rule_id)
    items = _items([(rule_id, None)]) if counts.get("fail") else []
    if not items:
        return error_page(request, 404, t("server.fix_none", lang_of(request)))
    return _script(request, user, items, rule_id, kind, rule_id, None)


@router.get("/hosts/{host_id}/fix.sh")
def host_fix_sh(host_id: str, request: Request):
    return _host(request, host_id, "sh")


@router.get("/hosts/{host_id}/fix.yml")
def host_fix_yml(host_id: str, request: Request):
    return _host(request, host_id, "yml")


@router.get("/rules/{rule_id}/fix.sh")
def rule_fix_sh(rule_id: str, request: Request):
    return _rule(request, rule_id, "sh")


@router.get("/rules/{rule_id}/fix.yml")
def rule_fix_yml(rule_id: str, request: Request):
    return _rule(request, rule_id, "yml")
