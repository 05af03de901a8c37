"""The officer's first screen: the worst hosts of a scope (issue #15 item 6, "worst hosts first, by
failing severity-weighted count in their main profile").

Each host is ranked in its *own* main profile: the profile it is assessed against with the most rules
(passed + failed + errors + other of its latest report; a tie goes to the newer report, then to the
smaller profile name). A department whose systems are graded at level 2 (mlps-l2) beside others at
level 3 (mlps-l3) thus sees its worst hosts of both levels in one list; before, only the hosts of the
profile most hosts of the scope use were ranked, and a host scanned with another profile never
showed, however badly it failed. A host's weight is the sum of the severity weights of its failing
results in that profile after central waivers (manual results an assessor recorded 不符合 count too,
部分符合 half), as queries.worst_hosts computes it for one profile; ranked from the weights kept per
host profile (host_profiles.fail_weight/waived_weight), the few profiles whose waivers partly expired
recounted from their results."""
from __future__ import annotations

from sqlalchemy import and_, case, exists, func, or_, select

from scanner.server.store import db
from scanner.server.store.queries import (_add_recorded_failures, _in_scope, _partly_expired, _where,
                                          apply_central_waivers, status_filter, waived_case)
from scanner.server.util import now


def main_profile_cond():
    """SQL on host_profiles: this row is its host's main profile (no other profile of the host has
    more rules, or as many and a newer report, or as many, as new and a smaller name)."""
    hp = db.host_profiles
    b = hp.alias("main_b")
    n_hp = hp.c.passed + hp.c.failed + hp.c.errors + hp.c.other
    n_b = b.c.passed + b.c.failed + b.c.errors + b.c.other
    better = or_(n_b > n_hp, and_(n_b == n_hp, or_(b.c.collected_at > hp.c.collected_at, and_(
        b.c.collected_at == hp.c.collected_at, b.c.profile < hp.c.profile))))
    return ~exists().where(b.c.host_id == hp.c.host_id, better)


def main_profiles(conn, host_ids):
    """{host_id: main profile} of ``host_ids``."""
    hp = db.host_profiles
    out = {}
    ids = sorted(set(host_ids))
    for i in range(0, len(ids), 500):
        out.update(conn.execute(select(hp.c.host_id, hp.c.profile).where(hp.c.host_id.in_(ids[i:i + 500]),
                                                                         main_profile_cond())).all())
    return out


def worst_hosts(conn, scope, org=None, limit=10):
    """The hosts with the heaviest failures in their main profiles, heaviest first, each with its
    profile, weight, failed count, failures per severity (as reported) and score."""
    from scanner.engine.evaluator import WEIGHTS as weights
    from scanner.server.store import verdicts as recorded
    t = now()
    r, h, hp = db.results, db.hosts, db.host_profiles
    full = waived_case(t)
    weight = (hp.c.fail_weight - case((full, hp.c.waived_weight), else_=0)).label("weight")
    failed = (hp.c.failed - case((full, hp.c.waived_n), else_=0)).label("failed")
    base = list(_in_scope(scope, h.c.org_path, org)) + [h.c.retired_at.is_(None), main_profile_cond()]
    joined = hp.join(h, h.c.id == hp.c.host_id)
    top, profile_of = {}, {}
    for hid, profile, w, n in conn.execute(_where(
            select(hp.c.host_id, hp.c.profile, weight, failed).select_from(joined).where(~_partly_expired(t), failed > 0),
            *base).order_by(weight.desc(), failed.desc(), hp.c.host_id).limit(limit)):
        top[hid] = [int(w or 0), int(n)]
        profile_of[hid] = profile
    partial = {}
    for hid, profile in conn.execute(_where(select(hp.c.host_id, hp.c.profile).select_from(joined)
                                            .where(_partly_expired(t)), *base)):
        partial.setdefault(profile, []).append(hid)
    for profile, ids in sorted(partial.items()):
        for i in range(0, len(ids), 500):
            counted = {}
            for hid, sev in conn.execute(_where(select(r.c.host_id, r.c.severity).where(
                    r.c.host_id.in_(ids[i:i + 500]), r.c.profile == profile), status_filter(["fail"], t))):
                w, n = counted.get(hid, (0, 0))
                counted[hid] = (w + weights.get(sev, 2), n + 1)
            for hid, (w, n) in counted.items():
                top[hid] = [int(w), int(n)]
                profile_of[hid] = profile
    # recorded verdicts, per level (profile): only for the hosts whose main profile it is
    levels, touched = recorded.touched_hosts(conn)
    for level in levels if touched is not None else ():
        sub = {hid: list(v) for hid, v in top.items() if profile_of[hid] == level}
        _add_recorded_failures(conn, scope, org, level, sub, limit)
        mains = main_profiles(conn, [hid for hid in sub if hid not in profile_of])
        for hid, v in sub.items():
            if profile_of.get(hid, mains.get(hid)) == level:
                top[hid] = v
                profile_of[hid] = level
    if not top:
        return []
    ranked = sorted(top.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:limit]
    ids = [hid for hid, _v in ranked]
    names = {x[0]: (x[1], x[2]) for x in conn.execute(select(h.c.id, h.c.hostname, h.c.org_path).where(h.c.id.in_(ids)))}
    sev = {}
    rows = []
    by_profile = {}
    for hid in ids:
        by_profile.setdefault(profile_of[hid], []).append(hid)
    for profile, hids in sorted(by_profile.items()):
        for hid, severity, n in conn.execute(_where(select(r.c.host_id, r.c.severity, func.count()).where(
                r.c.host_id.in_(hids), r.c.profile == profile), status_filter(["fail"], t))
                .group_by(r.c.host_id, r.c.severity)):
            sev.setdefault(hid, {})[severity] = n
        rows.extend(dict(x) for x in conn.execute(select(hp.c.host_id, hp.c.profile, hp.c.score, hp.c.failed).where(
            hp.c.host_id.in_(hids), hp.c.profile == profile)).mappings())
    scores = {x["host_id"]: x["score"] for x in apply_central_waivers(conn, rows, h.c.id.in_(ids))}
    return [{"host_id": hid, "hostname": names.get(hid, (None, None))[0], "org_path": names.get(hid, (None, None))[1],
             "profile": profile_of[hid], "weight": w, "failed": int(n), "by_severity": sev.get(hid, {}),
             "score": scores.get(hid)} for hid, (w, n) in ranked]
