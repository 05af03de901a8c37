"""信创 targets: per org unit and component category, the localization rate to reach by a deadline
(e.g. /gov/finance, os, 100 % by 2027-06-30). Set (or replaced) and removed by admins and officers
inside their own org subtrees; every change is audited. The rate of the subtree when a target is
set is kept as its baseline, so the progress view can project the rate at the deadline."""
from __future__ import annotations

from sqlalchemy import delete, insert, select, update

from scanner.server.errors import bad_request, forbidden, not_found
from scanner.server.store import db
from scanner.server.store.audit import audit
from scanner.server.store.localization import CATEGORIES, subtree_rate
from scanner.server.store.scope import check
from scanner.server.util import clean_text, normalise_org, now

TARGET_ROLES = ("admin", "officer")


def set_target(engine, data, actor, ip=None, *, scope, role):
    """Create or replace the target of (org, category); returns it."""
    check(scope)
    if role not in TARGET_ROLES:
        raise forbidden("forbidden", "your role (%s) may not set localization targets" % role)
    org = normalise_org(data.get("org")) if isinstance(data.get("org"), str) else None
    if org is None:
        raise bad_request("bad_org", "org must be an org path such as /gov/finance")
    if not scope.covers(org):
        raise forbidden("org_outside_scope", "you may only set targets inside your own org subtrees (%s)"
                        % ", ".join(scope.orgs))
    category = data.get("category")
    if category not in CATEGORIES:
        raise bad_request("bad_category", "category must be one of %s" % ", ".join(CATEGORIES))
    rate = data.get("target")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
        raise bad_request("bad_target", "target must be a rate above 0 and at most 1 (1 = 100 %)")
    deadline = data.get("deadline")
    t = now()
    if isinstance(deadline, bool) or not isinstance(deadline, int) or not t < deadline <= t + 20 * 366 * 86400:
        raise bad_request("bad_deadline", "deadline must be a date in the future (at most 20 years ahead)")
    note = clean_text(data.get("note"), 1000) or None
    d, f, _u = _rate_now(engine, scope, org, category)
    baseline = round(d / float(d + f), 4) if d + f else None
    tt = db.loc_targets
    with db.write_tx(engine) as conn:
        old = conn.execute(select(tt.c.id).where(tt.c.org_path == org, tt.c.category == category)).scalar()
        values = dict(target_rate=float(rate), deadline=deadline, baseline_rate=baseline, set_by=actor, set_at=t,
                      note=note)
        if old is None:
            tid = conn.execute(insert(tt).values(org_path=org, category=category, **values)).inserted_primary_key[0]
        else:
            tid = old
            conn.execute(update(tt).where(tt.c.id == tid).values(**values))
        audit(conn, actor, "target.set", "%s %s" % (org, category),
              {"id": tid, "target": float(rate), "deadline": deadline, "baseline": baseline, "replaced": old is not None},
              ip, org=org)
    return get_target(engine, tid, scope=scope)


def _rate_now(engine, scope, org, category):
    with engine.connect() as conn:
        return subtree_rate(conn, scope, org, category)


def get_target(engine, tid, *, scope):
    check(scope)
    tt = db.loc_targets
    with engine.connect() as conn:
        row = conn.execute(select(tt).where(tt.c.id == tid)).mappings().first()
    if row is None or not scope.covers(row["org_path"]):
        raise not_found("no target %s" % tid)
    return dict(row)


def delete_target(engine, tid, actor, ip=None, *, scope, role):
    check(scope)
    if role not in TARGET_ROLES:
        raise forbidden("forbidden", "your role (%s) may not remove localization targets" % role)
    tt = db.loc_targets
    with db.write_tx(engine) as conn:
        row = conn.execute(select(tt).where(tt.c.id == tid)).mappings().first()
        if row is None or not scope.covers(row["org_path"]):
            raise not_found("no target %s" % tid)
        conn.execute(delete(tt).where(tt.c.id == tid))
        audit(conn, actor, "target.delete", "%s %s" % (row["org_path"], row["category"]), {"id": tid}, ip,
              org=row["org_path"])
    return dict(row)
