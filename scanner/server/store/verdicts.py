"""Recorded verdicts (workflow/assessments.py) in scores and in the rendered working paper.

An assessor records 符合 / 部分符合 / 不符合 / 不适用 for a manual or partial GB/T 28448 item of a level
(rules/controls/<level>.yaml) on a host or an org subtree. That verdict decides the item's manual
parts — the results of the item's rules that the host reported as ``manual`` (a person must judge
them) — for the host profile whose controls are that level (profile ``mlps-l3`` ↔ level ``mlps-l3``):

==============  ========================  ======================================================
recorded        a manual part counts as    in the working paper (scanner/render/assessment.py)
==============  ========================  ======================================================
符合 conform     pass                       satisfied part
部分符合 partial  half a pass (half weight)  a part both satisfied and failed
不符合 nonconform fail                       failed part
不适用           left out, like not_applicable  excluded part
==============  ========================  ======================================================

The score is the agent's severity-weighted formula (scanner/engine/evaluator.py ``score``) over
the results with central waivers and these verdicts applied; ``score_without_waivers`` stays the
one the agent reported (no waivers, no recorded verdicts). A rule listed by two items with
different verdicts takes the worse one. An item none of whose parts the host reported as manual
(a partial item decided by rules alone) gets its recorded verdict as a part of its own in the
paper. Verdicts are read against the clock: a lapsed or revoked one stops counting without a job."""
from __future__ import annotations

from sqlalchemy import select

from scanner.server.store import db
from scanner.server.store.coverage import ASSESSABLE, level_items, valid_verdicts
from scanner.server.util import now

PART = {"conform": "pass", "partial": "partial", "nonconform": "fail", "not_applicable": "not_applicable"}
_WORST = ("nonconform", "partial", "conform", "not_applicable")


def live_levels(conn, t=None):
    """The levels with at least one valid, not revoked verdict (a small, indexed read)."""
    a = db.assessments
    t = now() if t is None else t
    return sorted(x[0] for x in conn.execute(select(a.c.level).distinct()
                                             .where(a.c.revoked_at.is_(None), a.c.valid_until > t)))


def _level_rules(level):
    """{rule_id: [item_id]} for the manual and partial items of a level."""
    out = {}
    for item_id, item in level_items(level).items():
        if item.get("status") in ASSESSABLE:
            for rid in item.get("rules") or ():
                out.setdefault(rid, []).append(item_id)
    return out


def rule_verdicts(conn, orgs, levels=None, t=None):
    """{(host_id, level): {rule_id: verdict row}} for hosts {host_id: org_path}: the verdict that
    decides each manual rule of the level on the host (the worse one when two items list the rule)."""
    t = now() if t is None else t
    levels = live_levels(conn, t) if levels is None else levels
    out = {}
    for level in levels:
        try:
            rules = _level_rules(level)
        except Exception:  # noqa: BLE001 - verdicts of a level this version no longer ships count nowhere
            continue
        by_item = valid_verdicts(conn, level, orgs, t)
        if not by_item:
            continue
        for rid, item_ids in rules.items():
            for item_id in item_ids:
                for host_id in orgs:
                    v = by_item.get((host_id, item_id))
                    if v is None:
                        continue
                    mine = out.setdefault((host_id, level), {})
                    old = mine.get(rid)
                    if old is None or _WORST.index(v["verdict"]) < _WORST.index(old["verdict"]):
                        mine[rid] = v
    return out


def touched_query(t):
    """The valid verdicts' (level, target kind, target), for ``touched_hosts``."""
    a = db.assessments
    return select(a.c.level, a.c.target_kind, a.c.target).distinct().where(a.c.revoked_at.is_(None), a.c.valid_until > t)


def touched_hosts(conn, t=None, rows=None):
    """(levels, condition on hosts) selecting the hosts a valid verdict may apply to: the host
    targets and the hosts at or below an org target; (levels, None) when there are none.
    ``rows``: ``touched_query``'s rows when the caller has read them already."""
    from sqlalchemy import or_
    t = now() if t is None else t
    h = db.hosts
    if rows is None:
        rows = conn.execute(touched_query(t)).all()
    if not rows:
        return [], None
    levels = sorted({r[0] for r in rows})
    host_ids = sorted({r[2] for r in rows if r[1] == "host"})
    orgs = sorted({r[2] for r in rows if r[1] == "org"})
    conds = []
    if host_ids:
        conds.append(h.c.id.in_(host_ids))
    for org in orgs:
        if org == "/":
            conds.append(h.c.org_path.is_not(None))
        else:
            escaped = org.replace("%", r"\%").replace("_", r"\_")
            conds.append(or_(h.c.org_path == org, h.c.org_path.like(escaped + "/%", escape="\\")))
    return levels, or_(*conds)


def weighted_score(results):
    """The agent's score (severity-weighted share of passes among passes and failures) with a
    recorded 部分符合 counting half its weight as passed."""
    from scanner.engine.evaluator import WEIGHTS
    got = total = 0.0
    for r in results:
        w = WEIGHTS.get(r["severity"], 2)
        st = r["status"]
        if st == "waived":
            st = "pass"
        if st not in ("pass", "fail", "partial") or not w:
            continue
        total += w
        if st == "pass":
            got += w
        elif st == "partial":
            got += w / 2.0
    return round(100.0 * got / total, 1) if total else None


# ------------------------------------------------------------------ the working paper
def _manual_entry(row):
    entry = {"verdict": PART[row["verdict"]], "by": row["assessor"],
             "at": _day(row["created_at"]), "note": row["record"][:1000],
             "assessment_id": row["id"], "recorded": row["verdict"], "valid_until": row["valid_until"]}
    return entry


def _day(ts):
    import time
    return time.strftime("%Y-%m-%d", time.gmtime(int(ts)))


def _level_of(doc):
    summary = doc.get("summary") if isinstance(doc, dict) and isinstance(doc.get("summary"), dict) else None
    cov = summary.get("coverage") if summary else None
    level = cov.get("level") if isinstance(cov, dict) else None
    return level if isinstance(level, str) and isinstance(doc.get("results"), list) else None


def apply_to_documents(conn, rows, t=None):
    """``apply_to_document`` for many rows {host_id, org_path, doc} (one verdict read per level). Each
    row gets ``level`` (the document's coverage level, or None) and ``verdict_ids`` (the ids of the
    valid verdicts of that level for the host, sorted: what the document was judged with, the key of a
    kept summary in store/paper_summaries.py)."""
    t = now() if t is None else t
    by_level = {}
    for row in rows:
        level = _level_of(row.get("doc"))
        row["level"], row["verdict_ids"] = level, []
        if level:
            by_level.setdefault(level, []).append(row)
    for level, group in by_level.items():
        by_item = level_verdicts(conn, level, {x["host_id"]: x["org_path"] for x in group}, t)
        for x in group:
            mine = {k: v for k, v in by_item.items() if k[0] == x["host_id"]}
            x["verdict_ids"] = sorted(v["id"] for v in mine.values())
            if mine:
                apply_to_document(conn, x["doc"], x["host_id"], x["org_path"], t, by_item=mine)


def level_verdicts(conn, level, orgs, t):
    """``valid_verdicts`` of a level this server knows ({} for another: its verdicts count nowhere)."""
    try:
        level_items(level)
    except Exception:  # noqa: BLE001 - a level this server does not know
        return {}
    return valid_verdicts(conn, level, orgs, t)


def apply_to_document(conn, doc, host_id, org_path, t=None, by_item=None):
    """Put the valid recorded verdicts for the host on a report document (in place) before it is
    rendered: each manual part of an item with a verdict gets ``manual_verdict`` {verdict, by, at,
    note, ...}; an item with a verdict but no manual part gets one part of its own (rule id
    ``assessment.<item>``, refs.gbt28448 the item). Only for a report whose coverage level has
    verdicts. Returns how many parts were decided (0: the document is unchanged)."""
    level = _level_of(doc)
    if level is None:
        return 0
    t = now() if t is None else t
    try:
        items = level_items(level)
    except Exception:  # noqa: BLE001 - a report of a level this server does not know
        return 0
    if by_item is None:
        by_item = valid_verdicts(conn, level, {host_id: org_path}, t)
    if not by_item:
        return 0
    results = [r for r in doc["results"] if isinstance(r, dict)]
    by_rule = {}
    for r in results:
        by_rule.setdefault(r.get("rule_id"), []).append(r)
    decided = 0
    for (hid, item_id), row in sorted(by_item.items(), key=lambda kv: kv[0][1]):
        item = items.get(item_id)
        if item is None or item.get("status") not in ASSESSABLE:
            continue
        manual = [r for rid in item.get("rules") or () for r in by_rule.get(rid, ()) if r.get("status") == "manual"]
        if not manual:
            doc["results"].append(_own_part(item, row))
            decided += 1
            continue
        for r in manual:
            old = r.get("manual_verdict") if isinstance(r.get("manual_verdict"), dict) else None
            if old and old.get("recorded") and _WORST.index(old["recorded"]) <= _WORST.index(row["verdict"]):
                continue  # listed by two items: the worse verdict stands
            r["manual_verdict"] = _manual_entry(row)
            decided += 1
    if decided:
        from scanner.render.assessment import annotate
        annotate(doc)
    return decided


def _own_part(item, row):
    title = item.get("title") if isinstance(item.get("title"), dict) else {"zh": item.get("id"), "en": item.get("id")}
    return {"rule_id": "assessment.%s" % item["id"], "title": title, "category": "baseline", "severity": "medium",
            "status": "manual", "refs": {"gbt28448": item["id"]}, "expected": None, "actual": None, "evidence": None,
            "items": [], "remediation": None, "waiver": None, "manual_verdict": _manual_entry(row)}
