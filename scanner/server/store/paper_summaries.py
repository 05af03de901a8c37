"""Each host's working-paper summary of its latest report, kept (table ``host_papers``).

The summary by 控制点 of an org subtree (web/rollup.py) needs, per host, what the working paper says
of its latest report (scanner/render/assessment.py ``assess``): the test-unit verdicts per 控制点,
the problems by risk, the score. Making it means decoding the stored report (~2 MB of objects),
putting the assessors' recorded verdicts on it (store/verdicts.py) and assessing it: ~7 ms of CPU a
host, 8 s for a department of 1,000 hosts on every view. Kept, it is one row of ~3 KB a host.

A kept row is used only while its ``stamp`` matches what the summary would be made from now:

- the host's latest report (its id) and its re-evaluation (``evaluated_at``) and retention (``pruned_at``);
- the valid recorded verdicts of the report's level for the host (their ids: a verdict is never changed,
  only revoked; a revoked or lapsed one leaves the set, a new one joins it, against the clock);
- the server's judging: the GB/T 28448 catalogs and high-risk guide (rules/controls/), the code that
  assesses (assessment.py, view.py, this module) and the package version.

Anything else is made again from the report when read (then kept), so a kept summary is never staler
than the page would be without it. A report that cannot be read is not kept: it stays one bad row."""
from __future__ import annotations

import hashlib
import json
import logging
import os

from sqlalchemy import select

from scanner.server.store import db
from scanner.server.util import now

log = logging.getLogger("xcscan.server")
FORMAT = 1  # raise when the summary's shape changes
JOB = "paper_summaries"  # the background job (maintenance.py) that makes them ahead
_CODE = {}


def code_stamp():
    """Digest of what judges a report on this server (memoized per rules directory)."""
    from scanner import __version__
    from scanner.paths import rules_dir
    from scanner.render import assessment, view
    where = rules_dir()
    if where not in _CODE:
        h = hashlib.sha256(("%d\0%s\0" % (FORMAT, __version__)).encode("utf-8"))
        controls = os.path.join(where, "controls")
        names = sorted(n for n in os.listdir(controls) if n.endswith((".yaml", ".yml"))) \
            if os.path.isdir(controls) else []
        for path in [os.path.join(controls, n) for n in names] + [assessment.__file__, view.__file__, __file__]:
            with open(path, "rb") as f:
                h.update(os.path.basename(path).encode("utf-8") + b"\0" + f.read() + b"\0")
        _CODE[where] = h.hexdigest()
    return _CODE[where]


def stamp(report, level, verdict_ids):
    """The key of a summary of ``report`` {id, evaluated_at, pruned_at} judged with ``verdict_ids``."""
    key = [report["id"], report["evaluated_at"], report["pruned_at"], level, list(verdict_ids), code_stamp()]
    return hashlib.sha256(json.dumps(key, separators=(",", ":")).encode("utf-8")).hexdigest()


def summarize(doc):
    """{by_control: [[area, counts]], units: {verdict: n}, risks: {risk: n}, guide, score} of a report
    document with its verdicts on it; raises on a document the working paper cannot read."""
    from scanner.render import assessment, view
    view.check_report(doc)
    got = assessment.assess(doc)
    units = dict((v, 0) for v in assessment.VERDICTS)
    for item in got["items"]:
        units[item["verdict"]] += 1
    return {"by_control": [[area, counts] for area, counts in got["by_control"]], "units": units,
            "risks": dict((r, sum(1 for f in got["findings"] if f["risk"] == r)) for r in assessment.RISKS),
            "guide": sum(1 for f in got["findings"] if f["guide"]), "score": got["score"]["value"]}


def _kept(text):
    """A kept summary's JSON, or None when it is not one (a damaged row is made again)."""
    try:
        got = json.loads(text)
    except ValueError:
        return None
    keys = ("by_control", "units", "risks", "guide", "score")
    return got if isinstance(got, dict) and all(k in got for k in keys) else None


def latest(engine, hosts, batch=500, doc_batch=25, t=None):
    """Rows {host_id, hostname, org_path, summary} for hosts [{host_id, hostname, org_path,
    latest_report_id}] (read through the caller's scope: store/queries.py ``latest_hosts``), in their
    order; ``summary`` None when the host's latest report cannot be read. Kept summaries whose stamp
    matches are used; the others are made from the reports, ``doc_batch`` documents at a time
    (store/queries.py ``documents``), and kept. Rows are handed over ``batch`` hosts at a time."""
    from scanner.server.store import queries
    t = now() if t is None else t
    for i in range(0, len(hosts), batch):
        part = hosts[i:i + batch]
        got, misses = _check(engine, part, t)
        if misses:
            got.update(_make(engine, queries.documents(engine, misses, doc_batch), t))
        for host in part:
            yield {"host_id": host["host_id"], "hostname": host["hostname"], "org_path": host["org_path"],
                   "summary": got.get(host["host_id"])}


def refresh(engine, budget=2.0, t=None, after=None, batch=500):
    """Make the summaries of the live hosts that no longer match (a new report, a verdict recorded or
    revoked, a re-evaluation, a new server version): the background job ``paper_summaries``
    (maintenance.py, one node a run), so that the first view after a day's reports reads kept rows too.
    Walks the hosts in id order, ``batch`` at a time (bounded memory whatever the fleet), starting after
    host id ``after``, until ``budget`` seconds have gone. A report that could not be read is not tried
    again by this process. Returns {checked, made, bad, done, next}: ``next`` the host id the walk stopped
    after when the budget ran out (the next run starts there), None when it reached the last host."""
    import time
    from scanner.server.store import queries
    t = now() if t is None else t
    start = time.monotonic()
    h = db.hosts
    out = {"checked": 0, "made": 0, "bad": 0, "done": False, "next": None}
    last = after
    while True:
        with engine.connect() as conn:
            q = select(h.c.id.label("host_id"), h.c.hostname, h.c.org_path, h.c.latest_report_id).where(
                h.c.retired_at.is_(None), h.c.latest_report_id.is_not(None))
            if last is not None:
                q = q.where(h.c.id > last)
            part = [dict(x) for x in conn.execute(q.order_by(h.c.id).limit(batch)).mappings()]
        if not part:
            out["done"] = True
            return out
        _got, misses = _check(engine, part, t, texts=False)
        out["checked"] += len(part)
        misses = [x for x in misses if x["latest_report_id"] not in _UNREADABLE]
        ids = [x["host_id"] for x in part]
        for j in range(0, len(misses), 25):
            if time.monotonic() - start > budget:  # stop before this chunk: the next run starts at it
                k = ids.index(misses[j]["host_id"])
                out["next"] = ids[k - 1] if k else last
                out["checked"] -= len(part) - k
                return out
            chunk = misses[j:j + 25]
            for host_id, summary in _make(engine, queries.documents(engine, chunk, 25), t).items():
                if summary is None:
                    out["bad"] += 1
                    if len(_UNREADABLE) < 10000:
                        _UNREADABLE.add([x for x in chunk if x["host_id"] == host_id][0]["latest_report_id"])
                else:
                    out["made"] += 1
        last = ids[-1]
        if time.monotonic() - start > budget:
            out["next"] = last
            return out


_UNREADABLE = set()  # report ids refresh could not read (this process does not try them again)


def _check(engine, part, t, texts=True):
    """({host_id: kept summary}, [host whose summary is to be made]) for a batch of hosts; with
    ``texts`` False the kept summaries are not read, only whether they match."""
    from scanner.server.store.verdicts import level_verdicts, live_levels
    hp, r = db.host_papers, db.reports
    ids = [x["host_id"] for x in part]
    with engine.connect() as conn:
        cols = [hp.c.host_id, hp.c.report_id, hp.c.level, hp.c.stamp] + ([hp.c.summary] if texts else [])
        kept = dict((x[0], x[1:]) for x in conn.execute(select(*cols).where(hp.c.host_id.in_(ids))))
        reports = dict((x["id"], dict(x)) for x in conn.execute(
            select(r.c.id, r.c.evaluated_at, r.c.pruned_at)
            .where(r.c.id.in_([x["latest_report_id"] for x in part]))).mappings())
        by_level = {}
        for host in part:
            k = kept.get(host["host_id"])
            if k is not None and k[0] == host["latest_report_id"] and k[1]:
                by_level.setdefault(k[1], {})[host["host_id"]] = host["org_path"]
        verdict_ids = {}
        live = set(live_levels(conn, t)) if by_level else set()
        for level, orgs in by_level.items():
            if level in live:
                for (host_id, _item), v in level_verdicts(conn, level, orgs, t).items():
                    verdict_ids.setdefault(host_id, []).append(v["id"])
    got, misses = {}, []
    for host in part:
        k, report = kept.get(host["host_id"]), reports.get(host["latest_report_id"])
        summary = None
        if k is not None and report is not None and k[0] == report["id"] and \
                k[2] == stamp(report, k[1], sorted(verdict_ids.get(host["host_id"], ()))):
            summary = _kept(k[3]) if texts else True
        if summary is None:
            misses.append(host)
        else:
            got[host["host_id"]] = summary
    return got, misses


def _make(engine, rows, t):
    """{host_id: summary or None} for rows of store/queries.py ``documents``; the summaries made are kept."""
    out, keep = {}, []
    for row in rows:
        summary = None
        if row["doc"] is not None:
            try:
                summary = summarize(row["doc"])
            except Exception:  # noqa: BLE001 - one bad report never stops the roll-up
                summary = None
        out[row["host_id"]] = summary
        if summary is not None and row["report"] is not None:
            keep.append({"host_id": row["host_id"], "report_id": row["report"]["id"], "level": row["level"],
                         "stamp": stamp(row["report"], row["level"], row["verdict_ids"]),
                         "summary": json.dumps(summary, ensure_ascii=False, separators=(",", ":")), "made_at": t})
        if len(keep) >= 25:
            _keep(engine, keep)
            keep = []
    _keep(engine, keep)
    return out


def _keep(engine, rows):
    """Write summaries (one row per host, replaced); a failed write is logged, the page still served."""
    if not rows:
        return
    rows = sorted(rows, key=lambda x: x["host_id"])  # one order for every writer (a page, the job): no deadlock
    hp = db.host_papers
    try:
        with db.write_tx(engine) as conn:
            if conn.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            q = insert(hp)
            conn.execute(q.on_conflict_do_update(index_elements=[hp.c.host_id], set_={
                c: q.excluded[c] for c in ("report_id", "level", "stamp", "summary", "made_at")}), rows)
    except Exception:  # noqa: BLE001 - a summary not kept is made again next time
        log.exception("keeping %d working-paper summaries failed", len(rows))
