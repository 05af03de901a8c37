"""Daily roll-ups: the fleet's state as of the end of each past day, per org unit and profile.

A host's state on day D is its newest report collected before the end of D (and at most
``STATE_WINDOW`` days before it: a host silent for longer is not part of that day's fleet). The
roll-up keeps, per (day, org unit, profile), the number of hosts, the sum and count of their
scores and of their localization rates, so a trend over any org subtree is a sum over a few
rows instead of a scan of the report history.

Past days are computed once, on the first trend that needs them, by whichever server node gets
there first: on PostgreSQL under a transaction-level advisory lock (the others wait, then find
the days done), on SQLite inside the write transaction. A report that arrives late for a day
already rolled up (a spool backlog) deletes the roll-ups from its day on (intake/batch.py); they
are recomputed the next time, and re-evaluating stored reports (service.reevaluate) does the same
for the days of the reports it changed, then recomputes them. Retiring a host subtracts its state
from every stored day (``forget_host``): a retired host is in no day's fleet. Today is not
stored: the trend's last point is the latest state.

The same job keeps ``daily_loc``: per (day, org unit, component category) the domestic, foreign and
unknown components of the hosts' inventory that day (a host's newest report of any profile in the
window, its per-category counts kept in ``reports.loc_cats`` at intake; reports stored before
migration 0016 have none and count in no day), so the 信创 page shows each category's trend
(store/localization.py ``trend``).
"""
from __future__ import annotations

from sqlalchemy import delete, select, text

from scanner.server.store import db
from scanner.server.store.jsondoc import decode
from scanner.server.util import now

DAY = 86400
STATE_WINDOW = 7  # days
LOCK_KEY = 0x78637363616E0001  # pg advisory lock id: "xcscan" + job 1

_COMPUTE = """
INSERT INTO daily_rollups (day, org_path, profile, hosts, score_sum, scored, loc_sum, loc_n)
SELECT :day, h.org_path, x.profile, count(*), sum(x.score), count(x.score), sum(x.loc_rate), count(x.loc_rate)
FROM (SELECT r.host_id, r.profile, r.score, r.loc_rate,
             row_number() OVER (PARTITION BY r.host_id, r.profile ORDER BY r.collected_at DESC, r.id DESC) AS k
      FROM reports r
      WHERE r.collected_at >= :start AND r.collected_at < :end AND r.profile IS NOT NULL) x
JOIN hosts h ON h.id = x.host_id
WHERE x.k = 1 AND h.retired_at IS NULL
GROUP BY h.org_path, x.profile
"""


def today():
    return now() // DAY


def missing_days(conn, first, last):
    marks = {row[0] for row in conn.execute(select(db.rollup_days.c.day).where(
        db.rollup_days.c.day >= first, db.rollup_days.c.day <= last))}
    return [d for d in range(first, last + 1) if d not in marks]


_LOC_STATES = """
SELECT h.org_path, x.loc_cats
FROM (SELECT r.host_id, r.loc_cats,
             row_number() OVER (PARTITION BY r.host_id ORDER BY r.collected_at DESC, r.id DESC) AS k
      FROM reports r
      WHERE r.collected_at >= :start AND r.collected_at < :end) x
JOIN hosts h ON h.id = x.host_id
WHERE x.k = 1 AND h.retired_at IS NULL AND x.loc_cats IS NOT NULL
"""


def _loc_counts(value):
    """{category: (domestic, foreign, unknown)} of a reports.loc_cats value; {} when unreadable."""
    try:
        got = decode(value, {})
    except Exception:  # noqa: BLE001 - a damaged value counts nothing
        return {}
    out = {}
    for cat, v in (got.items() if isinstance(got, dict) else ()):
        if isinstance(cat, str) and isinstance(v, list) and len(v) == 3 and all(
                isinstance(n, int) and not isinstance(n, bool) for n in v):
            out[cat] = tuple(v)
    return out


def compute_day(conn, day):
    """(Re)compute the roll-up rows of ``day`` (a unix day number) in the caller's transaction."""
    conn.execute(delete(db.daily_rollups).where(db.daily_rollups.c.day == day))
    conn.execute(delete(db.daily_loc).where(db.daily_loc.c.day == day))
    conn.execute(delete(db.rollup_days).where(db.rollup_days.c.day == day))
    end = (day + 1) * DAY
    conn.execute(text(_COMPUTE), {"day": day, "start": end - STATE_WINDOW * DAY, "end": end})
    cells, decoded = {}, {}  # hosts alike in make-up share the text: each decoded once
    for org_path, value in conn.execute(text(_LOC_STATES), {"start": end - STATE_WINDOW * DAY, "end": end}):
        got = decoded.get(value)
        if got is None:
            got = decoded[value] = _loc_counts(value)
        for cat, counts in got.items():
            cell = cells.setdefault((org_path, cat), [0, 0, 0, 0])
            cell[0] += 1
            for i in range(3):
                cell[i + 1] += counts[i]
    if cells:
        conn.execute(db.daily_loc.insert(), [
            {"day": day, "org_path": k[0], "category": k[1], "hosts": v[0], "n_domestic": v[1], "n_foreign": v[2],
             "n_unknown": v[3]} for k, v in sorted(cells.items())])
    conn.execute(db.rollup_days.insert().values(day=day, computed_at=now()))


def marks_query(days):
    """The computed days among the ``days`` days before today (rows for ``ensure``'s ``marks``)."""
    last = today() - 1
    return select(db.rollup_days.c.day).where(db.rollup_days.c.day >= last - days + 1, db.rollup_days.c.day <= last)


def ensure(engine, days, marks=None):
    """Make sure the roll-ups of the ``days`` days before today exist; return how many were computed.
    ``marks``: ``marks_query``'s rows when the caller has read them."""
    last = today() - 1
    first = last - days + 1
    if marks is not None:
        if not set(range(first, last + 1)) - {row[0] for row in marks}:
            return 0
    else:
        with engine.connect() as conn:
            if not missing_days(conn, first, last):
                return 0
    with db.write_tx(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        todo = missing_days(conn, first, last)  # another node may have done them meanwhile
        for day in todo:
            compute_day(conn, day)
    return len(todo)


_FORGET = """
WITH x AS (
  SELECT d.day, r.profile, r.score, r.loc_rate,
         row_number() OVER (PARTITION BY d.day, r.profile ORDER BY r.collected_at DESC, r.id DESC) AS k
  FROM rollup_days d JOIN reports r
    ON r.host_id = :host AND r.profile IS NOT NULL
   AND r.collected_at >= (d.day + 1) * 86400 - :window AND r.collected_at < (d.day + 1) * 86400)
UPDATE daily_rollups
SET hosts = daily_rollups.hosts - 1,
    score_sum = coalesce(daily_rollups.score_sum, 0) - coalesce(x.score, 0),
    scored = daily_rollups.scored - CASE WHEN x.score IS NULL THEN 0 ELSE 1 END,
    loc_sum = coalesce(daily_rollups.loc_sum, 0) - coalesce(x.loc_rate, 0),
    loc_n = daily_rollups.loc_n - CASE WHEN x.loc_rate IS NULL THEN 0 ELSE 1 END
FROM x
WHERE x.k = 1 AND daily_rollups.day = x.day AND daily_rollups.profile = x.profile AND daily_rollups.org_path = :org
"""


_FORGET_LOC = """
SELECT x.day, x.loc_cats FROM (
  SELECT d.day, r.loc_cats,
         row_number() OVER (PARTITION BY d.day ORDER BY r.collected_at DESC, r.id DESC) AS k
  FROM rollup_days d JOIN reports r
    ON r.host_id = :host
   AND r.collected_at >= (d.day + 1) * 86400 - :window AND r.collected_at < (d.day + 1) * 86400) x
WHERE x.k = 1 AND x.loc_cats IS NOT NULL
"""


def forget_host(conn, host_id, org_path):
    """A host is retired: take it out of every stored day (its state on each day, as ``compute_day``
    counted it), in the caller's transaction, so the stored days equal a recomputation without it
    (a retired host is in no day's fleet) and nothing has to be recomputed."""
    params = {"host": host_id, "org": org_path, "window": STATE_WINDOW * DAY}
    conn.execute(text(_FORGET), params)
    dl = db.daily_loc
    subtract = []
    for day, value in conn.execute(text(_FORGET_LOC), params).all():
        for cat, (d, f, u) in sorted(_loc_counts(value).items()):
            subtract.append({"k_day": day, "k_cat": cat, "d": d, "f": f, "u": u})
    if subtract:
        from sqlalchemy import bindparam
        conn.execute(dl.update().where(dl.c.day == bindparam("k_day"), dl.c.org_path == org_path,
                                       dl.c.category == bindparam("k_cat"))
                     .values(hosts=dl.c.hosts - 1, n_domestic=dl.c.n_domestic - bindparam("d"),
                             n_foreign=dl.c.n_foreign - bindparam("f"), n_unknown=dl.c.n_unknown - bindparam("u")),
                     subtract)


INVALIDATED = (db.daily_rollups, db.daily_loc, db.rollup_days)  # what invalidate_from deletes (intake/batch.py too)


def invalidate_from(conn, day):
    """A report collected on ``day`` arrived after that day was rolled up: drop it and later days."""
    if day < today():
        for table in INVALIDATED:
            conn.execute(delete(table).where(table.c.day >= day))
