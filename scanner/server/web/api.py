"""API v1 (JSON). Agents: enroll, reports. People: session, fleet queries, waivers, exports, admin."""
from __future__ import annotations

import csv
import io
from typing import List, Optional, Union

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from scanner.server.intake import ingest
from scanner.server.store import localization, queries, reports
from scanner.server.access import accounts
from scanner.server.workflow import assessments, waivers
from scanner.server.store import coverage as coverage_store
from scanner.server.access.auth import ASSESSORS, ADMINS, AUDIT_READERS, READERS, WAIVER_EDITORS, client_ip, require
from scanner.server.errors import bad_request
from scanner.server.store.audit import audit
from scanner.server.util import dumps, normalise_org, parse_duration

router = APIRouter(prefix="/api/v1")
ERRORS = {400: {"description": "bad request"}, 401: {"description": "not authenticated"},
          403: {"description": "forbidden"}, 404: {"description": "not found"}, 422: {"description": "invalid"}}

Str = lambda n: Field(..., max_length=n)  # noqa: E731


class EnrollIn(BaseModel):
    token: str = Field(..., max_length=256)
    hostname: str = Field(..., max_length=255)
    machine_id: Optional[str] = Field(None, max_length=128)
    public_key: str = Field(..., max_length=128)


class EnrollOut(BaseModel):
    host_id: str
    org: str
    server_time: int


class AgentlessEnrollOut(EnrollOut):
    station: str = Field(..., description="the scanning station's host id, whose key signs this host's reports")


class Ack(BaseModel):
    report_id: str
    host_id: str
    received_at: str
    status: str


class LoginIn(BaseModel):
    username: str = Field(..., max_length=64)
    password: str = Field(..., max_length=1024)


class WaiverIn(BaseModel):
    rule_id: str = Field(..., max_length=128)
    scope: str = Field(..., max_length=8, description="host | org | all (all: all of your org subtrees)")
    scope_value: Optional[str] = Field(None, max_length=512, description="host name or id, or org path")
    items: Optional[List[str]] = Field(None, max_length=200, description="only these item keys of the rule "
                                       "(one database instance, one account, one file); default: the whole rule")
    justification: str = Field(..., max_length=4000)
    approver: Optional[str] = Field(None, max_length=128, description="ignored: the approver is whoever approves")
    expires_at: int = Field(..., description="unix seconds")


class DecisionIn(BaseModel):
    note: Optional[str] = Field(None, max_length=4000)


class TokenIn(BaseModel):
    org: str = Field(..., max_length=512)
    uses: int = 1
    expires: str = Field("7d", max_length=16, description="e.g. 3600, 12h, 7d, 2w")
    note: Optional[str] = Field(None, max_length=255)


class UserIn(BaseModel):
    username: str = Field(..., max_length=64)
    password: str = Field(..., max_length=1024)
    role: str = Field(..., max_length=16)
    orgs: Optional[List[str]] = Field(None, max_length=50, description="org subtrees the user sees "
                                      "(default: the creator's own); each inside the creator's")


def _org(org):
    if org is None or org == "":
        return None
    path = normalise_org(org)
    if path is None:
        raise bad_request("bad_org", "org must be a path like /gov/finance")
    return path


def _limit(limit, top=10000):
    return max(1, min(int(limit), top))


# --- agents -----------------------------------------------------------------------------------------
@router.post("/enroll", status_code=201, response_model=EnrollOut, responses=ERRORS, tags=["agent"])
def enroll(body: EnrollIn, request: Request):
    return ingest.enroll(request.app.state.engine, body.token, body.hostname, body.machine_id, body.public_key,
                         ip=client_ip(request))


@router.post("/enroll/agentless", status_code=201, response_model=AgentlessEnrollOut, responses=ERRORS, tags=["agent"],
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                 "type": "object", "required": ["token", "hostname", "machine_id"],
                 "properties": {"token": {"type": "string"}, "hostname": {"type": "string"},
                                "machine_id": {"type": "string"}}}}}}})
async def enroll_agentless(request: Request):
    """A scanning station enrolls a host it scans over SSH (no agent there) under itself: signed with the
    station's key like a report (X-Xcscan-Host = the station, context ``xcscan-agentless-enroll/1``)."""
    h = request.headers
    body = await request.body()  # small: the guard middleware has bounded it already
    return await run_in_threadpool(ingest.enroll_agentless, request.app.state.engine, request.app.state.settings,
                                   h.get("x-xcscan-host"), h.get("x-xcscan-timestamp"), h.get("x-xcscan-signature"),
                                   body, client_ip(request))


REPORT_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "description": "an xcscan.report/1 document (optionally Content-Encoding: gzip)",
    "required": ["schema", "report_id", "host", "facts", "inventory"],
    "properties": {"schema": {"type": "string", "enum": ["xcscan.report/1"]}, "report_id": {"type": "string", "format": "uuid"},
                   "host": {"type": "object"}, "facts": {"type": "object"}, "inventory": {"type": "object"}}}}}},
    "parameters": [{"name": n, "in": "header", "required": True, "schema": {"type": "string"}}
                   for n in ("X-Xcscan-Host", "X-Xcscan-Timestamp", "X-Xcscan-Signature")]}


@router.post("/reports", response_model=Ack, responses={**ERRORS, 409: {"description": "report id of another host"},
                                              413: {"description": "too large"}},
             openapi_extra=REPORT_BODY, tags=["agent"])
async def submit_report(request: Request):
    settings = request.app.state.settings
    intake = request.app.state.intake
    h = request.headers
    # who is sending comes first: an unknown or malformed sender is refused before its body is read
    # (a host whose key this process holds: decided here, without a thread; else the database is asked)
    headers = (h.get("x-xcscan-host"), h.get("x-xcscan-timestamp"), h.get("x-xcscan-signature"))
    sender = intake.check_headers(*headers, cached_only=True)
    if sender is None:
        sender = await run_in_threadpool(intake.check_headers, *headers)
    limit = settings.max_body
    declared = h.get("content-length")
    if declared and declared.strip().isascii() and declared.strip().isdigit() and int(declared) > limit:
        raise ingest.too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ingest.too_large(limit)
        chunks.append(chunk)
    ack = await run_in_threadpool(intake.submit_body, sender, b"".join(chunks), h.get("content-encoding"))
    request.app.state.metrics.accepted()
    # the Ack as it is (four strings made here): no response-model validation and re-encoding per report
    return Response(dumps(ack).encode("utf-8"), media_type="application/json")


# --- sessions ---------------------------------------------------------------------------------------
@router.post("/session", responses={**ERRORS, 429: {"description": "too many failed logins; see Retry-After"}},
             tags=["session"])
def login(body: LoginIn, request: Request):
    settings = request.app.state.settings
    s = accounts.login(request.app.state.engine, body.username, body.password, settings.session_ttl,
                    ip=client_ip(request), policy=accounts.LoginPolicy(settings, request.app.state.security_events),
                    directory=request.app.state.directory)
    return s


@router.delete("/session", responses=ERRORS, tags=["session"])
def logout(request: Request, user=Depends(require(*READERS))):
    accounts.logout(request.app.state.engine, user)
    return {"status": "logged_out"}


# --- fleet ------------------------------------------------------------------------------------------
@router.get("/overview", responses=ERRORS, tags=["fleet"])
def overview(request: Request, org: Optional[str] = Query(None, max_length=512), user=Depends(require(*READERS))):
    return queries.overview(request.app.state.engine, user["scope"], _org(org))


TOTAL = {"X-Total-Count": {"description": "how many rows match the filters in all (the body is one page)",
                           "schema": {"type": "integer"}}}
PAGED = {**ERRORS, 200: {"description": "one page of the list", "headers": TOTAL}}


def _paged(response, page):
    response.headers["X-Total-Count"] = str(page.total)
    return list(page)


@router.get("/hosts", responses=PAGED, tags=["fleet"])
def hosts(request: Request, response: Response, org: Optional[str] = Query(None, max_length=512),
          q: Optional[str] = Query(None, max_length=255), profile: Optional[str] = Query(None, max_length=64),
          sort: Optional[str] = Query(None, max_length=16, description="org (default), hostname, last_seen, loc_rate, os"),
          desc: bool = Query(False), limit: int = Query(500, ge=1, le=10000), offset: int = Query(0, ge=0, le=10**9),
          retired: bool = Query(False, description="list the retired hosts instead"),
          user=Depends(require(*READERS))):
    return _paged(response, queries.list_hosts(request.app.state.engine, user["scope"], _org(org), q, limit, offset,
                                               retired=retired, profile=profile, sort=sort, desc=desc))


class RetireIn(BaseModel):
    reason: str = Field(..., max_length=255, description="why: decommissioned, key compromised, ...")


@router.post("/hosts/{host_id}/retire", responses={**ERRORS, 409: {"description": "already retired"}}, tags=["admin"])
def retire(host_id: str, body: RetireIn, request: Request, user=Depends(require(*ADMINS))):
    """Take a host out of the fleet: its reports are refused from now on; its history is kept."""
    from scanner.server.workflow.hosts import retire_host
    return retire_host(request.app.state.engine, host_id, body.reason, user["username"], client_ip(request),
                       scope=user["scope"])


@router.get("/hosts/{host_id}", responses=ERRORS, tags=["fleet"])
def host(host_id: str, request: Request, user=Depends(require(*READERS))):
    return queries.get_host(request.app.state.engine, user["scope"], host_id)


@router.get("/hosts/{host_id}/history", responses=ERRORS, tags=["fleet"])
def history(host_id: str, request: Request, limit: int = Query(200, ge=1, le=10000), user=Depends(require(*READERS))):
    return queries.host_history(request.app.state.engine, user["scope"], host_id, limit)


@router.get("/hosts/{host_id}/drift", responses=ERRORS, tags=["fleet"])
def drift(host_id: str, request: Request, a: str = Query(..., max_length=64), b: str = Query(..., max_length=64),
          user=Depends(require(*READERS))):
    return queries.drift(request.app.state.engine, user["scope"], host_id, a, b)


@router.get("/reports/{report_id}", responses=ERRORS, tags=["fleet"])
def report(report_id: str, request: Request, user=Depends(require(*READERS))):
    """The stored report document (re-evaluated if `xcscan server reevaluate` ran), audited as an export."""
    engine = request.app.state.engine
    row = queries.get_report(engine, user["scope"], report_id)
    doc = reports.readable_document(row)
    _audit(request, user, "export.report", report_id, {"host_id": row["host_id"]}, org=row["org_path"])
    return doc


@router.get("/findings", responses=PAGED, tags=["fleet"])
def findings(request: Request, response: Response, org: Optional[str] = Query(None, max_length=512),
             profile: Optional[str] = Query(None, max_length=64),
             rule: Optional[str] = Query(None, max_length=128), severity: Optional[List[str]] = Query(None),
             status: Optional[List[str]] = Query(None), category: Optional[str] = Query(None, max_length=32),
             host: Optional[str] = Query(None, max_length=64), q: Optional[str] = Query(None, max_length=255),
             sort: Optional[str] = Query(None, max_length=16, description="host (default), rule, severity, status"),
             desc: bool = Query(False), limit: int = Query(1000, ge=1, le=100000),
             offset: int = Query(0, ge=0, le=10**9), user=Depends(require(*READERS))):
    return _paged(response, queries.findings(request.app.state.engine, user["scope"], _org(org), profile, rule, severity,
                                             status, category, host, limit, offset, q=q, sort=sort, desc=desc))


@router.get("/summary/localization", responses=ERRORS, tags=["fleet"])
def localization_summary(request: Request, org: Optional[str] = Query(None, max_length=512), user=Depends(require(*READERS))):
    return queries.localization_summary(request.app.state.engine, user["scope"], _org(org))


@router.get("/summary/compliance", responses=ERRORS, tags=["fleet"])
def compliance_summary(request: Request, org: Optional[str] = Query(None, max_length=512),
                       profile: Optional[str] = Query(None, max_length=64), user=Depends(require(*READERS))):
    return queries.compliance_summary(request.app.state.engine, user["scope"], _org(org), profile)


@router.get("/orgs", responses=ERRORS, tags=["fleet"])
def orgs(request: Request, org: Optional[str] = Query(None, max_length=512), user=Depends(require(*READERS))):
    return queries.org_tree(request.app.state.engine, user["scope"], _org(org))


@router.get("/rules/{rule_id}/hosts", responses=PAGED, tags=["fleet"])
def rule_hosts(rule_id: str, request: Request, response: Response, status: Optional[List[str]] = Query(None),
               limit: int = Query(1000, ge=1, le=100000), offset: int = Query(0, ge=0, le=10**9),
               user=Depends(require(*READERS))):
    engine = request.app.state.engine
    return _paged(response, queries.rule_hosts(engine, user["scope"], rule_id, status, limit, offset,
                                               counts=queries.rule_status_counts(engine, user["scope"], rule_id)))


# --- waivers ----------------------------------------------------------------------------------------
@router.get("/waivers", responses=ERRORS, tags=["waivers"])
def list_waivers(request: Request, state: Optional[str] = Query(None, max_length=16,
                                                                description="requested | active | expired | rejected | revoked"),
                 user=Depends(require(*READERS))):
    return waivers.list_waivers(request.app.state.engine, scope=user["scope"], state=state)


@router.get("/waivers/{waiver_id}", responses=ERRORS, tags=["waivers"])
def get_waiver(request: Request, waiver_id: int = Path(..., ge=1, le=2**31 - 1), user=Depends(require(*READERS))):
    """One waiver with its history."""
    return waivers.get_waiver(request.app.state.engine, waiver_id, scope=user["scope"])


@router.post("/waivers", status_code=201, responses=ERRORS, tags=["waivers"])
def create_waiver(body: WaiverIn, request: Request, user=Depends(require(*WAIVER_EDITORS))):
    """Request a waiver; it applies once another user with approval rights approves it."""
    return waivers.request_waiver(request.app.state.engine, body.model_dump(), user["username"], client_ip(request),
                                  scope=user["scope"], role=user["role"],
                                  single_step=request.app.state.settings.waiver_single_step)


@router.post("/waivers/{waiver_id}/approve", responses={**ERRORS, 409: {"description": "not waiting for a decision"}},
             tags=["waivers"])
def approve_waiver(request: Request, body: Optional[DecisionIn] = None, waiver_id: int = Path(..., ge=1, le=2**31 - 1),
                   user=Depends(require(*waivers.APPROVER_ROLES))):
    return waivers.decide_waiver(request.app.state.engine, waiver_id, "approve", user["username"],
                                 body.note if body else None, client_ip(request), scope=user["scope"], role=user["role"],
                                 single_step=request.app.state.settings.waiver_single_step)


@router.post("/waivers/{waiver_id}/reject", responses={**ERRORS, 409: {"description": "not waiting for a decision"}},
             tags=["waivers"])
def reject_waiver(request: Request, body: Optional[DecisionIn] = None, waiver_id: int = Path(..., ge=1, le=2**31 - 1),
                  user=Depends(require(*waivers.APPROVER_ROLES))):
    return waivers.decide_waiver(request.app.state.engine, waiver_id, "reject", user["username"],
                                 body.note if body else None, client_ip(request), scope=user["scope"], role=user["role"],
                                 single_step=request.app.state.settings.waiver_single_step)


@router.post("/waivers/{waiver_id}/revoke", responses=ERRORS, tags=["waivers"])
def revoke_waiver(request: Request, waiver_id: int = Path(..., ge=1, le=2**31 - 1), user=Depends(require(*WAIVER_EDITORS))):
    return waivers.revoke_waiver(request.app.state.engine, waiver_id, user["username"], client_ip(request),
                                 scope=user["scope"])


# --- coverage and assessments ------------------------------------------------------------------------
class EvidenceIn(BaseModel):
    name: str = Field(..., max_length=255)
    data: str = Field(..., max_length=3 * 1024 * 1024, description="base64; PDF, PNG, JPEG or UTF-8 text, at most 2 MiB")


class AssessmentIn(BaseModel):
    level: str = Field("mlps-l3", max_length=32)
    item_id: str = Field(..., max_length=64)
    target_kind: str = Field(..., max_length=8, description="host | org")
    target: str = Field(..., max_length=512, description="host name or id, or org path")
    verdict: str = Field(..., max_length=16, description="conform | partial | nonconform | not_applicable")
    record: str = Field(..., max_length=8000, description="测评记录")
    valid_until: int = Field(..., description="unix seconds")
    files: Optional[List[EvidenceIn]] = Field(None, max_length=5)


@router.get("/coverage", responses=ERRORS, tags=["assessments"])
def coverage(request: Request, level: str = Query("mlps-l3", max_length=32), host: Optional[str] = Query(None, max_length=64),
             org: Optional[str] = Query(None, max_length=512), user=Depends(require(*READERS))):
    """Every GB/T 28448 item of ``level`` for one host or an org subtree: automated, recorded or open."""
    if host:
        return coverage_store.coverage(request.app.state.engine, user["scope"], level, host_id=host)
    with request.app.state.rollup_slots.held():  # a subtree's every host: a few at once per worker (store/slots.py)
        return coverage_store.coverage(request.app.state.engine, user["scope"], level, org=_org(org))


@router.get("/assessments", responses=ERRORS, tags=["assessments"])
def list_assessments(request: Request, target: Optional[str] = Query(None, max_length=512), user=Depends(require(*READERS))):
    return assessments.list_assessments(request.app.state.engine, scope=user["scope"], target=target)


@router.post("/assessments", status_code=201, responses={**ERRORS, 413: {"description": "file too large"}},
             tags=["assessments"])
def record_assessment(body: AssessmentIn, request: Request, user=Depends(require(*ASSESSORS))):
    return assessments.record_assessment(request.app.state.engine, body.model_dump(), user["username"], client_ip(request),
                                         scope=user["scope"], role=user["role"])


@router.get("/assessments/{assessment_id}", responses=ERRORS, tags=["assessments"])
def get_assessment(request: Request, assessment_id: int = Path(..., ge=1, le=2**31 - 1), user=Depends(require(*READERS))):
    return assessments.get_assessment(request.app.state.engine, assessment_id, scope=user["scope"])


@router.get("/assessments/{assessment_id}/files/{file_id}", responses=ERRORS, tags=["assessments"])
def assessment_file(request: Request, assessment_id: int = Path(..., ge=1, le=2**31 - 1),
                    file_id: int = Path(..., ge=1, le=2**31 - 1), user=Depends(require(*READERS))):
    name, kind, data = assessments.evidence_file(request.app.state.engine, assessment_id, file_id, scope=user["scope"])
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:100] or "evidence"
    return Response(data, media_type=kind, headers={"Content-Disposition": 'attachment; filename="%s"' % safe})


@router.post("/assessments/{assessment_id}/revoke", responses={**ERRORS, 409: {"description": "already revoked"}},
             tags=["assessments"])
def revoke_assessment(request: Request, assessment_id: int = Path(..., ge=1, le=2**31 - 1), user=Depends(require(*ASSESSORS))):
    return assessments.revoke_assessment(request.app.state.engine, assessment_id, user["username"], client_ip(request),
                                         scope=user["scope"], role=user["role"])


class FrameIn(BaseModel):
    """The limits here only bound the request; the fields are checked by scanner/assessment_info.check."""
    org: str = Field(..., max_length=512, description="the org unit the frame is for, e.g. /gov/finance")
    organization: Optional[str] = Field(None, max_length=1000, description="被测单位")
    system: Optional[str] = Field(None, max_length=1000, description="系统名称")
    record_number: Optional[str] = Field(None, max_length=1000, description="备案号")
    report_number: Optional[str] = Field(None, max_length=1000, description="报告编号")
    level: Optional[Union[int, str]] = Field(None, description="安全保护等级 1-4")
    assessors: Optional[Union[str, List[str]]] = Field(None, description="测评人员 (1 to 20 names)")
    assessed_on: Optional[str] = Field(None, max_length=1000, description="测评时间: 2026-12-05 or 2026-12-01 至 2026-12-05")
    timezone: Optional[str] = Field(None, max_length=1000, description="+08:00 (default) or a zone name such as Asia/Shanghai")


@router.get("/frames", responses=ERRORS, tags=["assessments"])
def get_frame(request: Request, org: Optional[str] = Query(None, max_length=512), user=Depends(require(*READERS))):
    """The working paper's frame of an org unit: the one set there (own) and the one that applies
    (effective: the nearest up the org tree). It replaces the agent's --assessment fields field by field."""
    from scanner.server.workflow import frames
    return frames.get_frame(request.app.state.engine, org, scope=user["scope"])


@router.put("/frames", responses=ERRORS, tags=["assessments"])
def set_frame(body: FrameIn, request: Request, user=Depends(require(*READERS))):
    """Set the frame of an org unit (every field empty: remove it); checked like --assessment FILE.
    Assessors and admins inside their org subtrees (outside: 404; another role inside: 403)."""
    from scanner.server.workflow import frames
    data = body.model_dump()
    org = data.pop("org")
    return frames.set_frame(request.app.state.engine, org, data, user["username"], client_ip(request),
                            scope=user["scope"], role=user["role"])


# --- exports ----------------------------------------------------------------------------------------
FINDING_FIELDS = ["host_id", "hostname", "org_path", "profile", "rule_id", "title_en", "title_zh", "category",
                  "severity", "status", "reported_status", "actual", "expected", "waiver_id"]
INVENTORY_FIELDS = ["host_id", "hostname", "org_path", "category", "product_id", "name_en", "name_zh", "vendor_en",
                    "origin", "version"]


def _cell(value):
    from scanner.server.web.export import cell
    return cell(value)


def to_csv(rows, fields):
    """CSV of a few rows held in memory (rows: dicts)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(fields)
    for r in rows:
        w.writerow([_cell(r.get(f)) for f in fields])
    return "\ufeff" + buf.getvalue()  # BOM: Excel opens UTF-8 Chinese text correctly


def _audit(request, user, action, target, detail, org=None):
    from scanner.server.store import db
    with db.write_tx(request.app.state.engine) as conn:
        audit(conn, user["username"], action, target, detail, client_ip(request), org=org)


def _export(request, user, kind, query, fields, fmt, filters, lang, offset, limit, row_map=None):
    """Stream every row of ``query`` (from ``offset``, at most ``limit``) as CSV or JSON; the audit
    entry, written when the stream ends, says how many rows went out and whether it finished.
    ``row_map``: each row made into a tuple of ``fields`` in Python (else the rows are the query's
    columns, and PostgreSQL writes the CSV itself)."""
    from scanner.server.web import export
    if fmt not in ("csv", "json"):
        raise bad_request("bad_format", "format must be csv or json")
    if lang not in (None, "zh", "en"):
        raise bad_request("bad_lang", "lang must be zh or en")
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    engine = request.app.state.engine
    columns = list(fields) if row_map is not None else [c.name for c in query.selected_columns]
    ip, actor = client_ip(request), user["username"]
    audit_org = filters.get("org") or user["scope"].root()
    counter = {"rows": 0}

    def body():
        from scanner.server.store import db
        complete = False
        try:
            yield b""  # entered before the response starts (below): its end is audited however it comes
            if fmt == "csv" and row_map is None and not db.is_sqlite(engine):  # PostgreSQL writes them (csvcopy.py)
                yield export.csv_header(fields, lang).encode("utf-8")
                for chunk in export.pg_csv_rows(engine, query, fields, counter):
                    yield chunk
            else:
                rows = queries.stream(engine, query)
                if row_map is not None:
                    rows = map(row_map, rows)
                chunks = export.csv_chunks(rows, columns, fields, lang, counter) if fmt == "csv" \
                    else export.json_chunks(rows, columns, counter)
                for chunk in chunks:
                    yield chunk.encode("utf-8")
            complete = True
        finally:
            with db.write_tx(engine) as conn:
                audit(conn, actor, "export." + kind, fmt, dict(filters, offset=offset, limit=limit,
                                                               rows=counter["rows"], complete=complete), ip,
                      org=audit_org)
    name = "xcscan-%s.%s" % (kind, fmt)
    headers = {"Content-Disposition": 'attachment; filename="%s"' % name}
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    # a slot of the worker's few until the stream is read to its end, fails or its client is gone (store/slots.py)
    held = request.app.state.export_slots.hold(body())
    # the stream entered (its first, empty chunk taken; no database work yet): a response dropped before its
    # first chunk (the client gone before the headers) still closes it, and the ``finally`` writes the audit entry
    next(held)
    return export.ClosingStream(held, request.app.state.settings.export_send_timeout, media_type=media,
                                headers=headers)


EXPORT_PAGING = dict(
    offset=Query(0, ge=0, le=10**9, description="skip this many rows (resume a large export)"),
    limit=Query(None, ge=1, le=10**9, description="at most this many rows (default: all)"),
    lang=Query(None, max_length=2, description="CSV header in zh or en, each name followed by its code"))


@router.get("/export/findings", responses=ERRORS, tags=["exports"])
def export_findings(request: Request, format: str = Query("csv", max_length=8), org: Optional[str] = Query(None, max_length=512),
                    profile: Optional[str] = Query(None, max_length=64), rule: Optional[str] = Query(None, max_length=128),
                    severity: Optional[List[str]] = Query(None), status: Optional[List[str]] = Query(None),
                    category: Optional[str] = Query(None, max_length=32), q: Optional[str] = Query(None, max_length=255),
                    offset: int = EXPORT_PAGING["offset"], limit: Optional[int] = EXPORT_PAGING["limit"],
                    lang: Optional[str] = EXPORT_PAGING["lang"], user=Depends(require(*READERS))):
    """Every matching latest result, streamed (sorted by org, host, profile, rule, so that
    ``offset`` resumes where an interrupted download stopped)."""
    org = _org(org)
    query = queries.findings_query(user["scope"], org, profile, rule, severity, status, category, None, q)
    filters = {"org": org, "profile": profile, "rule": rule, "severity": severity, "status": status,
               "category": category, "q": q}
    return _export(request, user, "findings", query, FINDING_FIELDS, format, filters, lang, offset, limit)


@router.get("/export/inventory", responses=ERRORS, tags=["exports"])
def export_inventory(request: Request, format: str = Query("csv", max_length=8), org: Optional[str] = Query(None, max_length=512),
                     category: Optional[str] = Query(None, max_length=32), origin: Optional[str] = Query(None, max_length=16),
                     offset: int = EXPORT_PAGING["offset"], limit: Optional[int] = EXPORT_PAGING["limit"],
                     lang: Optional[str] = EXPORT_PAGING["lang"], user=Depends(require(*READERS))):
    org = _org(org)
    query = queries.inventory_query(user["scope"], org, category, origin)
    return _export(request, user, "inventory", query, INVENTORY_FIELDS, format,
                   {"org": org, "category": category, "origin": origin}, lang, offset, limit)


def _rows_export(request, user, kind, rows, fields, fmt, filters, lang):
    """Stream dict rows (already read through the scope) as CSV (header in ``lang``) or JSON; audited."""
    from scanner.server.web import export
    if fmt not in ("csv", "json"):
        raise bad_request("bad_format", "format must be csv or json")
    if lang not in (None, "zh", "en"):
        raise bad_request("bad_lang", "lang must be zh or en")
    counter = {"rows": 0}
    tuples = (tuple(r.get(f) for f in fields) for r in rows)
    chunks = list(export.csv_chunks(tuples, list(fields), list(fields), lang, counter) if fmt == "csv"
                  else export.json_chunks(tuples, list(fields), counter))
    _audit(request, user, "export." + kind, fmt, dict(filters, rows=counter["rows"], complete=True),
           org=filters.get("org") or user["scope"].root())
    name = "xcscan-%s.%s" % (kind, fmt)
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    return Response("".join(chunks).encode("utf-8"), media_type=media,
                    headers={"Content-Disposition": 'attachment; filename="%s"' % name})


def _day_param(text, name, end_of_day=False):
    """YYYY-MM-DD (UTC; the end of that day with ``end_of_day``) or unix seconds; None when absent."""
    import calendar
    import time as _time
    if text in (None, ""):
        return None
    if text.isdigit():
        return int(text)
    try:
        return calendar.timegm(_time.strptime(text, "%Y-%m-%d")) + (86399 if end_of_day else 0)
    except ValueError:
        raise bad_request("bad_date", "%s must be a date (YYYY-MM-DD) or unix seconds" % name)


# --- 信创 progress and the change feed -----------------------------------------------------------------
class TargetIn(BaseModel):
    org: str = Field(..., max_length=512)
    category: str = Field(..., max_length=32)
    target: float = Field(..., description="rate to reach, above 0 and at most 1 (1 = 100 %)")
    deadline: str = Field(..., max_length=16, description="YYYY-MM-DD (through the end of that day, UTC)")
    note: Optional[str] = Field(None, max_length=1000)


@router.get("/localization", responses=ERRORS, tags=["localization"])
def localization_progress(request: Request, org: Optional[str] = Query(None, max_length=512),
                          since: Optional[str] = Query(None, max_length=16), user=Depends(require(*READERS))):
    """Localization rate per org unit (any depth) and category with unknowns beside it, the targets
    with their progress, and the substitutions completed since ``since`` (default: 90 days ago)."""
    return localization.progress(request.app.state.engine, user["scope"], _org(org), _day_param(since, "since"))


@router.get("/localization/components", responses=PAGED, tags=["localization"])
def localization_components(request: Request, org: Optional[str] = Query(None, max_length=512),
                            category: Optional[str] = Query(None, max_length=32),
                            origin: str = Query("foreign", max_length=16), limit: int = Query(100, ge=1, le=5000),
                            offset: int = Query(0, ge=0, le=10**9), user=Depends(require(*READERS))):
    """The latest components of one origin (default foreign; ``any``: all) with their domestic substitutes."""
    if origin not in ("foreign", "domestic", "unknown", "any"):
        raise bad_request("bad_origin", "origin must be foreign, domestic, unknown or any")
    rows, total = localization.components(request.app.state.engine, user["scope"], _org(org), category or None,
                                          None if origin == "any" else origin, limit, offset)
    return JSONResponse(rows, headers={"X-Total-Count": str(total)})


@router.post("/localization/targets", status_code=201, responses=ERRORS, tags=["localization"])
def localization_target_set(body: TargetIn, request: Request, user=Depends(require("admin", "officer"))):
    """Set (or replace) the target of an org unit and category."""
    from scanner.server.workflow import targets
    data = body.model_dump()
    data["deadline"] = _day_param(body.deadline, "deadline", end_of_day=True)
    return targets.set_target(request.app.state.engine, data, user["username"], client_ip(request),
                              scope=user["scope"], role=user["role"])


@router.delete("/localization/targets/{target_id}", responses=ERRORS, tags=["localization"])
def localization_target_delete(request: Request, target_id: int = Path(..., ge=1, le=2**31 - 1),
                               user=Depends(require("admin", "officer"))):
    from scanner.server.workflow import targets
    return targets.delete_target(request.app.state.engine, target_id, user["username"], client_ip(request),
                                 scope=user["scope"], role=user["role"])


COMPONENT_FIELDS = ("hostname", "org_path", "category", "product_id", "name_zh", "name_en", "vendor_zh", "vendor_en",
                    "origin", "version", "substitutes", "substitute_names_zh", "substitute_names_en")


@router.get("/export/components", responses=ERRORS, tags=["exports"])
def export_components(request: Request, format: str = Query("csv", max_length=8),
                      org: Optional[str] = Query(None, max_length=512), category: Optional[str] = Query(None, max_length=32),
                      origin: str = Query("foreign", max_length=16), offset: int = EXPORT_PAGING["offset"],
                      limit: Optional[int] = EXPORT_PAGING["limit"], lang: Optional[str] = EXPORT_PAGING["lang"],
                      user=Depends(require(*READERS))):
    """The remaining foreign components (or ``origin``) with their domestic substitutes, as CSV or JSON,
    streamed like the findings export (sorted by category, org, host: ``offset`` resumes)."""
    if origin not in ("foreign", "domestic", "unknown", "any"):
        raise bad_request("bad_origin", "origin must be foreign, domestic, unknown or any")
    org = _org(org)
    query = localization.components_query(user["scope"], org, category or None, None if origin == "any" else origin)
    # the substitutes are decoded and named in Python, row by row, as the rows come from the cursor
    return _export(request, user, "components", query, COMPONENT_FIELDS, format,
                   {"org": org, "category": category, "origin": origin}, lang, offset, limit,
                   row_map=_component_cells)


def _component_cells(row):
    d = localization.with_substitutes(row)
    return tuple(d.get(f) for f in COMPONENT_FIELDS)


@router.get("/changes", responses=ERRORS, tags=["changes"])
def changes_feed(request: Request, org: Optional[str] = Query(None, max_length=512),
                 from_: Optional[str] = Query(None, alias="from", max_length=16),
                 to: Optional[str] = Query(None, max_length=16),
                 limit: int = Query(1000, ge=1, le=10000, description="at most this many rows of all the lists together"),
                 cursor: Optional[str] = Query(None, max_length=8192, description="the 'next' of the previous page"),
                 user=Depends(require(*READERS))):
    """What changed between ``from`` and ``to`` (YYYY-MM-DD or unix seconds; default the last 7 days),
    at most ``limit`` rows a page (the lists new, fixed, added, removed, substitutions, stopped, joined
    filled in that order; counts are always the whole feed's); ``next``: the cursor of the next page
    (null on the last), ``truncated``: whether there is one."""
    from scanner.server.errors import ApiError
    from scanner.server.store import change_summary, changes
    org, start, end = _org(org), _day_param(from_, "from"), _day_param(to, "to", end_of_day=True)
    after = offset = None
    if cursor is not None:
        c = changes.read_cursor(cursor)
        if (org is not None and org != c["org"]) or (start is not None and start != c["from"]) or \
                (end is not None and end != c["to"]):
            raise ApiError(422, "bad_cursor", "the cursor belongs to another query (org, from, to): "
                                              "pass it alone, or start again without it")
        org, start, end, after, offset = c["org"], c["from"], c["to"], c["after"], c["offset"]
    engine = request.app.state.engine
    # the page folded in the database (a page's rows, not the whole feed's), else the whole feed
    with request.app.state.fold_slots.held():  # a fold: a few at once per worker (store/slots.py)
        paged = change_summary.api_page(engine, user["scope"], org, start, end, after, offset, limit)
        if paged is None:
            paged = changes.page(changes.feed(engine, user["scope"], org, start, end), after, limit)
    out, nxt = paged
    out["truncated"] = nxt is not None
    out["next"] = None if nxt is None else changes.cursor(out["from"], out["to"], org, nxt)
    return out


@router.get("/export/changes", responses=ERRORS, tags=["exports"])
def export_changes(request: Request, format: str = Query("csv", max_length=8), org: Optional[str] = Query(None, max_length=512),
                   from_: Optional[str] = Query(None, alias="from", max_length=16),
                   to: Optional[str] = Query(None, max_length=16), lang: Optional[str] = EXPORT_PAGING["lang"],
                   user=Depends(require(*READERS))):
    from scanner.server.store import changes
    org = _org(org)
    with request.app.state.fold_slots.held():  # the whole feed folded in memory (store/slots.py)
        got = changes.feed(request.app.state.engine, user["scope"], org, _day_param(from_, "from"),
                           _day_param(to, "to", end_of_day=True))
    return _rows_export(request, user, "changes", changes.csv_rows(got), changes.CSV_FIELDS, format,
                        {"org": org, "from": got["from"], "to": got["to"]}, lang)


# --- administration ---------------------------------------------------------------------------------
@router.get("/tokens", responses=ERRORS, tags=["admin"])
def list_tokens(request: Request, user=Depends(require(*ADMINS))):
    return accounts.list_tokens(request.app.state.engine, scope=user["scope"])


@router.post("/tokens", status_code=201, responses=ERRORS, tags=["admin"])
def create_token(body: TokenIn, request: Request, user=Depends(require(*ADMINS))):
    seconds = parse_duration(body.expires)
    if seconds is None:
        raise bad_request("bad_expiry", "expires must look like 3600, 12h, 7d or 2w")
    return accounts.create_token(request.app.state.engine, body.org, body.uses, seconds, user["username"], body.note,
                                 client_ip(request), scope=user["scope"])


@router.get("/users", responses=ERRORS, tags=["admin"])
def list_users(request: Request, user=Depends(require(*ADMINS))):
    return accounts.list_users(request.app.state.engine, scope=user["scope"])


@router.post("/users", status_code=201, responses=ERRORS, tags=["admin"])
def add_user(body: UserIn, request: Request, user=Depends(require(*ADMINS))):
    return accounts.add_user(request.app.state.engine, body.username, body.password, body.role, user["username"],
                             client_ip(request), scope=user["scope"], orgs=body.orgs)


# account and token life cycle: effective at once (the user's sessions end with the change)
UserName = Path(..., max_length=64)


class PasswordIn(BaseModel):
    password: str = Field(..., max_length=1024)


@router.post("/users/{username}/disable", responses={**ERRORS, 409: {"description": "the last admin"}}, tags=["admin"])
def disable_user(request: Request, username: str = UserName, user=Depends(require(*ADMINS))):
    """Disable a user: their sessions end now and logins are refused until enabled again."""
    return accounts.set_disabled(request.app.state.engine, username, True, user["username"], client_ip(request),
                                 scope=user["scope"])


@router.post("/users/{username}/enable", responses=ERRORS, tags=["admin"])
def enable_user(request: Request, username: str = UserName, user=Depends(require(*ADMINS))):
    return accounts.set_disabled(request.app.state.engine, username, False, user["username"], client_ip(request),
                                 scope=user["scope"])


@router.delete("/users/{username}", responses={**ERRORS, 409: {"description": "the last admin"}}, tags=["admin"])
def delete_user(request: Request, username: str = UserName, user=Depends(require(*ADMINS))):
    return accounts.delete_user(request.app.state.engine, username, user["username"], client_ip(request),
                                scope=user["scope"])


@router.post("/users/{username}/password", responses=ERRORS, tags=["admin"])
def reset_password(body: PasswordIn, request: Request, username: str = UserName, user=Depends(require(*ADMINS))):
    """Set a new password (the password policy applies); the user's sessions end."""
    return accounts.reset_password(request.app.state.engine, username, body.password, user["username"],
                                   client_ip(request), scope=user["scope"])


@router.post("/users/{username}/logout", responses=ERRORS, tags=["admin"])
def end_user_sessions(request: Request, username: str = UserName, user=Depends(require(*ADMINS))):
    """End every session of a user now."""
    return accounts.end_sessions(request.app.state.engine, username, user["username"], client_ip(request),
                                 scope=user["scope"])


@router.post("/tokens/{token_id}/revoke", responses=ERRORS, tags=["admin"])
def revoke_token(request: Request, token_id: int = Path(..., ge=1, le=2**31 - 1), user=Depends(require(*ADMINS))):
    """Revoke an enrollment token: it enrolls no more hosts."""
    return accounts.revoke_token(request.app.state.engine, token_id, user["username"], client_ip(request),
                                 scope=user["scope"])


@router.get("/audit", responses=ERRORS, tags=["admin"])
def audit_log(request: Request, limit: int = Query(500, ge=1, le=10000), offset: int = Query(0, ge=0, le=10**9),
              user=Depends(require(*AUDIT_READERS))):
    return queries.audit_entries(request.app.state.engine, user["scope"], limit, offset, actor=user["username"])
