"""Background work inside the server: the retention job (store/retention.py) every ``prune_interval``
seconds: it compacts the report bodies stored since its last run (``report_compaction``, on by
default; store/bodies.py), then drops the bodies older than ``report_retention_days`` when that is set,
and the change records older than ``change_retention_days`` (400 days by default).

Each worker process runs one daemon thread that polls (every tenth of the interval, at most every
minute, the first time at start-up); a run is claimed by one node (store/jobs.py), so two workers or
ten machines behind a load balancer prune once per interval between them. A run that prunes
something is audited (``reports.prune``, actor ``server``) like `xcscan server prune`; the job's row
in ``job_runs`` keeps the last run's node, time and counts. ``prune_interval`` 0 turns it off (then
run `xcscan server prune` from cron or a systemd timer: docs/server.md).
"""
from __future__ import annotations

import logging
import threading

from scanner.server.store import jobs

log = logging.getLogger("xcscan.server")
PRUNE_JOB = "retention"


class Maintenance(object):
    def __init__(self, engine, settings):
        self.engine = engine
        self.days = settings.report_retention_days
        self.interval = settings.prune_interval
        self.compact = settings.report_compaction
        self.summaries = settings.report_daily_summaries
        self.change_days = settings.change_retention_days
        self.stopping = threading.Event()
        self.thread = None
        self.node = jobs.node_name()

    @property
    def enabled(self):
        return (self.days > 0 or self.compact or self.change_days > 0) and self.interval > 0

    def poll_seconds(self):
        return max(1, min(60, self.interval // 10))

    def start(self):
        if self.enabled and self.thread is None:
            self.thread = threading.Thread(target=self._loop, name="xcscan-maintenance", daemon=True)
            self.thread.start()

    def stop(self):
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(10)

    def _loop(self):
        wait = 0
        while not self.stopping.wait(wait):
            wait = self.poll_seconds()
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - logged; the next poll tries again
                log.exception("retention prune failed")

    def run_once(self, t=None):
        """Prune when this node claims the run that is due; return prune()'s summary or None."""
        from scanner.server.store import db, retention
        from scanner.server.store.audit import audit
        if not jobs.claim(self.engine, PRUNE_JOB, self.interval, t, self.node):
            return None
        out = retention.prune(self.engine, self.days, t=t, compact=self.compact, summaries=self.summaries,
                              change_days=self.change_days)
        if out["reports"] or out["changes"]:
            with db.write_tx(self.engine) as conn:
                audit(conn, "server", "reports.prune", None, dict(out, days=self.days, change_days=self.change_days,
                                                                  node=self.node))
        jobs.finish(self.engine, PRUNE_JOB, dict(out, days=self.days, change_days=self.change_days), t)
        return out
