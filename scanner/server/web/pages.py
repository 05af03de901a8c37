"""Server-rendered web UI (Jinja2, zh/en, inline SVG charts, no scripts, no external assets)."""
from __future__ import annotations

import calendar
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from typing import Optional
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from scanner.i18n import pick, t
from scanner.render.view import substitute_names
from scanner.server.store import change_digest, paper_summaries, queries
from scanner.server.access import accounts
from scanner.server.web import svg
from scanner.server.workflow import assessments, frames, waivers
from scanner.server.store import coverage as coverage_store
from scanner.server.access.auth import (ASSESSORS, ADMINS, AUDIT_READERS, COOKIE, READERS, WAIVER_EDITORS, client_ip, current_user)
from scanner.server.errors import ApiError, forbidden, not_found
from scanner.server.util import iso, normalise_org, parse_duration

HERE = os.path.dirname(os.path.abspath(__file__))
LANG_COOKIE = "xcscan_lang"
LOGIN_CSRF = "xcscan_login_csrf"
router = APIRouter(include_in_schema=False)
_ENV = None


class LoginRedirect(ApiError):
    def __init__(self, path):
        ApiError.__init__(self, 303, "login_required", "log in first",
                          headers={"Location": "/login?" + urlencode({"next": path})})


def env():
    global _ENV
    if _ENV is None:
        from jinja2 import Environment, FileSystemLoader, select_autoescape
        _ENV = Environment(loader=FileSystemLoader(os.path.join(HERE, "templates")),
                           autoescape=select_autoescape(default=True, default_for_string=True))
        _ENV.filters["ts"] = lambda v: iso(v) if v else "–"
        _ENV.filters["day"] = lambda v: time.strftime("%Y-%m-%d", time.gmtime(int(v))) if v else "–"
        _ENV.filters["pct"] = lambda v: "–" if v is None else "%.1f%%" % (v * 100)
        _ENV.filters["score"] = lambda v: "–" if v is None else "%.1f" % v
    return _ENV


def lang_of(request):
    lang = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    if lang in ("zh", "en"):
        return lang
    return "zh" if request.headers.get("accept-language", "").lower().startswith("zh") else "en"


def cat_label(category, lang):
    text = t("category.%s" % category, lang)
    return category if text == "category.%s" % category else text


def _reason_text(result, lang):
    """The agent's explanation of a verdict in ``lang`` (reports from before it was stored: None)."""
    evidence = result.get("evidence")
    reason = evidence.get("reason") if isinstance(evidence, dict) else None
    if not isinstance(reason, dict):
        return None
    return reason.get(lang) or reason.get("en") or reason.get("zh")


def _failing_item_keys(result):
    """The keys of a finding's failed items, one per line (pre-fills a waiver request from the finding)."""
    evidence = result.get("evidence")
    items = evidence.get("items") if isinstance(evidence, dict) else None
    keys = [str(i.get("key")) for i in items or () if isinstance(i, dict) and i.get("status") == "fail"
            and i.get("key") is not None]
    return "\n".join(keys[:200])


def render(request, name, status=200, **ctx):
    lang = lang_of(request)
    user = ctx.pop("user", None) or getattr(request.state, "user", None)
    tr = lambda key, **kw: t("server." + key, lang, **kw)  # noqa: E731
    page = env().get_template(name).render(
        _=tr, lang=lang, user=user, pick=lambda pair: pick(pair, lang), request=request, path=request.url.path,
        other_lang="en" if lang == "zh" else "zh", cat_label=lambda c: cat_label(c, lang), status_label=lambda s: tr("status." + (s or "none")),
        reason_of=lambda r: _reason_text(r, lang), substitute_names=lambda ids: substitute_names(ids, lang),
        waive_items=_failing_item_keys,
        csrf=user["csrf"] if user else "", can_waive=bool(user and user["role"] in WAIVER_EDITORS),
        can_audit=bool(user and user["role"] in AUDIT_READERS), can_assess=bool(user and user["role"] in ASSESSORS), can_admin=bool(user and user["role"] in ADMINS), qs=lambda **kw: urlencode({k: v for k, v in kw.items() if v}),
        **ctx)
    resp = HTMLResponse(page, status_code=status)
    if request.query_params.get("lang") in ("zh", "en"):
        resp.set_cookie(LANG_COOKIE, request.query_params["lang"], max_age=365 * 86400, samesite="lax",
                        secure=request.url.scheme == "https")
    return resp


def error_page(request, status, message, headers=None):
    if status == 303 and headers and "Location" in headers:
        return RedirectResponse(headers["Location"], status_code=303)
    try:
        return render(request, "error.html", status=status, status_code=status, message=message)
    except Exception:  # noqa: BLE001 - the error page itself must never fail
        return HTMLResponse("<!doctype html><title>%d</title><p>error %d</p>" % (status, status), status_code=status)


def page_user(request, roles=READERS):
    user = current_user(request)
    if user is None:
        raise LoginRedirect(request.url.path)
    if user["role"] not in roles:
        raise forbidden("forbidden", t("server.forbidden", lang_of(request)))
    return user


def check_csrf(request, user, token):
    if not accounts.csrf_ok(user, token):
        raise forbidden("csrf", t("server.csrf_failed", lang_of(request)))


def _org_param(request):
    return normalise_org(request.query_params.get("org")) if request.query_params.get("org") else None


PER_PAGE = 50


def _page_no(request, param="page"):
    raw = request.query_params.get(param) or "1"
    return max(1, min(int(raw), 10**6)) if raw.isdigit() else 1


def pager(request, total, page, per_page=PER_PAGE, param="page", anchor="", keep=()):
    """Links to the neighbouring pages of a list, keeping the request's filters (``param``: the query
    parameter of the page number, for a page with several lists; ``anchor``: the list's element id;
    ``keep``: parameters set on every link, replacing the request's)."""
    pages = max(1, (total + per_page - 1) // per_page)
    drop = {param} | {k for k, _v in keep}
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in drop] + list(keep)

    def href(n):
        return request.url.path + "?" + urlencode(params + [(param, str(n))]) + ("#" + anchor if anchor else "")
    if page > pages:  # past the end (an old link, a list that shrank): say so and link the last page
        return {"total": total, "page": page, "pages": pages, "first": 0, "last": 0, "beyond": True,
                "prev": None, "next": None, "last_page": href(pages)}
    return {"total": total, "page": page, "pages": pages, "first": (page - 1) * per_page + 1 if total else 0,
            "last": min(total, page * per_page), "prev": href(page - 1) if page > 1 else None,
            "next": href(page + 1) if page < pages else None, "beyond": False}


def sort_links(request, keys, current, desc):
    """Column-heading links: sort by a key, a second click reverses it."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("sort", "desc", "page")]
    out = {}
    for key in keys:
        extra = [("sort", key)] + ([("desc", "1")] if key == current and not desc else [])
        out[key] = request.url.path + "?" + urlencode(params + extra)
    return out


def _list_param(request, name, allowed):
    return [v for v in request.query_params.getlist(name) if v in allowed] or None


# --- static and login ------------------------------------------------------------------------------
@router.get("/static/app.css")
def css():
    with open(os.path.join(HERE, "static", "app.css"), encoding="utf-8") as fh:
        return Response(fh.read(), media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("/login")
def login_form(request: Request, next: Optional[str] = None):
    token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", login_csrf=token, next=_safe_next(next), error=None)
    resp.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return resp


def _safe_next(target):
    return target if isinstance(target, str) and target.startswith("/") and not target.startswith("//") \
        and "\\" not in target else "/"


@router.post("/login")
async def login_submit(request: Request, username: str = Form("", max_length=64), password: str = Form("", max_length=1024),
                       csrf_token: str = Form("", max_length=64), next: str = Form("/", max_length=512)):
    cookie = request.cookies.get(LOGIN_CSRF)
    if not cookie or not secrets.compare_digest(cookie.encode("utf-8"), csrf_token.encode("utf-8")):
        raise forbidden("csrf", t("server.csrf_failed", lang_of(request)))
    settings = request.app.state.settings
    try:
        session = await run_in_threadpool(accounts.login, request.app.state.engine, username, password,
                                          settings.session_ttl, client_ip(request), accounts.LoginPolicy(settings, request.app.state.security_events),
                                          request.app.state.directory)
    except ApiError as exc:
        token = secrets.token_urlsafe(24)
        locked = exc.status == 429
        lang = lang_of(request)
        message = {"directory_unavailable": "server.login_directory_unavailable", "no_role": "server.login_no_role",
                   "name_taken": "server.login_refused", "bad_username": "server.login_refused"}.get(exc.code)
        error = t("server.login_locked", lang) % max(1, (int(exc.headers["Retry-After"]) + 59) // 60) if locked \
            else t(message or "server.login_failed", lang)
        resp = render(request, "login.html", status=exc.status if locked or message else 401, login_csrf=token,
                      next=_safe_next(next), error=error)
        resp.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
        if locked:
            resp.headers["Retry-After"] = exc.headers["Retry-After"]
        return resp
    resp = RedirectResponse(_safe_next(next), status_code=303)
    resp.set_cookie(COOKIE, session["token"], max_age=settings.session_ttl, httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", path="/")
    resp.delete_cookie(LOGIN_CSRF)
    return resp


OIDC_COOKIE = "xcscan_oidc"
OIDC_ERRORS = {"directory_unavailable": "server.login_sso_unavailable", "no_role": "server.login_sso_no_role",
               "name_taken": "server.login_refused", "bad_username": "server.login_refused",
               "oidc_refused": "server.login_sso_refused"}


def _login_error(request, exc, next_page):
    """The login page again with the reason a login was refused (and a new login form token)."""
    token = secrets.token_urlsafe(24)
    locked = exc.status == 429
    lang = lang_of(request)
    message = OIDC_ERRORS.get(exc.code) if exc.code != "login_locked" else None
    error = t("server.login_locked", lang) % max(1, (int(exc.headers["Retry-After"]) + 59) // 60) if locked \
        else t(message or "server.login_failed", lang)
    resp = render(request, "login.html", status=exc.status, login_csrf=token, next=_safe_next(next_page), error=error)
    resp.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    if exc.headers and "Retry-After" in exc.headers:
        resp.headers["Retry-After"] = exc.headers["Retry-After"]
    return resp


@router.get("/login/oidc")
async def login_oidc(request: Request, next: Optional[str] = None):
    """Single sign-on: off to the OpenID Connect provider with state, nonce and a PKCE challenge; the three
    secrets wait in a signed cookie that only /login/oidc/callback receives, for 10 minutes."""
    from scanner.server.access.oidc import STATE_TTL, ProviderUnavailable
    provider = request.app.state.oidc
    if provider is None:
        raise not_found("single sign-on is not configured on this server")
    try:
        url, cookie = await run_in_threadpool(provider.start, _safe_next(next))
    except ProviderUnavailable as exc:
        import logging
        logging.getLogger("xcscan.server").warning("OIDC login: %s", exc)
        return _login_error(request, ApiError(503, "directory_unavailable", str(exc), headers={"Retry-After": "30"}),
                            next)
    resp = RedirectResponse(url, status_code=303)
    # SameSite=Lax: the provider's redirect back is a cross-site top-level GET, which Strict would strip
    resp.set_cookie(OIDC_COOKIE, cookie, max_age=STATE_TTL, httponly=True, samesite="lax",
                    secure=request.url.scheme == "https", path="/login/oidc/callback")
    return resp


@router.get("/login/oidc/callback")
async def login_oidc_callback(request: Request, code: str = "", state: str = "", error: str = ""):
    provider = request.app.state.oidc
    if provider is None:
        raise not_found("single sign-on is not configured on this server")
    settings = request.app.state.settings
    cookie = request.cookies.get(OIDC_COOKIE)
    next_page = _safe_next(provider.next_page(cookie))
    try:
        session = await run_in_threadpool(accounts.oidc_login, request.app.state.engine, provider, cookie,
                                          state[:512], code[:4096], error[:100], client_ip(request),
                                          accounts.LoginPolicy(settings, request.app.state.security_events),
                                          settings.session_ttl)
    except ApiError as exc:
        resp = _login_error(request, exc, next_page)
        resp.delete_cookie(OIDC_COOKIE, path="/login/oidc/callback")
        return resp
    resp = RedirectResponse(next_page, status_code=303)
    resp.set_cookie(COOKIE, session["token"], max_age=settings.session_ttl, httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", path="/")
    resp.delete_cookie(OIDC_COOKIE, path="/login/oidc/callback")
    return resp


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form("", max_length=64)):
    user = page_user(request)
    check_csrf(request, user, csrf_token)
    accounts.logout(request.app.state.engine, user)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp


# --- pages -----------------------------------------------------------------------------------------
@router.get("/")
def overview_page(request: Request):
    user = page_user(request)
    org = _org_param(request)
    lang = lang_of(request)
    data = queries.overview(request.app.state.engine, user["scope"], org)
    cats = svg.stacked_bars(svg.rate_rows([(cat_label(c, lang),
                                            "/localization/components?" + urlencode([(k, v) for k, v in (("category", c), ("org", org)) if v]),
                                            v["domestic"], v["foreign"], v["unknown"], v["rate"])
                                           for c, v in data["by_category"].items()]), aria=t("server.loc_by_category", lang))
    orgs = svg.stacked_bars(svg.rate_rows([(n["path"], "/?" + urlencode({"org": n["path"]}), n["domestic"], n["foreign"],
                                            n["unknown"], n["rate"]) for n in data["by_org"]]), aria=t("server.loc_by_org", lang))
    prof = svg.stacked_bars([{"label": p["profile"], "href": "/findings?" + urlencode({"profile": p["profile"], "status": "fail"}),
                              "note": "%s (%d)" % ("–" if p["score"] is None else "%.1f" % p["score"], p["hosts"]),
                              "segments": [(p["passed"], "pass", "pass %d" % p["passed"]), (p["failed"], "fail", "fail %d" % p["failed"])]}
                             for p in data["by_profile"]], aria=t("server.compliance_by_profile", lang))
    labels = [time.strftime("%m-%d", time.gmtime(p["day"])) for p in data["trend"]]
    score_name = t("server.score", lang) + (" · " + data["trend_profile"] if data.get("trend_profile") else "")
    trend = svg.line_chart([("score", score_name, [p["score"] for p in data["trend"]]),
                            ("loc", t("server.loc_rate", lang), [None if p["loc_rate"] is None else p["loc_rate"] * 100
                                                                  for p in data["trend"]])], labels, aria=t("server.trend", lang))
    return render(request, "overview.html", user=user, data=data, org=org, cat_chart=cats, org_chart=orgs,
                  profile_chart=prof, trend_chart=trend)


@router.get("/orgs")
def orgs_page(request: Request):
    user = page_user(request)
    tree = queries.org_tree(request.app.state.engine, user["scope"], _org_param(request))
    profiles = sorted({p for n in tree for p in n["profiles"]})
    return render(request, "orgs.html", user=user, tree=tree, profiles=profiles)


@router.get("/orgs/controls")
def org_controls_page(request: Request):
    """The summary per 控制点 rolled up over the org subtree (``?org=``), from each host's latest report."""
    from scanner.server.web import rollup
    user = page_user(request)
    org = _org_param(request)
    count, hosts = queries.latest_hosts(request.app.state.engine, user["scope"], org, rollup.MAX_HOSTS)
    data, busy = None, None
    if 0 < count <= rollup.MAX_HOSTS:
        try:
            with request.app.state.rollup_slots.held():  # a few at once per worker (store/slots.py)
                data = rollup.controls_rollup(paper_summaries.latest(request.app.state.engine, hosts))
        except ApiError as exc:
            if exc.status != 503:
                raise
            busy = exc
    lang = lang_of(request)
    verdicts = ("nonconform", "partial", "pending", "conform", "not_applicable")
    labels = dict((v, t("report.verdict." + v, lang)) for v in verdicts)
    labels.update(not_checked=t("paper.col.not_checked", lang), control_point=t("paper.col.control_point", lang),
                  items=t("paper.col.items", lang), score=t("paper.score.card", lang),
                  high=t("paper.risk.high", lang), medium=t("paper.risk.medium", lang), low=t("paper.risk.low", lang),
                  rule=t("paper.controls.note", lang))
    if data is not None:  # the working paper's score definition, with the subtree's figures
        labels["definition"] = t("paper.score.definition", lang, counted=data["score"]["counted"],
                                 pending=data["score"]["pending"], excluded=data["score"]["excluded"])
    frame = frames.get_frame(request.app.state.engine, org, scope=user["scope"])["effective"]
    resp = render(request, "controls.html", status=503 if busy else 200, user=user, org=org or "/", count=count,
                  data=data, busy=busy is not None, limit=rollup.MAX_HOSTS, verdicts=verdicts + ("not_checked",),
                  labels=labels, frame=frame, frame_rows=_frame_rows(frame, lang))
    if busy is not None:
        resp.headers.update(busy.headers or {})  # Retry-After
    return resp


def _frame_rows(frame, lang):
    """[(label, text)] of a frame for a page, in the order of the paper's 基本信息."""
    if not frame:
        return []
    f = frame["frame"]
    joiner = "、" if lang == "zh" else ", "
    rows = []
    for key in frames.FRAME_FIELDS:
        value = f.get(key)
        if value in (None, "", []):
            continue
        if key == "level":
            value = t("paper.level.%d" % value, lang)
        elif key == "assessors":
            value = joiner.join(value)
        rows.append((t("paper.info." + key, lang) if key != "timezone" else t("server.frame.timezone", lang), value))
    return rows


def _frame_page(request, user, org, status=200, error=None, form=None):
    got = frames.get_frame(request.app.state.engine, org, scope=user["scope"])
    lang = lang_of(request)
    own = (got["own"] or {}).get("frame") or {}
    values = form if form is not None else dict(own, assessors="、".join(own.get("assessors") or []))
    labels = dict((k, t("paper.info." + k, lang)) for k in frames.FRAME_FIELDS if k != "timezone")
    labels["timezone"] = t("server.frame.timezone", lang)
    return render(request, "frame.html", status=status, user=user, got=got, values=values, labels=labels,
                  fields=frames.FRAME_FIELDS, levels=[(n, t("paper.level.%d" % n, lang)) for n in (1, 2, 3, 4)],
                  rows=_frame_rows(got["effective"], lang), can_edit=user["role"] in frames.EDITOR_ROLES, error=error)


@router.get("/orgs/frame")
def frame_page(request: Request):
    """The working paper's frame (基本信息) of an org unit (?org=), and the form to set it."""
    user = page_user(request)
    return _frame_page(request, user, _org_param(request))


@router.post("/orgs/frame")
def frame_set(request: Request, csrf_token: str = Form("", max_length=64), org: str = Form("", max_length=512),
              organization: str = Form("", max_length=400), system: str = Form("", max_length=400),
              record_number: str = Form("", max_length=400), report_number: str = Form("", max_length=400),
              level: str = Form("", max_length=8), assessors: str = Form("", max_length=4000),
              assessed_on: str = Form("", max_length=400), timezone: str = Form("", max_length=64)):
    user = page_user(request)
    check_csrf(request, user, csrf_token)
    form = {"organization": organization, "system": system, "record_number": record_number,
            "report_number": report_number, "level": level, "assessors": assessors, "assessed_on": assessed_on,
            "timezone": timezone}
    data = dict(form)
    names = [n.strip() for n in re.split(r"[、,，;；\n]", assessors) if n.strip()]
    data["assessors"] = names or None
    try:
        got = frames.set_frame(request.app.state.engine, org or None, data, user["username"], client_ip(request),
                               scope=user["scope"], role=user["role"])
    except ApiError as exc:
        if exc.status not in (400, 403):
            raise
        return _frame_page(request, user, org or None, status=exc.status, error=exc.message, form=form)
    return RedirectResponse("/orgs/frame?" + urlencode({"org": got["org"]}), status_code=303)


@router.get("/hosts")
def hosts_page(request: Request, q: Optional[str] = None):
    user = page_user(request)
    org = _org_param(request)
    q = (q or "")[:255]
    p = request.query_params
    profile = (p.get("profile") or "")[:64]
    sort = p.get("sort") if p.get("sort") in queries.HOST_SORTS else "org"
    desc = p.get("desc") == "1"
    page = _page_no(request)
    rows = queries.list_hosts(request.app.state.engine, user["scope"], org, q or None, limit=PER_PAGE,
                              offset=(page - 1) * PER_PAGE, profile=profile or None, sort=sort, desc=desc)
    return render(request, "hosts.html", user=user, hosts=rows, org=org, q=q, profile=profile,
                  pager=pager(request, rows.total, page), sorts=sort_links(request, queries.HOST_SORTS, sort, desc))


@router.get("/hosts/{host_id}")
def host_page(host_id: str, request: Request):
    return _render_host(request, page_user(request), host_id)


def _render_host(request, user, host_id, status=200, error=None):
    engine = request.app.state.engine
    host = queries.get_host(engine, user["scope"], host_id)
    needed = [r for r in host["results"] if r["status"] in ("fail", "error", "waived")]
    texts = queries.host_remediations(engine, user["scope"], host_id, {r["profile"] for r in needed})
    for r in needed:
        r["remediation"] = texts.get((r["profile"], r["rule_id"])) or queries.shipped_remediation(r["rule_id"], r["profile"])
    host["result_groups"] = queries.group_results(host["results"])
    history = queries.host_history(engine, user["scope"], host_id, 100)
    return render(request, "host.html", status=status, user=user, host=host, history=history, error=error)


@router.get("/reports/{report_id}/paper")
def report_paper(report_id: str, request: Request, edition: str = "full"):
    """The assessor's working paper of a stored report (the same HTML `xcscan report --format html|summary`
    writes), in the page's language; scoped like every report, audited as an export."""
    from scanner.render import html as report_html
    from scanner.server.store import db, reports, verdicts
    from scanner.server.store.audit import audit
    user = page_user(request)
    if edition not in ("full", "summary"):
        return error_page(request, 400, t("server.paper_bad_edition", lang_of(request)))
    engine = request.app.state.engine
    row = queries.get_report(engine, user["scope"], report_id[:64])
    doc = reports.readable_document(row)  # an unreadable stored report: a clear 422, not a 500
    with engine.connect() as conn:  # the assessors' valid recorded verdicts decide its manual parts
        verdicts.apply_to_document(conn, doc, row["host_id"], row["org_path"])
        near = frames.effective_frame(conn, row["org_path"], scope=user["scope"])
    if near:  # the frame set on the server wins over the agent's, field by field (workflow/frames.py)
        frames.apply_frame(doc, near["frame"])
    with db.write_tx(engine) as conn:
        audit(conn, user["username"], "export.report", row["id"], {"host_id": row["host_id"], "format": "html-" + edition},
              client_ip(request), org=row["org_path"])
    return HTMLResponse(report_html.render(doc, lang_of(request), mode=edition))


@router.post("/hosts/{host_id}/retire")
def host_retire(host_id: str, request: Request, csrf_token: str = Form("", max_length=64),
                reason: str = Form("", max_length=255)):
    from scanner.server.workflow.hosts import retire_host
    user = page_user(request, ADMINS)
    check_csrf(request, user, csrf_token)
    try:
        retire_host(request.app.state.engine, host_id, reason, user["username"], client_ip(request), scope=user["scope"])
    except ApiError as exc:
        if exc.status not in (400, 409):
            raise
        return _render_host(request, user, host_id, status=exc.status, error=exc.message)
    return RedirectResponse("/hosts/%s" % host_id, status_code=303)


@router.get("/hosts/{host_id}/drift")
def drift_page(host_id: str, request: Request, a: str = "", b: str = ""):
    user = page_user(request)
    engine = request.app.state.engine
    host = queries.get_host(engine, user["scope"], host_id)
    d = queries.drift(engine, user["scope"], host_id, a[:64], b[:64])
    return render(request, "drift.html", user=user, host=host, drift=d)


STATUSES = ("fail", "error", "waived", "manual", "pass", "not_applicable")
DEFAULT_FINDING_STATUSES = ("fail", "error")


@router.get("/rules/{rule_id}")
def rule_page(rule_id: str, request: Request):
    user = page_user(request)
    engine = request.app.state.engine
    rule_id = rule_id[:128]
    status = _list_param(request, "status", STATUSES)
    page = _page_no(request)
    counts = queries.rule_status_counts(engine, user["scope"], rule_id)
    rows = queries.rule_hosts(engine, user["scope"], rule_id, status, limit=PER_PAGE, offset=(page - 1) * PER_PAGE,
                              counts=counts)
    return render(request, "rule.html", user=user, rule_id=rule_id, rows=rows, counts=counts,
                  title=rows[0] if rows else None, chosen=status or [], pager=pager(request, rows.total, page))


@router.get("/findings")
def findings_page(request: Request):
    user = page_user(request)
    p = request.query_params
    f = {k: (p.get(k) or "")[:128] for k in ("org", "profile", "rule", "category", "host", "q")}
    f["severity"] = _list_param(request, "severity", queries.SEVERITIES) or []
    f["status"] = _list_param(request, "status", STATUSES) or []
    if not f["status"] and "status" not in p and "filtered" not in p:
        f["status"] = list(DEFAULT_FINDING_STATUSES)  # what needs action; the form's "all" unticks them
    sort = p.get("sort") if p.get("sort") in queries.FINDING_SORTS else "severity"
    desc = p.get("desc") == "1"
    page = _page_no(request)
    org = normalise_org(f["org"]) if f["org"] else None
    rows = queries.findings(request.app.state.engine, user["scope"], org, f["profile"] or None, f["rule"] or None,
                            f["severity"] or None, f["status"] or None, f["category"] or None, f["host"] or None,
                            limit=PER_PAGE, offset=(page - 1) * PER_PAGE, q=f["q"] or None, sort=sort, desc=desc)
    export_qs = urlencode([(k, v) for k, v in p.multi_items()
                           if v and k in ("org", "profile", "rule", "severity", "category", "q")]
                          + [("status", x) for x in f["status"]])
    return render(request, "findings.html", user=user, rows=rows, f=f, export_qs=export_qs,
                  severities=queries.SEVERITIES, statuses=STATUSES, pager=pager(request, rows.total, page),
                  sorts=sort_links(request, queries.FINDING_SORTS, sort, desc))


WAIVER_FORM_FIELDS = ("rule_id", "scope", "scope_value", "items", "justification", "expires")


def _waivers_page(request, user, status=200, error=None, form=None):
    engine = request.app.state.engine
    rows = waivers.list_waivers(engine, scope=user["scope"])
    form = dict({k: "" for k in WAIVER_FORM_FIELDS}, **(form or {}))
    return render(request, "waivers.html", status=status, user=user, waivers=rows, error=error, form=form,
                  can_approve=user["role"] in waivers.APPROVER_ROLES,
                  single_step=request.app.state.settings.waiver_single_step)


@router.get("/waivers")
def waivers_page(request: Request):
    """The waivers of the user's scope; ?rule_id=&scope=host&scope_value=HOSTNAME&items=... pre-fill the
    request form (the host page's "waive" link on a finding)."""
    user = page_user(request)
    p = request.query_params
    form = {k: (p.get(k) or "")[:20000 if k == "items" else 512] for k in WAIVER_FORM_FIELDS}
    return _waivers_page(request, user, form=form)


def _expiry(text):
    """A date (YYYY-MM-DD, through the end of that day, UTC) or a duration from now (90d, 12h, 600)."""
    text = (text or "").strip()
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%d")) + 86399
    except ValueError:
        seconds = parse_duration(text)
        return int(time.time()) + seconds if seconds else None


@router.post("/waivers")
def waivers_create(request: Request, csrf_token: str = Form("", max_length=64), rule_id: str = Form("", max_length=128),
                   scope: str = Form("", max_length=8), scope_value: str = Form("", max_length=512),
                   items: str = Form("", max_length=20000), justification: str = Form("", max_length=4000),
                   expires: str = Form("", max_length=16)):
    user = page_user(request, WAIVER_EDITORS)
    check_csrf(request, user, csrf_token)
    form = {"rule_id": rule_id, "scope": scope, "scope_value": scope_value, "items": items,
            "justification": justification, "expires": expires}
    try:
        waivers.request_waiver(request.app.state.engine, {
            "rule_id": rule_id, "scope": scope, "scope_value": scope_value or None, "items": items or None,
            "justification": justification, "expires_at": _expiry(expires)}, user["username"], client_ip(request),
            scope=user["scope"], role=user["role"], single_step=request.app.state.settings.waiver_single_step)
    except ApiError as exc:
        if exc.status not in (400, 403):
            raise
        return _waivers_page(request, user, status=exc.status, error=exc.message, form=form)
    return RedirectResponse("/waivers", status_code=303)


def _decide(request, waiver_id, decision, csrf_token, note):
    user = page_user(request, waivers.APPROVER_ROLES)
    check_csrf(request, user, csrf_token)
    try:
        waivers.decide_waiver(request.app.state.engine, waiver_id, decision, user["username"], note or None,
                              client_ip(request), scope=user["scope"], role=user["role"],
                              single_step=request.app.state.settings.waiver_single_step)
    except ApiError as exc:
        if exc.status not in (403, 409) or exc.code == "csrf":
            raise
        return _waivers_page(request, user, status=exc.status, error=exc.message)
    return RedirectResponse("/waivers", status_code=303)


@router.post("/waivers/{waiver_id}/approve")
def waivers_approve(request: Request, waiver_id: int = Path(..., ge=1, le=2**31 - 1),
                    csrf_token: str = Form("", max_length=64), note: str = Form("", max_length=4000)):
    return _decide(request, waiver_id, "approve", csrf_token, note)


@router.post("/waivers/{waiver_id}/reject")
def waivers_reject(request: Request, waiver_id: int = Path(..., ge=1, le=2**31 - 1),
                   csrf_token: str = Form("", max_length=64), note: str = Form("", max_length=4000)):
    return _decide(request, waiver_id, "reject", csrf_token, note)


@router.post("/waivers/{waiver_id}/revoke")
def waivers_revoke(request: Request, waiver_id: int = Path(..., ge=1, le=2**31 - 1), csrf_token: str = Form("", max_length=64)):
    user = page_user(request, WAIVER_EDITORS)
    check_csrf(request, user, csrf_token)
    waivers.revoke_waiver(request.app.state.engine, waiver_id, user["username"], client_ip(request), scope=user["scope"])
    return RedirectResponse("/waivers", status_code=303)


# --- coverage and assessments ------------------------------------------------------------------------
def _coverage_page(request, user, host_id, org, level, status=200, error=None):
    engine = request.app.state.engine
    try:
        if host_id:
            cov = coverage_store.coverage(engine, user["scope"], level, host_id=host_id)
        else:
            with request.app.state.rollup_slots.held():  # a subtree's every host: a few at once (store/slots.py)
                cov = coverage_store.coverage(engine, user["scope"], level, org=org)
    except ApiError as exc:
        if exc.status != 503:
            raise
        resp = render(request, "coverage.html", status=503, user=user, busy=True, host=None, assessments=[],
                      cov={"level": level, "org": org, "items": []}, verdicts=coverage_store.VERDICTS,
                      error=t("server.coverage_busy", lang_of(request)))
        resp.headers.update(exc.headers or {})
        return resp
    host = queries.get_host(engine, user["scope"], host_id) if host_id else None
    target = host_id or cov["org"] or None
    rows = assessments.list_assessments(engine, scope=user["scope"], target=target) if target else []
    return render(request, "coverage.html", status=status, user=user, cov=cov, host=host, assessments=rows,
                  verdicts=coverage_store.VERDICTS, error=error)


@router.get("/coverage")
def coverage_page(request: Request):
    """GB/T 28448 coverage of a host (?host=ID) or an org subtree (?org=PATH); ?level= (default mlps-l3)."""
    user = page_user(request)
    p = request.query_params
    return _coverage_page(request, user, (p.get("host") or "")[:64] or None, _org_param(request),
                          (p.get("level") or "mlps-l3")[:32])


@router.post("/coverage/assessments")
async def coverage_record(request: Request, csrf_token: str = Form("", max_length=64), level: str = Form("mlps-l3", max_length=32),
                          item_id: str = Form("", max_length=64), target_kind: str = Form("", max_length=8),
                          target: str = Form("", max_length=512), verdict: str = Form("", max_length=16),
                          record: str = Form("", max_length=8000), valid: str = Form("", max_length=16),
                          evidence: Optional[UploadFile] = File(None)):
    user = page_user(request, ASSESSORS)
    check_csrf(request, user, csrf_token)
    files = []
    if evidence is not None and evidence.filename:
        data = await evidence.read(assessments.MAX_FILE_BYTES + 1)
        files.append((evidence.filename, data))
    host_id = target if target_kind == "host" else None
    org = None if host_id else (normalise_org(target) or None)
    try:
        await run_in_threadpool(assessments.record_assessment, request.app.state.engine, {
            "level": level, "item_id": item_id, "target_kind": target_kind, "target": target, "verdict": verdict,
            "record": record, "valid_until": _expiry(valid), "files": files}, user["username"], client_ip(request),
            scope=user["scope"], role=user["role"])
    except ApiError as exc:
        if exc.status not in (400, 403, 413):
            raise
        return _coverage_page(request, user, host_id, org, level, status=exc.status, error=exc.message)
    return RedirectResponse("/coverage?" + urlencode({k: v for k, v in (("host", host_id), ("org", org), ("level", level)) if v}),
                            status_code=303)


# --- 信创 progress and the change feed --------------------------------------------------------------------
TARGET_ROLES = ("admin", "officer")


def _day(text, end_of_day=False):
    """YYYY-MM-DD (UTC) -> unix seconds (the end of that day with ``end_of_day``); None otherwise."""
    try:
        return calendar.timegm(time.strptime((text or "").strip(), "%Y-%m-%d")) + (86399 if end_of_day else 0)
    except ValueError:
        return None


def _localization_page(request, user, status=200, error=None, form=None):
    from scanner.server.store import localization
    org = _org_param(request)
    since = _day(request.query_params.get("since"))
    data = localization.progress(request.app.state.engine, user["scope"], org, since)
    return render(request, "localization.html", status=status, user=user, data=data, org=org, error=error,
                  form=form or {}, all_categories=localization.CATEGORIES,
                  can_target=user["role"] in TARGET_ROLES, trend_charts=_loc_trend_charts(data, request))


def _loc_trend_charts(data, request):
    """{category: a small line chart of its rate (%) over the trend's days, a gap where no point}."""
    days = data["trend_days"]
    last = int(time.time()) // 86400
    axis = list(range(last - days, last + 1))
    labels = [time.strftime("%m-%d", time.gmtime(d * 86400)) for d in axis]
    out = {}
    for cat, pts in data["trend"].items():
        by_day = {p["day"] // 86400: p["rate"] for p in pts}
        values = [None if by_day.get(d) is None else by_day[d] * 100 for d in axis]
        out[cat] = svg.line_chart([("loc", cat, values)], labels, width=300, height=90, aria=cat)
    return out


@router.get("/localization")
def localization_page(request: Request):
    """信创 progress: rates per org unit and category, targets, substitutions (?org=, ?since=YYYY-MM-DD)."""
    return _localization_page(request, page_user(request))


@router.post("/localization/targets")
def localization_target_form(request: Request, csrf_token: str = Form("", max_length=64), org: str = Form("", max_length=512),
                             category: str = Form("", max_length=32), target: str = Form("", max_length=8),
                             deadline: str = Form("", max_length=16), note: str = Form("", max_length=1000)):
    from scanner.server.workflow import targets
    user = page_user(request, TARGET_ROLES)
    check_csrf(request, user, csrf_token)
    try:
        pct = float(target)
    except ValueError:
        pct = -1.0
    try:
        targets.set_target(request.app.state.engine, {"org": org, "category": category, "target": round(pct / 100.0, 4),
                                                       "deadline": _day(deadline, True), "note": note or None},
                           user["username"], client_ip(request), scope=user["scope"], role=user["role"])
    except ApiError as exc:
        if exc.status not in (400, 403):
            raise
        return _localization_page(request, user, status=exc.status, error=exc.message,
                                  form={"org": org, "category": category, "target": target, "deadline": deadline})
    return RedirectResponse("/localization", status_code=303)


@router.post("/localization/targets/{target_id}/delete")
def localization_target_remove(request: Request, target_id: int = Path(..., ge=1, le=2**31 - 1),
                               csrf_token: str = Form("", max_length=64)):
    from scanner.server.workflow import targets
    user = page_user(request, TARGET_ROLES)
    check_csrf(request, user, csrf_token)
    targets.delete_target(request.app.state.engine, target_id, user["username"], client_ip(request),
                          scope=user["scope"], role=user["role"])
    return RedirectResponse("/localization", status_code=303)


@router.get("/localization/components")
def localization_components_page(request: Request):
    """The components of a category (?category=) still foreign (?origin=foreign, the default; domestic,
    unknown or any) in the org subtree, with their domestic substitutes; CSV export link."""
    from scanner.server.store import localization
    user = page_user(request)
    p = request.query_params
    org = _org_param(request)
    category = (p.get("category") or "")[:32] or None
    origin = p.get("origin") if p.get("origin") in ("foreign", "domestic", "unknown", "any") else "foreign"
    page = _page_no(request)
    rows, total = localization.components(request.app.state.engine, user["scope"], org, category,
                                          None if origin == "any" else origin, PER_PAGE, (page - 1) * PER_PAGE)
    export_qs = urlencode([(k, v) for k, v in (("org", org), ("category", category), ("origin", origin)) if v])
    return render(request, "components.html", user=user, rows=rows, org=org, category=category, origin=origin,
                  pager=pager(request, total, page), export_qs=export_qs)


CHANGES_SHOWN = change_digest.ROWS  # rows of each list of the change page, a page at a time (the counts: all)
# the change page's lists, each paged by its own ?<list>_page= (the components list shows added and removed rows)
CHANGE_LISTS = (("new", ("new",)), ("fixed", ("fixed",)), ("substitutions", ("substitutions",)),
                ("components", ("added", "removed")), ("stopped", ("stopped",)), ("joined", ("joined",)))


@router.get("/changes")
def changes_page(request: Request):
    """The change feed of the scope (?org=) between ?from= and ?to= (YYYY-MM-DD; default the last 7 days).
    The default view comes from the digest counted ahead (store/change_digest.py) while it is fresh, and
    says when it was counted; ?live=1 counts now; its lists' further pages keep the digest's window
    (?at=: its time) and come from the digest while it is the one made then and keeps their rows (the
    first change_digest.PAGES pages), else are folded live over that window."""
    from scanner.server.store import change_summary
    user = page_user(request)
    p = request.query_params
    org = _org_param(request)
    start, end = _day(p.get("from")), _day(p.get("to"), True)
    dated = start is not None or end is not None
    # the digest's time a list's further pages keep (a past unix time); anything else is ignored
    raw_at = p.get("at") or ""
    at = int(raw_at) if raw_at.isdigit() and len(raw_at) <= 12 and 0 < int(raw_at) <= time.time() else None
    page_no = {name: _page_no(request, name + "_page") for name, _s in CHANGE_LISTS}
    offsets = {s: (page_no[name] - 1) * CHANGES_SHOWN for name, sections in CHANGE_LISTS for s in sections}
    interval = request.app.state.settings.change_digest_interval
    got = None
    try:
        if not dated and p.get("live") != "1" and interval > 0:
            # the digest's view while it is fresh (or, ?at=, the one made then), up to the pages it keeps
            got = change_digest.read(request.app.state.engine, user["scope"], org, CHANGES_SHOWN, 2 * interval,
                                     offsets=offsets, at=at)
        if got is None and at is not None and not dated:
            start, end = at - change_digest.WINDOW, at
        if got is None:
            with request.app.state.fold_slots.held():  # a fold: a few at once per worker (store/slots.py)
                got = change_summary.summary(request.app.state.engine, user["scope"], org, start, end, CHANGES_SHOWN,
                                             offsets)
    except ApiError as exc:
        if exc.status not in (400, 422, 503):
            raise
        busy = exc.status == 503
        resp = render(request, "changes.html", status=exc.status, user=user, got=None, org=org, busy=busy,
                      error=t("server.changes_busy", lang_of(request)) if busy else exc.message,
                      export_qs="", day_from=p.get("from") or "", day_to=p.get("to") or "")
        resp.headers.update(exc.headers or {})
        return resp
    day = lambda v: time.strftime("%Y-%m-%d", time.gmtime(v))  # noqa: E731
    export_qs = urlencode([(k, v) for k, v in (("org", org), ("from", day(got["from"])), ("to", day(got["to"]))) if v])
    # a list's next pages keep the window of the page they come from (the digest's: ?at=)
    keep = [("at", str(got["as_of"]))] if got.get("as_of") else []
    pagers = {name: pager(request, max(got["counts"][s] for s in sections), page_no[name], CHANGES_SHOWN,
                          name + "_page", "list-" + name, keep) for name, sections in CHANGE_LISTS}
    live_qs = urlencode([(k, v) for k, v in (("org", org), ("live", "1")) if v])
    return render(request, "changes.html", user=user, got=got, org=org, error=None, export_qs=export_qs,
                  day_from=day(got["from"]), day_to=day(got["to"]), pagers=pagers, live_qs=live_qs,
                  digest_minutes=max(1, interval // 60))


# --- administration (admin only) --------------------------------------------------------------------
def token_state(tk, t_now=None):
    t_now = int(time.time()) if t_now is None else t_now
    if tk.get("revoked_at") is not None:
        return "revoked"
    return "used_up" if tk["uses"] >= tk["max_uses"] else "expired" if tk["expires_at"] < t_now else "active"


def _admin_page(request, user, status=200, **ctx):
    engine = request.app.state.engine
    t_now = int(time.time())
    tokens = [dict(tk, state=token_state(tk, t_now)) for tk in accounts.list_tokens(engine, scope=user["scope"])]
    locks = accounts.login_locks(engine)
    users = [dict(u, locked_until=locks.get(u["username"].lower())) for u in accounts.list_users(engine, scope=user["scope"])]
    ctx.setdefault("form", {})
    done = request.query_params.get("done")
    if done in USER_ACTIONS + ("revoke",) and status == 200:
        ctx["done"] = t("server.done." + done, lang_of(request), who=(request.query_params.get("who") or "")[:64])
    return render(request, "admin.html", status=status, user=user, tokens=tokens, users=users,
                  server_url="%s://%s" % (request.url.scheme, request.url.netloc), **ctx)


@router.get("/admin")
def admin_page(request: Request):
    return _admin_page(request, page_user(request, ADMINS), error=None, new_token=None)


@router.post("/admin/tokens")
def admin_token_create(request: Request, csrf_token: str = Form("", max_length=64), org: str = Form("", max_length=512),
                       uses: str = Form("1", max_length=8), expires: str = Form("7d", max_length=16),
                       note: str = Form("", max_length=255)):
    user = page_user(request, ADMINS)
    check_csrf(request, user, csrf_token)
    form = {"org": org, "uses": uses, "expires": expires, "note": note}
    try:
        tok = accounts.create_token(request.app.state.engine, org, uses=int(uses) if uses.isdigit() else -1,
                                 expires_in=parse_duration(expires), actor=user["username"], note=note or None,
                                 ip=client_ip(request), scope=user["scope"])
    except (ApiError, ValueError) as exc:
        message = exc.message if isinstance(exc, ApiError) else str(exc)
        return _admin_page(request, user, status=400, error=message, new_token=None, form=form)
    return _admin_page(request, user, status=201, error=None, new_token=tok)


@router.post("/admin/users")
def admin_user_create(request: Request, csrf_token: str = Form("", max_length=64),
                      username: str = Form("", max_length=64), role: str = Form("", max_length=16),
                      password: str = Form("", max_length=1024), orgs: str = Form("", max_length=4000)):
    user = page_user(request, ADMINS)
    check_csrf(request, user, csrf_token)
    try:
        accounts.add_user(request.app.state.engine, username, password, role, actor=user["username"], ip=client_ip(request),
                          scope=user["scope"], orgs=[o for o in orgs.split() if o] or None)
    except ApiError as exc:
        if exc.status not in (400, 403, 409):
            raise
        return _admin_page(request, user, status=exc.status, error=_error_text(exc, lang_of(request)), new_token=None,
                           form={"username": username, "role": role, "orgs": orgs})
    return RedirectResponse("/admin", status_code=303)


# account and token life cycle: a button in the table opens a confirmation page (GET, changes nothing)
# that says what the action does to whom; its form (POST, CSRF token) acts through the same access-layer
# functions as the API and the command line, which apply the admin's scope and write the audit log.
# One pair of routes per action (not an {action} parameter), so the route sweep of tests/server/test_scope.py
# calls each of them.
USER_ACTIONS = ("disable", "enable", "password", "logout", "unlock", "delete")


def _error_text(exc, lang):
    """A refused action's message in the page's language (the API's English message otherwise)."""
    key = "server.err." + exc.code
    text = t(key, lang)
    return exc.message if text == key else text


def _confirm_page(request, user, kind, action, target, status=200, error=None):
    return render(request, "admin_confirm.html", status=status, user=user, kind=kind, action=action, target=target,
                  error=error, is_self=kind == "user" and target["username"] == user["username"])


def _user_confirm(request, username, action):
    user = page_user(request, ADMINS)
    target = accounts.user_summary(request.app.state.engine, username, user["scope"])
    return _confirm_page(request, user, "user", action, target)


def _user_act(request, username, action, csrf_token, password, password2):
    user = page_user(request, ADMINS)
    check_csrf(request, user, csrf_token)
    engine, ip = request.app.state.engine, client_ip(request)
    who = dict(actor=user["username"], ip=ip, scope=user["scope"])
    try:
        if action == "password":
            if password != password2:
                raise ApiError(400, "password_mismatch", "the two passwords differ")
            accounts.reset_password(engine, username, password, **who)
        elif action in ("disable", "enable"):
            accounts.set_disabled(engine, username, action == "disable", **who)
        elif action == "logout":
            accounts.end_sessions(engine, username, **who)
        elif action == "unlock":
            accounts.unlock_login(engine, username, **who)
        else:
            accounts.delete_user(engine, username, **who)
    except ApiError as exc:
        if exc.status not in (400, 409):
            raise
        target = accounts.user_summary(engine, username, user["scope"])
        return _confirm_page(request, user, "user", action, target, status=exc.status,
                             error=_error_text(exc, lang_of(request)))
    return RedirectResponse("/admin?" + urlencode({"done": action, "who": username}), status_code=303)


def _add_user_action_routes(action):
    def confirm(request: Request, username: str = Path(..., max_length=64)):
        return _user_confirm(request, username, action)

    def act(request: Request, username: str = Path(..., max_length=64), csrf_token: str = Form("", max_length=64),
            password: str = Form("", max_length=1024), password2: str = Form("", max_length=1024)):
        return _user_act(request, username, action, csrf_token, password, password2)
    confirm.__name__, act.__name__ = "admin_user_%s_confirm" % action, "admin_user_%s" % action
    router.add_api_route("/admin/users/{username}/%s" % action, confirm, methods=["GET"])
    router.add_api_route("/admin/users/{username}/%s" % action, act, methods=["POST"])


for _action in USER_ACTIONS:
    _add_user_action_routes(_action)


@router.get("/admin/tokens/{token_id}/revoke")
def admin_token_confirm(request: Request, token_id: int = Path(..., ge=1, le=2**31 - 1)):
    user = page_user(request, ADMINS)
    target = accounts.get_token(request.app.state.engine, token_id, scope=user["scope"])
    return _confirm_page(request, user, "token", "revoke", dict(target, state=token_state(target)))


@router.post("/admin/tokens/{token_id}/revoke")
def admin_token_revoke(request: Request, token_id: int = Path(..., ge=1, le=2**31 - 1),
                       csrf_token: str = Form("", max_length=64)):
    user = page_user(request, ADMINS)
    check_csrf(request, user, csrf_token)
    accounts.revoke_token(request.app.state.engine, token_id, user["username"], client_ip(request), scope=user["scope"])
    return RedirectResponse("/admin?" + urlencode({"done": "revoke", "who": "#%d" % token_id}), status_code=303)


# --- air-gap transfer bundles (fleet-wide admins; the same import as `xcscan server import`) ---------
RECEIPT_ID = re.compile(r"^[0-9a-f]{32}$")
_IMPORTING = threading.Lock()  # one bundle import at a time per worker (it is held in memory)


class _TooLarge(Exception):
    pass


def _transfer_user(request):
    user = page_user(request, ADMINS)
    if not user["scope"].is_global:
        # a bundle may carry any department's hosts and enrollments: importing it is a fleet-wide act
        raise forbidden("forbidden", t("server.transfer_global_only", lang_of(request)))
    return user


def _size_text(n):
    return "%d MiB" % (n // (1024 * 1024)) if n >= 1024 * 1024 else "%d KiB" % max(1, n // 1024)


def _receipts_dir(settings):
    path = settings.path("receipts")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


@router.get("/admin/transfer")
def admin_transfer_page(request: Request):
    user = _transfer_user(request)
    return render(request, "admin_transfer.html", user=user, receipt=None, receipt_id=None, error=None,
                  limit=_size_text(request.app.state.settings.max_bundle_upload))


@router.post("/admin/transfer")
async def admin_transfer_upload(request: Request):
    """Upload a bundle. The admin is checked before a byte of the body is read; a declared size over
    ``max_bundle_upload`` is refused at once and an undeclared one as soon as it passes the limit
    (the GuardMiddleware leaves this path's body to this route); then the CSRF token, then the import."""
    from scanner.agent.transfer import TransferError
    from scanner.server.intake.transfer import import_bundle
    user = _transfer_user(request)
    settings = request.app.state.settings
    limit = settings.max_bundle_upload
    lang = lang_of(request)

    def page(status, error=None, receipt=None, receipt_id=None):
        return render(request, "admin_transfer.html", status=status, user=user, receipt=receipt, receipt_id=receipt_id,
                      error=error, limit=_size_text(limit))
    too_large = t("server.transfer_too_large", lang, size=_size_text(limit))
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or not declared.isascii()):
        return page(400, t("server.transfer_bad_upload", lang))
    if declared is not None and int(declared) > limit:
        return page(413, too_large)
    received = [0]
    receive = request.receive

    async def counted():
        message = await receive()
        if message["type"] == "http.request":
            received[0] += len(message.get("body", b""))
            if received[0] > limit:
                raise _TooLarge()
        return message
    upload = Request(request.scope, counted)
    try:
        form = await upload.form(max_files=1, max_fields=4, max_part_size=4096)
    except _TooLarge:
        return page(413, too_large)
    except Exception:  # noqa: BLE001 - a malformed multipart body (starlette raises HTTPException or its own)
        return page(400, t("server.transfer_bad_upload", lang))
    try:
        check_csrf(request, user, form.get("csrf_token") if isinstance(form.get("csrf_token"), str) else "")
        bundle = form.get("bundle")
        if bundle is None or isinstance(bundle, str) or not bundle.filename:
            return page(400, t("server.transfer_no_file", lang))
        if not _IMPORTING.acquire(blocking=False):
            return page(503, t("server.transfer_busy", lang))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=".xcb", dir=settings.data_dir)
            try:
                with os.fdopen(fd, "wb") as out:
                    await run_in_threadpool(shutil.copyfileobj, bundle.file, out, 1024 * 1024)
                receipt = await run_in_threadpool(import_bundle, request.app.state.engine, settings, tmp,
                                                  user["username"], client_ip(request), 2 * limit)
            finally:
                os.unlink(tmp)
        finally:
            _IMPORTING.release()
    except TransferError as exc:
        return page(400, t("server.transfer_refused", lang, why=exc.message))
    finally:
        await form.close()
    receipt_id = uuid.uuid4().hex
    path = os.path.join(_receipts_dir(settings), receipt_id + ".json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(receipt, fh, indent=1, ensure_ascii=False)
    return page(200, receipt=receipt, receipt_id=receipt_id)


@router.get("/admin/transfer/receipts/{name}")
def admin_transfer_receipt(request: Request, name: str = Path(..., max_length=64)):
    """The receipt of an upload, to carry back to the isolated side (`xcscan agent confirm RECEIPT`)."""
    _transfer_user(request)
    receipt_id = name[:-5] if name.endswith(".json") else name
    path = os.path.join(_receipts_dir(request.app.state.settings), receipt_id + ".json")
    if not RECEIPT_ID.match(receipt_id) or not os.path.isfile(path):
        raise not_found(t("server.not_found", lang_of(request)))
    with open(path, "rb") as fh:
        data = fh.read()
    return Response(data, media_type="application/json",
                    headers={"Content-Disposition": 'attachment; filename="receipt-%s.json"' % receipt_id})


@router.get("/audit")
def audit_page(request: Request):
    user = page_user(request, AUDIT_READERS)
    return render(request, "audit.html", user=user, entries=queries.audit_entries(request.app.state.engine, user["scope"], 500,
                                                                                  actor=user["username"]))
