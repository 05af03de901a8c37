"""Who is asking: sessions (cookie for the web UI, bearer token for API clients), roles, CSRF.

Roles: admin (everything), officer (review, waivers, exports), auditor (read-only, audit log),
assessor (read-only, records verdicts for manual GB/T 28448 items).
"""
from __future__ import annotations

from fastapi import Request

from scanner.server.access import accounts, apikeys
from scanner.server.errors import ApiError, forbidden

COOKIE = "xcscan_session"
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
READERS = ("admin", "officer", "auditor", "assessor")
ASSESSORS = ("admin", "assessor")
WAIVER_EDITORS = ("admin", "officer")
ADMINS = ("admin",)
AUDIT_READERS = ("admin", "auditor")


class LoginRequired(ApiError):
    def __init__(self):
        ApiError.__init__(self, 401, "login_required", "log in first (POST /api/v1/session, then "
                          "Authorization: Bearer <token>)")


def client_ip(request):
    return request.client.host if request.client else None


def session_token(request):
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), "bearer"
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return cookie, "cookie"
    return None, None


def current_user(request):
    """The logged-in user (dict) or None; cached on the request."""
    if not hasattr(request.state, "user"):
        token, via = session_token(request)
        idle = request.app.state.settings.session_idle
        if token and via == "bearer" and token.startswith(apikeys.PREFIX):
            user, via = apikeys.key_user(request.app.state.engine, token), "apikey"
        else:
            user = accounts.session_user(request.app.state.engine, token, idle=idle) if token else None
        if user is not None:
            user["via"] = via
        request.state.user = user
    return request.state.user


def require(*roles):
    """FastAPI dependency: a logged-in user with one of ``roles``; cookie writes need the CSRF header."""
    def dependency(request: Request):
        user = current_user(request)
        if user is None:
            raise LoginRequired()
        if user["role"] not in roles:
            raise forbidden("forbidden", "your role (%s) may not do this" % user["role"])
        if request.method in UNSAFE and user["via"] == "cookie" \
                and not accounts.csrf_ok(user, request.headers.get("x-csrf-token")):
            raise forbidden("csrf", "missing or wrong CSRF token")
        if request.method in UNSAFE and user["via"] == "apikey":
            apikeys.audit_write(request.app.state.engine, user, request.method, request.url.path, client_ip(request))
        return user
    return dependency
