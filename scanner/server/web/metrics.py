"""Prometheus metrics at /metrics (off by default), with the maintained client library (prometheus_client).

Turned on by server.json: ``metrics_token`` (scrapers send ``Authorization: Bearer <token>``) and/or
``metrics_allow`` (comma-separated addresses or CIDR networks allowed without a token). With neither,
/metrics answers 404 as if it did not exist. Cardinality is bounded: refusal reasons are the API's fixed
error codes (anything else is "other"), and fleet gauges are per top-level org (the first path segment),
at most ``MAX_ORGS`` of them (the rest summed under "other").

Names (docs/integrations.md):
  xcscan_intake_reports_total{outcome}            accepted | refused
  xcscan_intake_refusals_total{reason}            bad_signature, unknown_host, stale_timestamp, too_large, ...
  xcscan_intake_batch_seconds                     histogram: one batch transaction of the report writer
  xcscan_intake_batch_reports                     histogram: reports per batch
  xcscan_intake_queue_depth                       reports waiting for the writer
  xcscan_db_pool_checked_out / _size              connections in use / pool size
  xcscan_hosts{state}                             reporting (seen within 2 days), stale, never, retired
  xcscan_org_hosts{org} / xcscan_org_localization_rate{org} / xcscan_org_score{org}
"""

import hmac
import ipaddress
import logging
import time

log = logging.getLogger("xcscan.server")

MAX_ORGS = 50
STALE_AFTER = 2 * 86400
KNOWN_REASONS = {"bad_signature", "unknown_host", "stale_timestamp", "too_large", "bad_gzip", "bad_json",
                 "bad_report", "host_mismatch", "host_retired", "report_id_conflict", "unsupported_encoding",
                 "invalid_request", "too_deep", "rate_limited", "too_many_requests", "internal"}


class Metrics(object):
    def __init__(self, settings, engine, intake=None):
        from prometheus_client import CollectorRegistry, Counter, Histogram
        self.settings = settings
        self.engine = engine
        self.intake = intake
        self.allow = _networks(getattr(settings, "metrics_allow", "") or "")
        self.token = getattr(settings, "metrics_token", "") or ""
        self.registry = CollectorRegistry(auto_describe=True)
        self.reports = Counter("xcscan_intake_reports", "Reports received, by outcome", ["outcome"],
                               registry=self.registry)
        self.refusals = Counter("xcscan_intake_refusals", "Refused reports, by reason", ["reason"],
                                registry=self.registry)
        self.batch_seconds = Histogram("xcscan_intake_batch_seconds", "Duration of one batch write transaction",
                                       buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10),
                                       registry=self.registry)
        self.batch_reports = Histogram("xcscan_intake_batch_reports", "Reports stored per batch",
                                       buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)
        self.registry.register(_LiveCollector(self))
        writer = getattr(intake, "writer", None)
        if writer is not None:
            writer.on_batch = self.batch

    @property
    def enabled(self):
        return bool(self.token or self.allow)

    def allowed(self, request):
        """Token first (constant-time compare), else the client address against the allow-list."""
        header = request.headers.get("authorization", "")
        if self.token and header.lower().startswith("bearer ") \
                and hmac.compare_digest(header[7:].strip().encode(), self.token.encode()):
            return True
        host = request.client.host if request.client else None
        try:
            addr = ipaddress.ip_address(host) if host else None
        except ValueError:
            addr = None
        return addr is not None and any(addr in net for net in self.allow)

    def accepted(self):
        self.reports.labels("accepted").inc()

    def refused(self, code):
        self.reports.labels("refused").inc()
        self.refusals.labels(code if code in KNOWN_REASONS else "other").inc()

    def batch(self, size, seconds):
        self.batch_seconds.observe(seconds)
        self.batch_reports.observe(size)

    def render(self):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _networks(text):
    out = []
    for part in text.split(","):
        part = part.strip()
        if part:
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                log.error("metrics_allow: %r is not an address or network; ignored", part)
    return out


class _LiveCollector(object):
    """Gauges read at scrape time: writer queue, pool, hosts by state, fleet per top-level org."""

    def __init__(self, metrics):
        self.m = metrics

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        writer = getattr(self.m.intake, "writer", None)
        q = GaugeMetricFamily("xcscan_intake_queue_depth", "Reports waiting for the batch writer")
        q.add_metric([], writer.queue.qsize() if writer is not None else 0)
        yield q
        pool = self.m.engine.pool
        if hasattr(pool, "checkedout"):
            used = GaugeMetricFamily("xcscan_db_pool_checked_out", "Database connections in use")
            used.add_metric([], pool.checkedout())
            yield used
            size = GaugeMetricFamily("xcscan_db_pool_size", "Database connection pool size")
            size.add_metric([], pool.size())
            yield size
        try:
            states, orgs = self._fleet()
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because of one query
            log.error("metrics: fleet gauges skipped: %s", exc)
            return
        hosts = GaugeMetricFamily("xcscan_hosts", "Hosts by reporting state", labels=["state"])
        for state in ("reporting", "stale", "never", "retired"):
            hosts.add_metric([state], states.get(state, 0))
        yield hosts
        n = GaugeMetricFamily("xcscan_org_hosts", "Active hosts per top-level org", labels=["org"])
        rate = GaugeMetricFamily("xcscan_org_localization_rate", "Domestic share of classified components",
                                 labels=["org"])
        score = GaugeMetricFamily("xcscan_org_score", "Mean compliance score of the hosts' latest reports, per "
                                  "profile", labels=["org", "profile"])
        for org, v in sorted(orgs.items()):
            n.add_metric([org], v["hosts"])
            if v["dom"] + v["for"]:
                rate.add_metric([org], v["dom"] / float(v["dom"] + v["for"]))
            for profile, (total, count) in sorted(v["scores"].items()):
                score.add_metric([org, profile], total / count)
        yield n
        yield rate
        yield score

    def _fleet(self):
        from sqlalchemy import select
        from scanner.server.store import db
        h = db.hosts
        cols = [h.c.org_path, h.c.last_seen, h.c.loc_domestic, h.c.loc_foreign]
        retired = getattr(h.c, "retired_at", None)
        if retired is not None:
            cols.append(retired)
        now = time.time()
        states, orgs = {}, {}
        with self.m.engine.connect() as conn:
            scores = {}
            hp = db.host_profiles
            for host_id, profile, s in conn.execute(select(hp.c.host_id, hp.c.profile, hp.c.score)):
                if s is not None and isinstance(profile, str) and len(profile) <= 64:
                    scores.setdefault(host_id, []).append((profile, float(s)))
            for row in conn.execute(select(h.c.id, *cols)):
                host_id, org_path, last_seen, dom, foreign = row[:5]
                if retired is not None and row[5] is not None:
                    states["retired"] = states.get("retired", 0) + 1
                    continue
                state = "never" if not last_seen else ("reporting" if now - _epoch(last_seen) <= STALE_AFTER
                                                       else "stale")
                states[state] = states.get(state, 0) + 1
                top = "/" + ((org_path or "/").strip("/").split("/")[0])
                if top not in orgs and len(orgs) >= MAX_ORGS:
                    top = "other"
                v = orgs.setdefault(top, {"hosts": 0, "dom": 0, "for": 0, "scores": {}})
                v["hosts"] += 1
                v["dom"] += dom or 0
                v["for"] += foreign or 0
                for profile, s in scores.get(host_id, ()):
                    if profile in v["scores"] or len(v["scores"]) < 20:
                        total, count = v["scores"].get(profile, (0.0, 0))
                        v["scores"][profile] = (total + s, count + 1)
        return states, orgs


def _epoch(value):
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return value.timestamp()
    except AttributeError:
        return 0.0


def make_router():
    # no `from __future__ import annotations` in this module: FastAPI must see the Request class itself
    from fastapi import APIRouter, Request
    from fastapi.responses import Response

    from scanner.server.errors import ApiError, not_found
    router = APIRouter(include_in_schema=False)

    @router.get("/metrics")
    def metrics(request: Request):
        m = request.app.state.metrics
        if not m.enabled:
            raise not_found()
        if not m.allowed(request):
            raise ApiError(401, "metrics_auth", "send Authorization: Bearer <metrics_token> or scrape from an "
                           "address in metrics_allow", headers={"WWW-Authenticate": "Bearer"})
        body, content_type = m.render()
        return Response(body, media_type=content_type)

    return router

