"""Retiring a host: a decommissioned server (or one whose agent key is compromised) leaves the
fleet views, its reports are refused from then on, and its history stays for the audit trail."""
from __future__ import annotations

from sqlalchemy import delete, select, update

from scanner.server.store import aggregates, db, rollups
from scanner.server.errors import ApiError, bad_request, not_found
from scanner.server.store.audit import audit
from scanner.server.store.scope import check
from scanner.server.util import clean_text, now


def retire_host(engine, host_id, reason, actor, ip=None, *, scope):
    """Only a host inside ``scope`` (404 for any other, as if it did not exist)."""
    check(scope)
    reason = clean_text(reason, 255)
    if not reason or not reason.strip():
        raise bad_request("bad_reason", "say why the host is retired (e.g. decommissioned, key compromised)")
    h = db.hosts
    t = now()
    with db.write_tx(engine) as conn:
        # the row lock orders this against a report being stored for the host (batch.py locks it too)
        row = conn.execute(select(h.c.id, h.c.hostname, h.c.retired_at, h.c.org_path).where(h.c.id == host_id)
                           .with_for_update()).first()
        if row is None or not scope.covers(row.org_path):
            raise not_found("no host %s" % host_id)
        if row.retired_at is not None:
            raise ApiError(409, "already_retired", "host %s was retired already" % host_id)
        aggregates.adjust_orgs(conn, [host_id], -1)  # out of the org sums (they count live hosts)
        conn.execute(update(h).where(h.c.id == host_id).values(retired_at=t, retired_by=actor, retire_reason=reason))
        aggregates.adjust_hosts(conn, [host_id], -1)  # its latest state leaves the maintained counts with it
        aggregates.adjust_components(conn, [host_id], -1)
        rollups.forget_host(conn, host_id, row.org_path)  # out of the past days' roll-ups too
        for table in (db.components, db.host_profiles, db.results):  # latest state: fleet views only
            conn.execute(delete(table).where(table.c.host_id == host_id))
        audit(conn, actor, "host.retire", host_id, {"hostname": row.hostname, "reason": reason}, ip, org=row.org_path)
    return {"host_id": host_id, "retired_at": t, "retired_by": actor, "reason": reason}
