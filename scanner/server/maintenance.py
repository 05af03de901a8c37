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

The same thread counts the change page's default view ahead (store/change_digest.py) every
``change_digest_interval`` seconds, claimed the same way (job ``change_digest``); 0 turns it off. And
every ``paper_summary_interval`` seconds it makes the working-paper summaries that no longer match their
host's latest report and verdicts (store/paper_summaries.py, job ``paper_summaries``), at most
``paper_summary_budget`` seconds of work a run; 0 turns it off. At the same interval and with the same
budget it keeps the hosts' rule-set digests of the coverage views ahead (store/coverage.py ``keep_ahead``,
job ``rule_sets``; PostgreSQL). A run of these two that stopped for its budget leaves work behind (after an
upgrade every summary is stale: about 90 s of work at 10,000 hosts, 45 minutes at 2 s a minute): the next
run is then due after ``CATCH_UP`` budgets instead of the interval, until one finishes.
"""
from __future__ import annotations

import logging
import threading

from scanner.server.store import jobs

log = logging.getLogger("xcscan.server")
PRUNE_JOB = "retention"
CATCH_UP = 5  # a budgeted run that left work behind: the next is due after this many budgets (at least 1 s)


class Maintenance(object):
    def __init__(self, engine, settings):
        self.engine = engine
        self.days = settings.report_retention_days
        self.interval = settings.prune_interval
        self.compact = settings.report_compaction
        self.summaries = settings.report_daily_summaries
        self.change_days = settings.change_retention_days
        self.digest_interval = settings.change_digest_interval
        self.digest_min_records = settings.change_digest_min_records
        self.papers_interval = settings.paper_summary_interval
        self.papers_budget = settings.paper_summary_budget
        self.stopping = threading.Event()
        self.thread = None
        self.node = jobs.node_name()

    @property
    def enabled(self):
        """Whether the retention job runs in the server."""
        return (self.days > 0 or self.compact or self.change_days > 0) and self.interval > 0

    def poll_seconds(self):
        return max(1, min(60, self.interval // 10))

    def _wait(self):
        """Seconds between polls: a tenth of the shortest interval of the jobs that run, at most a minute."""
        waits = [self.poll_seconds()] if self.enabled else []
        for interval in (self.digest_interval, self.papers_interval):
            if interval > 0:
                waits.append(max(1, min(60, interval // 10)))
        return min(waits)

    def start(self):
        if (self.enabled or self.digest_interval > 0 or self.papers_interval > 0) and self.thread is None:
            self.thread = threading.Thread(target=self._loop, name="xcscan-maintenance", daemon=True)
            self.thread.start()

    def stop(self):
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(10)

    def _loop(self):
        wait = 0
        while not self.stopping.wait(wait):
            wait = self._wait()
            if self.enabled:
                try:
                    self.run_once()
                except Exception:  # noqa: BLE001 - logged; the next poll tries again
                    log.exception("retention prune failed")
            if self.digest_interval > 0:
                try:
                    self.run_digest()
                except Exception:  # noqa: BLE001 - logged; the page counts live meanwhile
                    log.exception("change digest failed")
            if self.papers_interval > 0:
                try:
                    self.run_papers()
                except Exception:  # noqa: BLE001 - logged; the page makes what it needs meanwhile
                    log.exception("working-paper summaries failed")
                try:
                    self.run_rule_sets()
                except Exception:  # noqa: BLE001 - logged; the coverage view makes what it needs meanwhile
                    log.exception("rule-set digests failed")

    def run_papers(self, t=None):
        """Make the working-paper summaries that no longer match when this node claims the run that is
        due; return paper_summaries.refresh's summary or None."""
        from scanner.server.store import paper_summaries
        last = jobs.state(self.engine, paper_summaries.JOB)
        if not jobs.claim(self.engine, paper_summaries.JOB, self._due(last), t, self.node):
            return None
        after = ((last or {}).get("detail") or {}).get("next")  # where the last run's budget ran out
        out = paper_summaries.refresh(self.engine, self.papers_budget, t=t, after=after)
        jobs.finish(self.engine, paper_summaries.JOB, out, t)
        return out

    def _due(self, last):
        """Seconds between runs of a budgeted job whose row is ``last``: the interval, or after a run that
        stopped for its budget (``done`` false) ``CATCH_UP`` budgets, at least a second."""
        if ((last or {}).get("detail") or {}).get("done") is False:
            return min(self.papers_interval, max(1, CATCH_UP * self.papers_budget))
        return self.papers_interval

    def run_rule_sets(self, t=None):
        """Keep the hosts' rule-set digests ahead when this node claims the run that is due (every
        ``paper_summary_interval`` seconds); return coverage.keep_ahead's summary or None."""
        from scanner.server.store import coverage
        last = jobs.state(self.engine, coverage.JOB)
        if not jobs.claim(self.engine, coverage.JOB, self._due(last), t, self.node):
            return None
        after = ((last or {}).get("detail") or {}).get("next")  # where the last run's budget ran out
        out = coverage.keep_ahead(self.engine, self.papers_budget, after=after)
        jobs.finish(self.engine, coverage.JOB, out, t)
        return out

    def run_digest(self, t=None):
        """Count the change page's default view ahead when this node claims the run that is due; return
        change_digest.build's summary or None."""
        from scanner.server.store import change_digest
        if not jobs.claim(self.engine, change_digest.JOB, self.digest_interval, t, self.node):
            return None
        out = change_digest.build(self.engine, change_digest.KEPT, t=t, min_records=self.digest_min_records)
        jobs.finish(self.engine, change_digest.JOB, out, t)
        return out

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
