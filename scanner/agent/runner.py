"""`xcscan agent run`: lock, be gentle, splay, scan, sign, spool, upload, record.

Exit codes: 0 the report was delivered (and the spool drained); 4 the report
is safely spooled but could not be delivered now (server down: the next run
sends it); 1 an error (scan failed, spool not writable, a report refused by the
server, trust or enrollment problem); 75 another run holds the lock.
"""
from __future__ import absolute_import

import json
import os
import random
import signal
import subprocess
import time

from scanner.agent import config as agent_config
from scanner.agent import state
from scanner.agent.lock import RunLock
from scanner.agent.log import AgentLog
from scanner.agent.spool import Spool
from scanner.errors import XcscanError
from scanner.i18n import t

DEFERRED_EXIT_CODE = 4
MAX_REPORT_BYTES = 16 * 1024 * 1024  # the server's default limit (docs/api.md)


class ScanTimeout(BaseException):
    """Raised by the scan budget alarm; BaseException so collectors' `except Exception` cannot swallow it."""


def lower_priority(cfg, log):
    """nice + ionice for the whole run (collectors' commands inherit both)."""
    if cfg.nice:
        try:
            os.nice(cfg.nice)
        except OSError as exc:
            log.info(log.t("agent.log.nice_failed", why=log.reason(str(exc))))
    if cfg.ionice != "none":
        cls = "3" if cfg.ionice == "idle" else "2"
        argv = ["ionice", "-c", cls, "-p", str(os.getpid())]
        if cls == "2":
            argv[3:3] = ["-n", "7"]
        try:
            subprocess.call(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5)
        except (OSError, subprocess.SubprocessError):
            log.info(log.t("agent.log.no_ionice"))


def limit_memory(cfg, log):
    if not cfg.memory_limit_mb:
        return
    try:
        import resource
        limit = cfg.memory_limit_mb * 1024 * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError) as exc:
        log.info(log.t("agent.log.rlimit_failed", why=log.reason(str(exc))))


def _scan(cfg):
    from scanner.pipeline import scan_report
    return scan_report(root=cfg.root or "/", profile=cfg.profile or "all", waivers=None, live=None,
                       collector_budget=cfg.collector_budget)


def scan_within_budget(cfg):
    """Run the scan; abort it with a clear error when it exceeds scan_budget seconds."""
    budget = cfg.scan_budget
    if not budget or not hasattr(signal, "setitimer"):
        return _scan(cfg)

    def _alarm(signum, frame):
        raise ScanTimeout()

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, budget)
    try:
        return _scan(cfg)
    except ScanTimeout:
        _kill_children()
        raise XcscanError("the scan exceeded its time budget of %d s and was stopped; nothing was spooled"
                          % budget, hint="raise scan_budget in the agent configuration or look for a stuck "
                                         "command (facts.collection shows per-collector seconds)")
    except MemoryError:
        raise XcscanError("the scan ran out of memory (limit %d MiB); nothing was spooled" % cfg.memory_limit_mb,
                          hint="raise memory_limit_mb in the agent configuration")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _kill_children():
    """SIGKILL the commands a stopped scan left running (direct children, found in /proc)."""
    me = str(os.getpid())
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    killed = []
    for pid in pids:
        try:
            with open("/proc/%s/stat" % pid) as fh:
                stat = fh.read()
        except (IOError, OSError):
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == me:
            try:
                os.kill(int(pid), signal.SIGKILL)
                os.waitpid(int(pid), 0)
                killed.append(int(pid))
            except OSError:
                pass
    return killed


def encode_report(report):
    return json.dumps(report, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def _ensure_dir(path, what):
    if os.path.isdir(path):
        return
    old = os.umask(0o077)
    try:
        os.makedirs(path, 0o700)
    except OSError as exc:
        raise XcscanError("cannot create the %s directory: %s" % (what, exc.strerror or exc), path=path,
                          hint="run as root or set %s in the agent configuration" % what)
    finally:
        os.umask(old)


def make_client(cfg):
    from scanner.agent.client import Client
    return Client(cfg.server, ca_file=cfg.ca_path, fingerprint=cfg.fingerprint, timeout=cfg.timeout)


def run(config_path=None, no_splay=False, upload_only=False, quiet=False, lang="en", sleep=time.sleep):
    """Do one agent run; return the exit code. XcscanError escapes for the CLI to print."""
    cfg = agent_config.load(config_path)
    log = AgentLog(use_syslog=cfg.syslog, quiet=quiet, lang=lang)
    _ensure_dir(cfg.state_path, "state_dir")
    spool = Spool(cfg.spool_path, max_bytes=cfg.spool_max_bytes, max_reports=cfg.spool_max_reports)
    spool.ensure()
    with RunLock(os.path.join(cfg.state_path, "agent.lock")):
        return _locked_run(cfg, spool, log, no_splay, upload_only, lang, sleep)


def _locked_run(cfg, spool, log, no_splay, upload_only, lang, sleep):
    started = time.time()
    t0 = time.monotonic()
    lower_priority(cfg, log)
    limit_memory(cfg, log)
    for name in spool.clean_temporary():
        log.warning(t("agent.run.tmp_removed", lang, name=name))
    run_state = {"started_at": _iso(started), "report_id": None, "result": "running"}
    report_id = None
    components = results = 0
    try:
        if not upload_only:
            from scanner.agent import keys
            seed = keys.load_key(cfg.key_path)  # before the scan: a key problem should not waste one
            from scanner.target import require_os_for_agent
            require_os_for_agent(cfg.root)      # an image root that is not mounted: nothing to scan
            if cfg.splay and not no_splay:
                delay = random.uniform(0, cfg.splay)
                log.info(log.t("agent.log.splay", seconds="%.0f" % delay))
                log.terminal(t("agent.run.splay", lang, seconds="%.0f" % delay, splay=cfg.splay))
                run_state["splay_seconds"] = round(delay, 3)
                sleep(delay)
            report = scan_within_budget(cfg)
            report_id = report["report_id"]
            components = len((report.get("inventory") or {}).get("components") or [])
            results = len(report.get("results") or [])
            body = encode_report(report)
            del report
            if len(body) > MAX_REPORT_BYTES:
                raise XcscanError("the report is %d bytes, over the %d-byte upload limit; not spooled"
                                  % (len(body), MAX_REPORT_BYTES))
            timestamp = int(time.time())
            signature = keys.sign_report(seed, cfg.host_id, timestamp, body)
            name = spool.write(report_id, cfg.host_id, timestamp, signature, body)
            del body
            evicted = spool.enforce_cap(keep=name)
            for old in evicted:
                log.warning(t("agent.run.evicted", lang, name=old, max_bytes=cfg.spool_max_bytes,
                              max_reports=cfg.spool_max_reports))
            run_state["report_id"] = report_id
        from scanner.agent.uploader import upload_all
        result = upload_all(spool, make_client(cfg), cfg.host_id, log, retries=cfg.retries,
                            backoff=cfg.backoff, backoff_max=cfg.backoff_max, compress=cfg.gzip,
                            sleep=sleep)
    except XcscanError as exc:
        run_state.update(result="error", error=str(exc), finished_at=_iso(time.time()))
        state.update(cfg.state_path, last_run=run_state)
        log.error(exc)
        raise _Reported(exc)
    except MemoryError:
        exc = XcscanError("out of memory (limit %d MiB); the spool is intact" % cfg.memory_limit_mb,
                          hint="raise memory_limit_mb in the agent configuration")
        run_state.update(result="error", error=str(exc), finished_at=_iso(time.time()))
        state.update(cfg.state_path, last_run=run_state)
        log.error(exc)
        raise _Reported(exc)
    except Exception as exc:  # a bug: record it, say so, keep the traceback for the report
        run_state.update(result="error", error="internal error: %s: %s" % (type(exc).__name__, exc),
                         finished_at=_iso(time.time()))
        state.update(cfg.state_path, last_run=run_state)
        log.error(log.t("agent.log.internal_error", kind=type(exc).__name__, detail=exc))
        raise
    seconds = time.monotonic() - t0
    depth = spool.depth()
    upload_state = {"at": _iso(time.time()), "sent": len(result.sent), "rejected": len(result.rejected),
                    "ok": result.ok, "error": result.fatal or result.deferred}
    if result.sent:
        upload_state["last_success_at"] = upload_state["at"]
    else:
        upload_state["last_success_at"] = (state.load(cfg.state_path).get("last_upload") or {}).get(
            "last_success_at")
    code = 0
    if result.fatal:
        log.error(t("agent.run.fatal", lang, reason=log.reason(result.fatal), depth=depth))
        code = 1
    elif result.rejected:
        log.error(t("agent.run.rejected", lang, count=len(result.rejected), directory=spool.directory))
        code = 1
    if result.deferred and not result.fatal:
        log.warning(t("agent.run.deferred", lang, reason=log.reason(result.deferred), depth=depth))
        code = code or DEFERRED_EXIT_CODE
    run_state.update(result={0: "ok", DEFERRED_EXIT_CODE: "deferred"}.get(code, "error"),
                     finished_at=_iso(time.time()), seconds=round(seconds, 3), spool_depth=depth,
                     max_rss_kb=_max_rss_kb(), commands_max_rss_kb=_max_rss_kb(children=True),
                     error=result.fatal or (result.rejected[0][1] if result.rejected else None) or result.deferred)
    state.update(cfg.state_path, last_run=run_state, last_upload=upload_state)
    if code == 0:
        if upload_only:
            log.summary(t("agent.run.summary_upload", lang, sent=len(result.sent), depth=depth,
                          seconds="%.1f" % seconds))
        else:
            log.summary(t("agent.run.summary", lang, report_id=report_id, components=components,
                          results=results, sent=len(result.sent), depth=depth, seconds="%.1f" % seconds))
    return code


class _Reported(XcscanError):
    """An error already logged by the runner; the CLI only sets the exit code."""

    def __init__(self, exc):
        XcscanError.__init__(self, exc.message, path=exc.path, hint=exc.hint)
        self.exit_code = getattr(exc, "exit_code", 1)


def _max_rss_kb(children=False):
    """Peak RSS (KiB) of this run, or of the largest command the collectors ran."""
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, ValueError):
        return None


def _iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
