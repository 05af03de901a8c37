"""Admins manage alert rules, notification channels and API keys: API under /api/v1 and pages under /admin.

Everything goes through the workflow/access functions with the admin's Scope: a scoped admin sees and changes
only rules watching, and keys confined to, subtrees inside their own (anything else answers 404); channels are
shared by the fleet, so only a fleet-wide admin adds, inspects or tests them (scoped admins see their names).
"""
from __future__ import annotations

import secrets
from typing import Any, Dict, List, Optional

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from scanner.server.access import apikeys
from scanner.server.access.auth import ADMINS, client_ip, require
from scanner.server.errors import ApiError, bad_request
from scanner.server.util import parse_duration
from scanner.server.workflow import alerts

api = APIRouter(prefix="/api/v1")
pages = APIRouter(include_in_schema=False)
ERRORS = {400: {"description": "bad request"}, 401: {"description": "not authenticated"},
          403: {"description": "forbidden"}, 404: {"description": "not found"}, 409: {"description": "exists"},
          422: {"description": "invalid"}}
NAME = 64


class ChannelIn(BaseModel):
    name: str = Field(..., max_length=NAME)
    kind: str = Field(..., max_length=16, description="webhook | syslog | email")
    config: Dict[str, Any] = Field(..., description='webhook {"url", "ca_file"?}; syslog {"address": "udp://H:P" | '
                                   '"tcp://H:P" | "tls://H:P", "ca_file"?}; email {"smtp": "H:P", "from", "to": [...], '
                                   '"starttls"?}')


class RuleIn(BaseModel):
    name: str = Field(..., max_length=NAME)
    kind: str = Field(..., max_length=32, description=", ".join(alerts.KINDS))
    channel: str = Field(..., max_length=NAME)
    org: Optional[str] = Field(None, max_length=512, description="the subtree watched (default: yours)")
    params: Dict[str, Any] = Field(default_factory=dict, description="per kind: docs/integrations.md")


class KeyIn(BaseModel):
    name: str = Field(..., max_length=NAME)
    role: str = Field(..., max_length=16, description="auditor | officer")
    orgs: Optional[List[str]] = Field(None, max_length=50, description="default: yours")
    expires: str = Field("90d", max_length=16, description="e.g. 30d, 12w (at most 3 years)")


def _webhook_secret(kind):
    return "xcw_" + secrets.token_urlsafe(32) if kind == "webhook" else None


# --- API -------------------------------------------------------------------------------------------------
@api.get("/alerts/channels", responses=ERRORS, tags=["alerts"])
def channels_list(request: Request, user=Depends(require(*ADMINS))):
    return alerts.list_channels(request.app.state.engine, scope=user["scope"])


@api.post("/alerts/channels", status_code=201, responses=ERRORS, tags=["alerts"])
def channel_add(body: ChannelIn, request: Request, user=Depends(require(*ADMINS))):
    """A channel (fleet-wide admins). A webhook's HMAC key is made here and shown once in ``secret``."""
    secret = _webhook_secret(body.kind)
    alerts.add_channel(request.app.state.engine, body.name, body.kind, body.config, secret=secret,
                       actor=user["username"], ip=client_ip(request), scope=user["scope"])
    return {"name": body.name, "kind": body.kind, "secret": secret}


@api.post("/alerts/channels/{channel_name}/test", responses={**ERRORS, 502: {"description": "receiver refused"}},
          tags=["alerts"])
def channel_test(request: Request, channel_name: str = Path(..., max_length=NAME), user=Depends(require(*ADMINS))):
    return alerts.send_test(request.app.state.engine, channel_name, actor=user["username"], ip=client_ip(request),
                            scope=user["scope"])


@api.get("/alerts/rules", responses=ERRORS, tags=["alerts"])
def rules_list(request: Request, user=Depends(require(*ADMINS))):
    return alerts.list_rules(request.app.state.engine, scope=user["scope"])


@api.post("/alerts/rules", status_code=201, responses=ERRORS, tags=["alerts"])
def rule_add(body: RuleIn, request: Request, user=Depends(require(*ADMINS))):
    made = alerts.add_rule(request.app.state.engine, body.name, body.kind, body.params, body.org, body.channel,
                           actor=user["username"], ip=client_ip(request), scope=user["scope"])
    (rule,) = [r for r in alerts.list_rules(request.app.state.engine, scope=user["scope"]) if r["name"] == made["name"]]
    return rule


@api.post("/alerts/rules/{rule_name}/enable", responses=ERRORS, tags=["alerts"])
def rule_enable(request: Request, rule_name: str = Path(..., max_length=NAME), user=Depends(require(*ADMINS))):
    return alerts.set_rule_enabled(request.app.state.engine, rule_name, True, actor=user["username"],
                                   ip=client_ip(request), scope=user["scope"])


@api.post("/alerts/rules/{rule_name}/disable", responses=ERRORS, tags=["alerts"])
def rule_disable(request: Request, rule_name: str = Path(..., max_length=NAME), user=Depends(require(*ADMINS))):
    return alerts.set_rule_enabled(request.app.state.engine, rule_name, False, actor=user["username"],
                                   ip=client_ip(request), scope=user["scope"])


@api.delete("/alerts/rules/{rule_name}", responses=ERRORS, tags=["alerts"])
def rule_delete(request: Request, rule_name: str = Path(..., max_length=NAME), user=Depends(require(*ADMINS))):
    return alerts.delete_rule(request.app.state.engine, rule_name, actor=user["username"], ip=client_ip(request),
                              scope=user["scope"])


@api.get("/apikeys", responses=ERRORS, tags=["apikeys"])
def keys_list(request: Request, user=Depends(require(*ADMINS))):
    return apikeys.list_keys(request.app.state.engine, scope=user["scope"])


@api.post("/apikeys", status_code=201, responses=ERRORS, tags=["apikeys"])
def key_create(body: KeyIn, request: Request, user=Depends(require(*ADMINS))):
    """A key for another system, shown once in ``key`` (stored as its hash)."""
    seconds = parse_duration(body.expires)
    if seconds is None:
        raise bad_request("bad_expiry", "expires must be a duration such as 30d or 12w")
    return apikeys.create(request.app.state.engine, body.name, body.role, body.orgs or list(user["scope"].orgs),
                          seconds, actor=user["username"], ip=client_ip(request), scope=user["scope"])


@api.post("/apikeys/{key_name}/revoke", responses=ERRORS, tags=["apikeys"])
def key_revoke(request: Request, key_name: str = Path(..., max_length=NAME), user=Depends(require(*ADMINS))):
    apikeys.revoke(request.app.state.engine, key_name, actor=user["username"], ip=client_ip(request),
                   scope=user["scope"])
    return {"name": key_name, "revoked": True}


# --- pages ------------------------------------------------------------------------------------------------
def _admin(request, csrf_token):
    from scanner.server.web.pages import check_csrf, page_user
    user = page_user(request, ADMINS)
    check_csrf(request, user, csrf_token)
    return user


def _alerts_page(request, user, status=200, **ctx):
    from scanner.server.web.pages import render
    engine = request.app.state.engine
    ctx.setdefault("form", {})
    ctx.setdefault("error", None)
    ctx.setdefault("notice", None)
    return render(request, "alerts.html", status=status, user=user, kinds=alerts.KINDS,
                  severities=alerts.SEVERITIES, channel_kinds=alerts.CHANNEL_KINDS,
                  rules=alerts.list_rules(engine, scope=user["scope"]),
                  channels=alerts.list_channels(engine, scope=user["scope"]),
                  fleet_admin=user["scope"].is_global, **ctx)


@pages.get("/admin/alerts")
def alerts_page(request: Request):
    from scanner.server.web.pages import page_user
    return _alerts_page(request, page_user(request, ADMINS))


def _number(text, whole=True):
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise bad_request("bad_rule", "%r is not a number" % text)
    return int(value) if whole and value == int(value) else value


@pages.post("/admin/alerts/rules")
def alerts_rule_add(request: Request, csrf_token: str = Form("", max_length=64), name: str = Form("", max_length=NAME),
                    kind: str = Form("", max_length=32), org: str = Form("", max_length=512),
                    channel: str = Form("", max_length=NAME), severity: str = Form("", max_length=16),
                    days: str = Form("", max_length=16), hosts: str = Form("", max_length=16),
                    rule: str = Form("", max_length=128), points: str = Form("", max_length=16),
                    by: str = Form("", max_length=16), count: str = Form("", max_length=16),
                    minutes: str = Form("", max_length=16), codes: str = Form("", max_length=1000),
                    max_events: str = Form("", max_length=16)):
    user = _admin(request, csrf_token)
    form = {"name": name, "kind": kind, "org": org, "channel": channel, "severity": severity, "days": days,
            "hosts": hosts, "rule": rule, "points": points, "by": by, "count": count, "minutes": minutes,
            "codes": codes, "max_events": max_events}
    try:
        raw = {"severity": severity or None, "days": _number(days, whole=kind != "host_silent"),
               "hosts": _number(hosts), "rule": rule or None, "points": _number(points, whole=False),
               "by": by or None, "count": _number(count), "minutes": _number(minutes),
               "codes": codes.split() or None, "max_events": _number(max_events)}
        wanted = {"new_failure": ("severity",), "host_silent": ("days",), "failing_hosts": ("hosts", "rule"),
                  "localization_drop": ("points", "days", "by"), "waiver_expiring": ("days",),
                  "report_refusals": ("count", "minutes", "codes")}.get(kind, ())
        params = {k: v for k, v in raw.items() if (k in wanted or k == "max_events") and v is not None}
        alerts.add_rule(request.app.state.engine, name, kind, params, org or None, channel, actor=user["username"],
                        ip=client_ip(request), scope=user["scope"])
    except ApiError as exc:
        if exc.status not in (400, 403, 404, 409):
            raise
        return _alerts_page(request, user, status=exc.status, error=exc.message, form=form)
    return RedirectResponse("/admin/alerts", status_code=303)


def _rule_action(request, rule_name, csrf_token, action):
    user = _admin(request, csrf_token)
    engine, kw = request.app.state.engine, {"actor": user["username"], "ip": client_ip(request), "scope": user["scope"]}
    if action == "delete":
        alerts.delete_rule(engine, rule_name, **kw)
    else:
        alerts.set_rule_enabled(engine, rule_name, action == "enable", **kw)
    return RedirectResponse("/admin/alerts", status_code=303)


@pages.post("/admin/alerts/rules/{rule_name}/enable")
def alerts_rule_enable(request: Request, rule_name: str = Path(..., max_length=NAME),
                       csrf_token: str = Form("", max_length=64)):
    return _rule_action(request, rule_name, csrf_token, "enable")


@pages.post("/admin/alerts/rules/{rule_name}/disable")
def alerts_rule_disable(request: Request, rule_name: str = Path(..., max_length=NAME),
                        csrf_token: str = Form("", max_length=64)):
    return _rule_action(request, rule_name, csrf_token, "disable")


@pages.post("/admin/alerts/rules/{rule_name}/delete")
def alerts_rule_delete(request: Request, rule_name: str = Path(..., max_length=NAME),
                       csrf_token: str = Form("", max_length=64)):
    return _rule_action(request, rule_name, csrf_token, "delete")


@pages.post("/admin/alerts/channels")
def alerts_channel_add(request: Request, csrf_token: str = Form("", max_length=64), name: str = Form("", max_length=NAME),
                       kind: str = Form("", max_length=16), target: str = Form("", max_length=1000),
                       mail_from: str = Form("", max_length=255), mail_to: str = Form("", max_length=2000),
                       ca_file: str = Form("", max_length=1000)):
    user = _admin(request, csrf_token)
    form = {"name": name, "kind": kind, "target": target, "mail_from": mail_from, "mail_to": mail_to, "ca_file": ca_file}
    config = {"webhook": {"url": target}, "syslog": {"address": target},
              "email": {"smtp": target, "from": mail_from, "to": mail_to.split()}}.get(kind, {})
    if ca_file:
        config["ca_file"] = ca_file
    secret = _webhook_secret(kind)
    try:
        alerts.add_channel(request.app.state.engine, name, kind, config, secret=secret, actor=user["username"],
                           ip=client_ip(request), scope=user["scope"])
    except ApiError as exc:
        if exc.status not in (400, 403, 409):
            raise
        return _alerts_page(request, user, status=exc.status, error=exc.message, form=form)
    return _alerts_page(request, user, status=201, new_secret={"channel": name, "secret": secret} if secret else None)


@pages.post("/admin/alerts/channels/{channel_name}/test")
def alerts_channel_test(request: Request, channel_name: str = Path(..., max_length=NAME),
                        csrf_token: str = Form("", max_length=64)):
    user = _admin(request, csrf_token)
    try:
        alerts.send_test(request.app.state.engine, channel_name, actor=user["username"], ip=client_ip(request),
                         scope=user["scope"])
    except ApiError as exc:
        if exc.status != 502:
            raise
        return _alerts_page(request, user, status=502, error=exc.message)
    return _alerts_page(request, user, notice=channel_name)


def _keys_page(request, user, status=200, **ctx):
    from scanner.server.web.pages import render
    ctx.setdefault("form", {})
    ctx.setdefault("error", None)
    ctx.setdefault("new_key", None)
    return render(request, "apikeys.html", status=status, user=user, roles=apikeys.ROLES,
                  keys=apikeys.list_keys(request.app.state.engine, scope=user["scope"]), **ctx)


@pages.get("/admin/apikeys")
def keys_page(request: Request):
    from scanner.server.web.pages import page_user
    return _keys_page(request, page_user(request, ADMINS))


@pages.post("/admin/apikeys")
async def keys_create(request: Request, csrf_token: str = Form("", max_length=64), name: str = Form("", max_length=NAME),
                      role: str = Form("", max_length=16), orgs: str = Form("", max_length=4000),
                      expires: str = Form("90d", max_length=16)):
    user = _admin(request, csrf_token)
    form = {"name": name, "role": role, "orgs": orgs, "expires": expires}
    try:
        seconds = parse_duration(expires)
        if seconds is None:
            raise bad_request("bad_expiry", "expires must be a duration such as 30d or 12w")
        key = await run_in_threadpool(apikeys.create, request.app.state.engine, name, role,
                                      orgs.split() or list(user["scope"].orgs), seconds, user["username"],
                                      client_ip(request), scope=user["scope"])
    except ApiError as exc:
        if exc.status not in (400, 403, 409):
            raise
        return _keys_page(request, user, status=exc.status, error=exc.message, form=form)
    return _keys_page(request, user, status=201, new_key=key)


@pages.post("/admin/apikeys/{key_name}/revoke")
def keys_revoke(request: Request, key_name: str = Path(..., max_length=NAME), csrf_token: str = Form("", max_length=64)):
    user = _admin(request, csrf_token)
    apikeys.revoke(request.app.state.engine, key_name, actor=user["username"], ip=client_ip(request),
                   scope=user["scope"])
    return RedirectResponse("/admin/apikeys", status_code=303)
