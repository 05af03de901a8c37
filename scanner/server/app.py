"""The FastAPI application: API under /api/v1, server-rendered pages under /."""
from __future__ import annotations

import logging
import os
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from scanner.server.errors import ApiError
from scanner.server.store import jsondoc

log = logging.getLogger("xcscan.server")

CSP = ("default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


def _wants_json(request):
    return request.url.path.startswith("/api/")


def _error_response(request, status, code, message, headers=None, extra=None):
    if _wants_json(request):
        body = {"error": code, "message": message}
        if extra:
            body.update(extra)
        return JSONResponse(body, status_code=status, headers=headers)
    from scanner.server.web.pages import error_page
    return error_page(request, status, message, headers=headers)


def _validation_summary(errors):
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append("%s: %s" % (loc or "body", err.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


class GuardMiddleware(object):
    """Pure ASGI middleware: security headers on every response, the count of stored rows a view
    skipped because they cannot be read (X-Xcscan-Skipped-Rows), and any unhandled exception
    answered with the generic 500 here (so the keep-alive connection stays usable)."""

    def __init__(self, app, on_error, max_request_body=64 * 1024):
        self.app = app
        self.on_error = on_error
        self.max_request_body = max_request_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = refuse_parameters(scope)
        if refusal is None and scope["path"] not in (REPORTS_PATH, TRANSFER_UPLOAD_PATH):
            # every body but a report's (intake) or a bundle upload's (its route checks the admin first) is
            # small: read it here, bounded, before anything parses it
            refusal, receive = await read_small_body(scope, receive, self.max_request_body)
        if refusal is not None:
            status, code, message = refusal
            response = _error_response(Request(scope), status, code, message)
            return await self._with_headers(scope, receive, send, response)
        await self._with_headers(scope, receive, send, None)

    async def _with_headers(self, scope, receive, send, response):
        from starlette.datastructures import MutableHeaders
        is_api = scope["path"].startswith("/api/")
        https = scope.get("scheme") == "https"
        started = False
        skipped = jsondoc.start_counting()

        async def guarded_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Frame-Options", "DENY")
                if not is_api:
                    headers.setdefault("Content-Security-Policy", CSP)
                # pages and API answers carry sessions, enrollment tokens, evidence and exports:
                # no cache (browser or proxy) keeps a copy
                headers.setdefault("Cache-Control", "no-store")
                if https:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
                if skipped.rows:
                    headers["X-Xcscan-Skipped-Rows"] = str(skipped.rows)
            await send(message)
        if response is not None:
            return await response(scope, receive, guarded_send)
        try:
            await self.app(scope, receive, guarded_send)
        except Exception as exc:  # noqa: BLE001 - answered here, never shown to the client
            if started:
                raise
            response = self.on_error(Request(scope), exc)
            await response(scope, receive, guarded_send)


REPORTS_PATH = "/api/v1/reports"
TRANSFER_UPLOAD_PATH = "/admin/transfer"  # scanner/server/web/pages.py admin_transfer_upload
ASCII_DIGITS = re.compile(r"^[0-9]{1,18}$")


def refuse_parameters(scope):
    """(status, code, message) for a request whose path or query carries a NUL character (no
    database stores one; PostgreSQL refuses them), else None."""
    if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"") or b"\x00" in scope.get("query_string", b""):
        return 400, "bad_parameter", "NUL characters are not accepted in the path or query"
    return None


async def read_small_body(scope, receive, limit):
    """Read the whole body, refusing (413) one declared or found larger than ``limit`` bytes before
    reading on; return (refusal or None, a receive that replays the body)."""
    from starlette.datastructures import Headers
    declared = Headers(scope=scope).get("content-length")
    if declared is not None:
        if not ASCII_DIGITS.match(declared.strip()):
            return (400, "bad_request", "Content-Length must be ASCII digits"), receive
        if int(declared) > limit:
            return (413, "too_large", "request body exceeds the %d byte limit of this route" % limit), receive
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break  # disconnected
        size += len(message.get("body", b""))
        if size > limit:
            return (413, "too_large", "request body exceeds the %d byte limit of this route" % limit), receive
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    if b"\x00" in body or b"%00" in body or b"\\u0000" in body:
        return (400, "bad_parameter", "NUL characters are not accepted in a request body"), receive
    replayed = [False]

    async def replay():
        if not replayed[0]:
            replayed[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return None, replay


def create_app(settings, engine=None):
    from scanner.server.store.db import make_engine
    from scanner.server.web import api
    from scanner.server.web import fixes, pages

    import contextlib
    from scanner.server.maintenance import Maintenance

    @contextlib.asynccontextmanager
    async def lifespan(app):
        # background work (the retention prune), one node per run: scanner/server/maintenance.py
        maintenance = app.state.maintenance = Maintenance(app.state.engine, settings)
        maintenance.start()
        try:
            yield
        finally:
            maintenance.stop()

    app = FastAPI(title="xcscan aggregator", version="1", openapi_url="/api/v1/openapi.json",
                  docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Signed xcscan reports in; fleet localization and MLPS compliance out. "
                              "Protocol: docs/api.md.")
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.db_url, settings.pool_size)
    from scanner.server.intake.ingest import Intake
    app.state.intake = Intake(app.state.engine, settings)
    from scanner.server.store.slots import EXPORTS, ROLLUPS, slots
    app.state.fold_slots = slots(settings.max_concurrent_folds, settings.fold_wait)
    app.state.export_slots = slots(settings.max_concurrent_exports, 0, EXPORTS)
    app.state.rollup_slots = slots(settings.max_concurrent_folds, settings.fold_wait, ROLLUPS)
    from scanner.server.access import directory
    app.state.directory = directory.from_settings(settings)  # None: local accounts only
    from scanner.server.access import oidc
    app.state.oidc = oidc.from_settings(settings)  # None: no single sign-on
    from scanner.server.web.metrics import Metrics, make_router
    app.state.metrics = Metrics(settings, app.state.engine, app.state.intake)

    from scanner.server.store.audit import SecurityEvents
    app.state.security_events = SecurityEvents(settings.audit_events_per_minute)
    refusals = {"/api/v1/reports": "report.refused", "/api/v1/enroll": "enroll.refused",
                "/api/v1/enroll/agentless": "enroll.refused"}

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        if request.url.path == "/api/v1/reports" and request.method == "POST":
            app.state.metrics.refused(exc.code)
        action = refusals.get(request.url.path) if request.method == "POST" else None
        if action and 400 <= exc.status < 500:
            # forged signatures, stale timestamps, unknown hosts or tokens ...: audited, rate-limited
            detail = {"host": str(request.headers.get("x-xcscan-host", ""))[:64]} if action == "report.refused" else None
            from fastapi.concurrency import run_in_threadpool
            from scanner.server.access.auth import client_ip
            try:
                await run_in_threadpool(app.state.security_events.record, app.state.engine, action, exc.code,
                                        client_ip(request), detail)
            except Exception:  # noqa: BLE001 - the refusal is answered even when the audit write fails
                log.exception("could not audit %s", action)
        return _error_response(request, exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        detail = [{"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg")), "type": str(e.get("type"))}
                  for e in errors[:20]]
        return _error_response(request, 422, "invalid_request", _validation_summary(errors), extra={"detail": detail})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "http_%d" % exc.status_code)
        message = exc.detail if isinstance(exc.detail, str) else code
        return _error_response(request, exc.status_code, code, message, getattr(exc, "headers", None))

    def _internal_response(request, exc):
        # Logged on the server with the traceback; the client learns nothing about internals.
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error_response(request, 500, "internal", "internal server error; the administrator can find "
                               "details in the server log")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):  # backstop; the middleware below answers first
        return _internal_response(request, exc)

    app.add_middleware(GuardMiddleware, on_error=_internal_response, max_request_body=settings.max_request_body)
    app.include_router(api.router)
    app.include_router(make_router())   # before the pages: their /{...} routes would take /metrics
    app.include_router(fixes.router)
    from scanner.server.web import integrations
    app.include_router(integrations.api)
    app.include_router(integrations.pages)
    app.include_router(pages.router)
    tune_gc()
    return app


def tune_gc():
    """A report parses into tens of thousands of short-lived objects; with the default thresholds
    the collector runs every few hundred allocations and its older generations rescan every
    long-lived object of the application each time. Move what exists at start-up out of the
    collector's way and collect the young generation less often (measured: bench/server_load.py,
    real 430 KB reports, about a fifth less CPU per report)."""
    import gc
    gc.collect()
    gc.freeze()
    gc.set_threshold(50000, 20, 50)


def app_from_env():
    """Uvicorn factory for multi-worker serving (settings passed through the environment)."""
    from scanner.server.settings import load_settings
    settings = load_settings(os.environ["XCSCAN_SERVER_DIR"], db_url=os.environ.get("XCSCAN_SERVER_DB") or None)
    return create_app(settings)
