"""Upload everything in the spool, oldest first; delete a report only after its acknowledgement.

Outcome per report:
* 200 + acknowledgement naming the report  -> delete from the spool;
* refused for good (bad signature, stale timestamp, malformed, too large,
  host mismatch)                           -> move to rejected/, report it, go on;
* server unreachable, 5xx, 429             -> retry with exponential backoff and
  jitter; when the attempts are used up stop and keep the spool (in order:
  a newer report is never sent before an older one);
* the server does not know this host / certificate not trusted
                                           -> stop, keep the spool, say what to do.
"""
from __future__ import absolute_import

import random
import time

from scanner.agent import testhook
from scanner.agent.client import TransportError, TrustError
from scanner.agent.spool import CorruptEntry

PERMANENT_401 = ("bad_signature", "stale_timestamp")


class UploadResult(object):
    def __init__(self):
        self.sent = []          # report ids acknowledged
        self.rejected = []      # (report id or file name, reason)
        self.evicted = []
        self.deferred = None    # reason the remaining reports stay spooled
        self.fatal = None       # configuration problem (trust, unknown host)

    @property
    def ok(self):
        return not self.rejected and not self.deferred and not self.fatal


def _sleep_for(attempt, base, cap):
    delay = min(cap, base * (2 ** attempt))
    return delay * random.uniform(0.5, 1.0)


def upload_all(spool, client, host_id, log, retries=3, backoff=5, backoff_max=120, compress=True,
               sleep=time.sleep):
    result = UploadResult()
    for name in spool.names():
        try:
            entry = spool.read(name)
        except (CorruptEntry, ValueError) as exc:
            reason = "unreadable spool file: %s" % exc
            spool.reject(name, reason)
            result.rejected.append((name, reason))
            log.error(log.t("agent.log.moved_rejected", name=name, reason=log.reason(reason), directory=spool.directory))
            continue
        except (IOError, OSError) as exc:
            result.deferred = "cannot read spool file %s: %s" % (name, exc.strerror or exc)
            break
        # A report spooled before a re-enrollment is signed for the old host id: send it as that
        # host (the server still knows it unless the host was deleted).
        old_identity = entry.host_id != host_id
        attempt = 0
        while True:
            try:
                resp = client.submit(entry.host_id, entry.timestamp, entry.signature, entry.body, compress=compress)
            except TrustError as exc:
                result.fatal = str(exc)
                return result
            except TransportError as exc:
                resp, problem = None, str(exc)
            else:
                problem = None
                if resp.status >= 500 or resp.status in (408, 429):
                    problem = "server answered HTTP %d: %s" % (resp.status, resp.message)
            if problem is None:
                break
            if attempt >= retries:
                result.deferred = problem
                return result
            delay = _sleep_for(attempt, backoff, backoff_max)
            log.info(log.t("agent.log.retry", report_id=entry.report_id, problem=log.reason(problem),
                           attempt=attempt + 1, retries=retries, seconds="%.1f" % delay))
            sleep(delay)
            attempt += 1
        ack = resp.json if isinstance(resp.json, dict) else {}
        if resp.status == 200 and ack.get("report_id") == entry.report_id:
            testhook.pause("upload-acked")
            spool.delete(name)
            result.sent.append(entry.report_id)
            log.info(log.t("agent.log.acknowledged", report_id=entry.report_id, status=ack.get("status"),
                           received_at=ack.get("received_at")))
            continue
        code = resp.error_code
        if resp.status in (401, 403) and code not in PERMANENT_401 and code != "host_mismatch" \
                and not old_identity:
            result.fatal = ("the server refused this agent (HTTP %d %s: %s); re-enroll it with a new token"
                            % (resp.status, code or "", resp.message))
            return result
        if resp.status == 200:
            result.deferred = "unexpected acknowledgement for %s: %r" % (entry.report_id, resp.json)
            return result
        reason = "refused by the server: HTTP %d %s: %s" % (resp.status, code or "", resp.message)
        spool.reject(name, reason)
        result.rejected.append((entry.report_id, reason))
        log.error(log.t("agent.log.moved_rejected", name=entry.report_id, reason=log.reason(reason), directory=spool.directory))
    return result
