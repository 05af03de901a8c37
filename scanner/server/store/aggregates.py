"""Maintained aggregates of the latest results, so that fleet pages sum a few thousand rows instead
of counting a million result rows per request (10,000 hosts x ~160 rules).

- ``result_counts``: latest result rows per (org unit, profile, rule, severity, category, reported
  status, waiver_until): the findings totals and a rule's hosts per status.
- ``component_counts``: latest inventory components per (org unit, category, origin): the
  localization bars.
- ``org_hosts``, ``org_profiles`` (db.py): live hosts and host profiles per org unit, the scores
  with and without central waivers: the overview's totals, the org tree, scores per profile.
- ``rule_failing``: hosts failing a rule (in any of their profiles) per (org unit, rule,
  covered_until, severity): ``covered_until`` is 0 when one of the host's failures of the rule is
  not covered by a central waiver, else the earliest expiry among the waivers covering them. At
  time ``t`` the host fails the rule when ``covered_until <= t`` and is waived for it otherwise, so
  an expiring waiver needs no job (the same rule as queries.status_filter). ``severity``: the most
  severe of the host's failures of the rule ('' none), so "top failing rules" ranks by severity
  from these rows alone.

Both are kept in the transaction of every write of latest result rows, and only by this module:
intake (intake/batch.py) passes the deltas of the rows it changed (``Delta``, computed in Python
from the rows it read anyway); the rare writers (retiring a host, re-evaluation, waiver decisions)
subtract a host's contribution before and add it after (``adjust_hosts``, in SQL), or recompute a
rule (``rebuild_rule``). ``rebuild`` recomputes everything (the migration; ``check`` compares it
with the maintained rows). Rows whose count fell to 0 stay (harmless, bounded by the keys) until
the next rebuild. Concurrent writers add to the same counters with ``INSERT .. ON CONFLICT DO
UPDATE SET n = n + excluded.n`` in key order: they queue on the row, no update is lost.
"""
from __future__ import annotations

import collections

from sqlalchemy import bindparam, text

RC_KEYS = ("org_path", "profile", "rule_id", "severity", "category", "status", "waiver_until")
RF_KEYS = ("org_path", "rule_id", "covered_until", "severity")
SEVERITY_RANK = (("critical", 0), ("high", 1), ("medium", 2), ("low", 3), ("info", 4))  # else 5

_RC_SELECT = """
SELECT h.org_path, r.profile, r.rule_id, coalesce(r.severity, ''), coalesce(r.category, ''), r.status,
       coalesce(r.waiver_until, 0), {sign} count(*)
FROM results r JOIN hosts h ON h.id = r.host_id
WHERE {cond}
GROUP BY h.org_path, r.profile, r.rule_id, coalesce(r.severity, ''), coalesce(r.category, ''), r.status,
         coalesce(r.waiver_until, 0)
"""
# the most severe severity: the least of rank digit || severity (worst_severity in Python)
_SEV_KEY = "CASE r.severity %s ELSE '5' END || coalesce(r.severity, '')" % " ".join(
    "WHEN '%s' THEN '%d'" % kv for kv in SEVERITY_RANK)
_RF_SELECT = """
SELECT h.org_path, x.rule_id, x.u, substr(x.s, 2), {sign} count(*)
FROM (SELECT r.host_id, r.rule_id, min(coalesce(r.waiver_until, 0)) AS u, min(%s) AS s FROM results r
      WHERE r.status = 'fail' AND {cond} GROUP BY r.host_id, r.rule_id) x
JOIN hosts h ON h.id = x.host_id
WHERE 1 = 1
GROUP BY h.org_path, x.rule_id, x.u, substr(x.s, 2)
""" % _SEV_KEY
_CC_SELECT = """
SELECT h.org_path, c.category, c.origin, {sign} count(*)
FROM components c JOIN hosts h ON h.id = c.host_id
WHERE {cond}
GROUP BY h.org_path, c.category, c.origin
"""
_CC_UPSERT = ("INSERT INTO component_counts (org_path, category, origin, n) {select} "
              "ON CONFLICT (org_path, category, origin) DO UPDATE SET n = component_counts.n + excluded.n")
_RC_UPSERT = ("INSERT INTO result_counts (%s, n) {select} ON CONFLICT (%s) DO UPDATE SET n = result_counts.n + excluded.n"
              % (", ".join(RC_KEYS), ", ".join(RC_KEYS)))
_RF_UPSERT = ("INSERT INTO rule_failing (%s, hosts) {select} ON CONFLICT (%s) DO UPDATE "
              "SET hosts = rule_failing.hosts + excluded.hosts" % (", ".join(RF_KEYS), ", ".join(RF_KEYS)))


OH_COLS = ("hosts", "loc_domestic", "loc_foreign", "loc_unknown", "loc_sum", "loc_n")
_OH_SELECT = """
SELECT h.org_path, {s}count(*), {s}coalesce(sum(h.loc_domestic), 0), {s}coalesce(sum(h.loc_foreign), 0),
       {s}coalesce(sum(h.loc_unknown), 0),
       {s}coalesce(sum(CASE WHEN h.latest_collected IS NOT NULL THEN h.loc_rate END), 0),
       {s}count(CASE WHEN h.latest_collected IS NOT NULL THEN h.loc_rate END)
FROM hosts h
WHERE h.retired_at IS NULL AND {cond}
GROUP BY h.org_path
"""
OP_KEYS = ("org_path", "profile", "waived_min", "waived_max")
OP_COLS = ("hosts", "score_sum", "scored", "wscore_sum", "wscored", "failed", "waived_n", "passed", "raw_sum", "raw_n")
_OP_SELECT = """
SELECT h.org_path, hp.profile, coalesce(hp.waived_min, 0), coalesce(hp.waived_max, 0),
       {s}count(*), {s}coalesce(sum(hp.score), 0), {s}count(hp.score), {s}coalesce(sum(hp.waived_score), 0),
       {s}count(hp.waived_score), {s}coalesce(sum(hp.failed), 0), {s}coalesce(sum(hp.waived_n), 0),
       {s}coalesce(sum(hp.passed), 0), {s}coalesce(sum(hp.score_without_waivers), 0), {s}count(hp.score_without_waivers)
FROM host_profiles hp JOIN hosts h ON h.id = hp.host_id
WHERE h.retired_at IS NULL AND {cond}
GROUP BY h.org_path, hp.profile, coalesce(hp.waived_min, 0), coalesce(hp.waived_max, 0)
"""


def _upsert(table, keys, cols):
    return "INSERT INTO %s (%s) {select} ON CONFLICT (%s) DO UPDATE SET %s" % (
        table, ", ".join(keys + cols), ", ".join(keys),
        ", ".join("%s = %s.%s + excluded.%s" % (c, table, c, c) for c in cols))


_OH_UPSERT = _upsert("org_hosts", ("org_path",), OH_COLS)
_OP_UPSERT = _upsert("org_profiles", OP_KEYS, OP_COLS)


def adjust_orgs(conn, host_ids, sign, profiles=True):
    """Subtract (-1, before changing them) or add (+1, after) what the live hosts ``host_ids`` and
    (``profiles``) their host profiles contribute to org_hosts and org_profiles."""
    host_ids = sorted(set(host_ids))
    if not host_ids:
        return
    s = "" if sign > 0 else "-"
    pairs = [(_OH_UPSERT, _OH_SELECT.format(s=s, cond="h.id IN :hosts"))]
    if profiles:
        pairs.append((_OP_UPSERT, _OP_SELECT.format(s=s, cond="hp.host_id IN :hosts")))
    for i in range(0, len(host_ids), 500):
        for template, select in pairs:
            stmt = text(template.format(select=select)).bindparams(bindparam("hosts", expanding=True))
            conn.execute(stmt, {"hosts": host_ids[i:i + 500]})


def _add_from_results(conn, cond, params, sign, expanding=()):
    """Add (sign +1) or subtract (-1) the contribution of the result rows matching ``cond``."""
    s = "" if sign > 0 else "-"
    for template, select in ((_RC_UPSERT, _RC_SELECT), (_RF_UPSERT, _RF_SELECT)):
        stmt = text(template.format(select=select.format(sign=s, cond=cond)))
        if expanding:
            stmt = stmt.bindparams(*[bindparam(name, expanding=True) for name in expanding])
        conn.execute(stmt, params)


def adjust_components(conn, host_ids, sign):
    """Subtract (-1, before replacing them) or add (+1, after) the latest components of ``host_ids``
    in ``component_counts``."""
    host_ids = sorted(set(host_ids))
    if host_ids:
        stmt = text(_CC_UPSERT.format(select=_CC_SELECT.format(sign="" if sign > 0 else "-", cond="c.host_id IN :hosts")))
        conn.execute(stmt.bindparams(bindparam("hosts", expanding=True)), {"hosts": host_ids})


def adjust_hosts(conn, host_ids, sign):
    """Subtract (``sign`` -1, before changing their rows) or add (+1, after) what the latest results
    of ``host_ids`` contribute. Call both in the same transaction, around the change."""
    host_ids = sorted(set(host_ids))
    if host_ids:
        _add_from_results(conn, "r.host_id IN :hosts", {"hosts": host_ids}, sign, expanding=("hosts",))


def rebuild_rule(conn, rule_id):
    """Recompute the aggregates of one rule (after its waiver pointers were recomputed)."""
    conn.execute(text("DELETE FROM result_counts WHERE rule_id = :rule"), {"rule": rule_id})
    conn.execute(text("DELETE FROM rule_failing WHERE rule_id = :rule"), {"rule": rule_id})
    _add_from_results(conn, "r.rule_id = :rule", {"rule": rule_id}, +1)


def rebuild_failing(conn):
    """Recompute rule_failing from the latest results."""
    conn.execute(text("DELETE FROM rule_failing"))
    conn.execute(text(_RF_UPSERT.format(select=_RF_SELECT.format(sign="", cond="1 = 1"))))


def rebuild(conn, failing=True):
    """Recompute the aggregates from the latest results (``failing`` False: not rule_failing, whose
    key migration 0019 changed; migration 0013 counts it in its own shape)."""
    conn.execute(text("DELETE FROM result_counts"))
    conn.execute(text("DELETE FROM component_counts"))
    if failing:
        conn.execute(text("DELETE FROM rule_failing"))
        _add_from_results(conn, "1 = 1", {}, +1)
    else:
        conn.execute(text(_RC_UPSERT.format(select=_RC_SELECT.format(sign="", cond="1 = 1"))))
    conn.execute(text(_CC_UPSERT.format(select=_CC_SELECT.format(sign="", cond="1 = 1"))))
    rebuild_orgs(conn)


def rebuild_orgs(conn):
    conn.execute(text("DELETE FROM org_hosts"))
    conn.execute(text("DELETE FROM org_profiles"))
    conn.execute(text(_OH_UPSERT.format(select=_OH_SELECT.format(s="", cond="1 = 1"))))
    conn.execute(text(_OP_UPSERT.format(select=_OP_SELECT.format(s="", cond="1 = 1"))))


def snapshot(conn):
    """The maintained aggregates without their zero rows, one dict each."""
    rc = {tuple(r[:-1]): r[-1] for r in conn.execute(text(
        "SELECT %s, n FROM result_counts WHERE n <> 0" % ", ".join(RC_KEYS)))}
    rf = {tuple(r[:-1]): r[-1] for r in conn.execute(text(
        "SELECT %s, hosts FROM rule_failing WHERE hosts <> 0" % ", ".join(RF_KEYS)))}
    cc = {tuple(r[:-1]): r[-1] for r in conn.execute(text(
        "SELECT org_path, category, origin, n FROM component_counts WHERE n <> 0"))}

    def rounded(row):  # float sums kept by adding and subtracting: equal to a recount to 6 places
        return tuple(round(x, 6) if isinstance(x, float) else x for x in row)
    oh = {r[0]: rounded(r[1:]) for r in conn.execute(text(
        "SELECT org_path, %s FROM org_hosts WHERE hosts <> 0" % ", ".join(OH_COLS)))}
    op_ = {tuple(r[:4]): rounded(r[4:]) for r in conn.execute(text(
        "SELECT %s, %s FROM org_profiles WHERE hosts <> 0" % (", ".join(OP_KEYS), ", ".join(OP_COLS))))}
    return rc, rf, cc, oh, op_


def check(conn):
    """Differences between the maintained aggregates and a recomputation from the results, as
    (table, key, kept, recomputed); [] when they agree. Runs the recomputation in a savepoint of
    the caller's transaction and rolls it back."""
    kept = snapshot(conn) + (_profile_columns(conn),)
    sp = conn.begin_nested()
    try:
        refresh_profiles(conn)
        rebuild(conn)
        fresh = snapshot(conn) + (_profile_columns(conn),)
    finally:
        sp.rollback()
    return _diff(kept, fresh)


def _profile_columns(conn):
    return {tuple(r[:2]): tuple(r[2:]) for r in conn.execute(text(
        "SELECT host_id, profile, waived_n, waived_score, waived_min, waived_max, fail_weight, waived_weight "
        "FROM host_profiles"))}


def _diff(kept, fresh):
    out = []
    for name, a, b in zip(("result_counts", "rule_failing", "component_counts", "org_hosts", "org_profiles",
                           "host_profiles"), kept, fresh):
        for key in sorted(set(a) | set(b), key=lambda k: tuple(str(x) for x in k)):
            if a.get(key, 0) != b.get(key, 0):  # host_profiles: the columns refresh_profiles keeps
                out.append((name, key, a.get(key, 0), b.get(key, 0)))
    return out


# --- the score with central waivers, per host profile ------------------------------------------------
def _weight_sql():
    from scanner.engine.evaluator import WEIGHTS
    return "CASE r.severity %s ELSE 2 END" % " ".join("WHEN '%s' THEN %d" % kv for kv in sorted(WEIGHTS.items()))


def waived_score(rows):
    """(waived_n, waived_score, waived_min, waived_max, fail_weight, waived_weight) of one host
    profile from its result rows (dicts: severity, status, waiver_until): the failures a central
    waiver covers counted as waived, in the agent's formula (scanner/engine/evaluator.py ``score``,
    waived counts as passed); the severity weights of its failures and of those covered."""
    from scanner.engine.evaluator import WEIGHTS
    got = total = n = fail_w = waived_w = 0
    lo = hi = None
    for x in rows:
        st = x["status"]
        w = WEIGHTS.get(x["severity"], 2)
        covered = st == "fail" and x["waiver_until"] is not None
        if st == "fail":
            fail_w += w
        if covered:
            n += 1
            waived_w += w
            u = x["waiver_until"]
            lo = u if lo is None else min(lo, u)
            hi = u if hi is None else max(hi, u)
        if st not in ("pass", "fail", "waived") or not w:
            continue
        total += w
        if st != "fail" or covered:
            got += w
    if not n:
        return 0, None, None, None, fail_w, 0
    return n, (round(100.0 * got / total, 1) if total else None), lo, hi, fail_w, waived_w


def unwaived_score(failed):
    """``waived_score`` of a host profile none of whose failures a waiver covers, from its failed
    rows alone (dicts: severity): nothing waived, the weights of the failures."""
    from scanner.engine.evaluator import WEIGHTS
    return 0, None, None, None, sum(WEIGHTS.get(x["severity"], 2) for x in failed), 0


_PROFILE_SUMS = """
SELECT r.host_id, r.profile,
       sum(CASE WHEN r.status = 'fail' AND r.waiver_until IS NOT NULL THEN 1 ELSE 0 END),
       sum(CASE WHEN r.status IN ('pass', 'waived') OR (r.status = 'fail' AND r.waiver_until IS NOT NULL)
                THEN {w} ELSE 0 END),
       sum(CASE WHEN r.status IN ('pass', 'fail', 'waived') THEN {w} ELSE 0 END),
       min(CASE WHEN r.status = 'fail' THEN r.waiver_until END), max(CASE WHEN r.status = 'fail' THEN r.waiver_until END),
       sum(CASE WHEN r.status = 'fail' THEN {w} ELSE 0 END),
       sum(CASE WHEN r.status = 'fail' AND r.waiver_until IS NOT NULL THEN {w} ELSE 0 END)
FROM results r
WHERE {cond}
GROUP BY r.host_id, r.profile
"""


def refresh_profiles(conn, host_ids=None, orgs=True):
    """Recompute waived_n/score/min/max of the host profiles of ``host_ids`` (None: every host) from
    their results (the sums in SQL, the score as the agent rounds it in Python), and their share of
    org_profiles (``orgs`` False: the caller subtracts and adds the hosts around its whole change)."""
    from scanner.server.store import db
    hp = db.host_profiles
    if host_ids is None:
        batches = [None]
        conn.execute(hp.update().values(waived_n=0, waived_score=None, waived_min=None, waived_max=None,
                                        fail_weight=0, waived_weight=0))
        ids = None
    else:
        ids = sorted(set(host_ids))
        batches = [ids[i:i + 500] for i in range(0, len(ids), 500)]
    for part in batches:
        sql = _PROFILE_SUMS.format(w=_weight_sql(), cond="1 = 1" if part is None else "r.host_id IN :hosts")
        stmt = text(sql)
        if part is not None:
            stmt = stmt.bindparams(bindparam("hosts", expanding=True))
        rows = conn.execute(stmt, {"hosts": part} if part is not None else {}).all()
        changes = []
        for host_id, profile, n, got, total, lo, hi, fail_w, waived_w in rows:
            n = int(n or 0)
            score = (round(100.0 * int(got) / int(total), 1) if total else None) if n else None
            changes.append({"h": host_id, "p": profile, "n": n, "s": score, "lo": lo if n else None,
                            "hi": hi if n else None, "fw": int(fail_w or 0), "ww": int(waived_w or 0)})
        if changes:
            if part is not None and orgs:
                adjust_orgs(conn, part, -1)
            conn.execute(hp.update().where(hp.c.host_id == bindparam("h"), hp.c.profile == bindparam("p"))
                         .values(waived_n=bindparam("n"), waived_score=bindparam("s"), waived_min=bindparam("lo"),
                                 waived_max=bindparam("hi"), fail_weight=bindparam("fw"),
                                 waived_weight=bindparam("ww")), changes)
            if part is not None and orgs:
                adjust_orgs(conn, part, +1)
    if ids is None:
        rebuild_orgs(conn)


# --- intake: deltas computed in Python ---------------------------------------------------------------
def severity_key(severity):
    """Orders severities most severe first (then by name): the rule_failing severity is the least."""
    return dict(SEVERITY_RANK).get(severity, 5), severity or ""


def failing_map(rows):
    """{rule_id: (covered_until, severity)} of one host from its result rows (dicts, all its
    profiles): the earliest waiver expiry (0: a failure not covered) and the most severe severity
    ('' none) of its failures of each rule."""
    out = {}
    for x in rows:
        if x["status"] == "fail":
            u = x["waiver_until"] or 0
            sev = x["severity"] or ""
            rid = x["rule_id"]
            if rid in out:
                u0, s0 = out[rid]
                out[rid] = (min(u0, u), min(s0, sev, key=severity_key))
            else:
                out[rid] = (u, sev)
    return out


class Delta(object):
    """Changes to both aggregates collected while a batch is decided, written in one statement each."""

    def __init__(self):
        self.rc = collections.Counter()
        self.rf = collections.Counter()

    def results(self, org_path, profile, rows, sign):
        """Rows (dicts with rule_id, severity, category, status, waiver_until) of one host profile."""
        for x in rows:
            self.rc[(org_path, profile, x["rule_id"], x["severity"] or "", x["category"] or "", x["status"],
                     x["waiver_until"] or 0)] += sign

    def failing(self, org_path, before, after):
        """A host's failing maps (``failing_map``) before and after the change."""
        for rid in set(before) | set(after):
            a, b = before.get(rid), after.get(rid)
            if a == b:
                continue
            if a is not None:
                self.rf[(org_path, rid) + a] -= 1
            if b is not None:
                self.rf[(org_path, rid) + b] += 1

    def write(self, sql):
        """Apply the non-zero deltas through the batch writer's statements (store/rawsql.py), in key order."""
        from scanner.server.store import db
        rc = [k + (n,) for k, n in sorted(self.rc.items()) if n]
        rf = [k + (n,) for k, n in sorted(self.rf.items()) if n]
        sql.add_counts(db.result_counts, RC_KEYS, "n", rc)
        sql.add_counts(db.rule_failing, RF_KEYS, "hosts", rf)


def host_share(known, domestic, foreign, unknown, rate):
    """What org_hosts counts of one live host (OH_COLS, as _OH_SELECT sums them): ``known`` whether
    it has a latest state (its loc_rate counts only then), its component counts and loc_rate."""
    counted = bool(known) and rate is not None
    return (1, domestic or 0, foreign or 0, unknown or 0, rate if counted else 0.0, 1 if counted else 0)


def profile_share(score, score_without_waivers, passed, failed, waived_n, waived_score, waived_min, waived_max):
    """(key part, sums) org_profiles counts of one host profile of a live host: (waived_min,
    waived_max) as _OP_SELECT groups them, and OP_COLS as it sums them (NULL counts nothing)."""
    return ((waived_min or 0, waived_max or 0),
            (1, score or 0.0, 0 if score is None else 1, waived_score or 0.0, 0 if waived_score is None else 1,
             failed or 0, waived_n or 0, passed or 0, score_without_waivers or 0.0,
             0 if score_without_waivers is None else 1))


class OrgDelta(object):
    """Changes to org_hosts and org_profiles collected while a batch is decided: the shares
    (``host_share``, ``profile_share``) of the hosts and host profiles it changes, subtracted as read
    under the host row lock and added as written; then one upsert per table, in key order (the
    same sums as adjust_orgs, without its join: no plan to make or keep per batch)."""

    def __init__(self):
        self.oh = {}
        self.op = {}

    @staticmethod
    def _add(sums, key, values, sign):
        row = sums.get(key)
        if row is None:
            row = sums[key] = [0] * len(values)
        for i, v in enumerate(values):
            row[i] += sign * v

    def host(self, org_path, counted, sign):
        """``counted``: (whether the host has a latest state,) + HOST_ORG values (batch.HOST_ORG_COLS)."""
        self._add(self.oh, org_path, host_share(*counted), sign)

    def profile(self, org_path, profile, counted, sign):
        """``counted``: a host profile's PROFILE_ORG values (batch.PROFILE_ORG_COLS)."""
        key, sums = profile_share(*counted)
        self._add(self.op, (org_path, profile) + key, sums, sign)

    def write(self, sql):
        """Apply the non-zero deltas through the batch writer's statements (store/rawsql.py)."""
        from scanner.server.store import db
        sql.add_counts(db.org_hosts, ("org_path",), OH_COLS,
                       [(k,) + tuple(v) for k, v in sorted(self.oh.items()) if any(v)])
        sql.add_counts(db.org_profiles, OP_KEYS, OP_COLS,
                       [k + tuple(v) for k, v in sorted(self.op.items()) if any(v)])
