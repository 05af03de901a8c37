"""The change feed from the change records written at intake (store/changes.py) equals the old reading
of the stored report documents (tests/server/changes_replay.py, the feed as it was before the records)
on a generated history: hosts in three org units with reports over three weeks stored through the batch
writer in mixed batches (statuses, severities and components drifting, rules dropped, a second profile
and inventory-only reports on some hosts, a host that joins late, hosts that stop), two latest reports
re-evaluated through apply_latest, one host retired; compared for many windows, fleet-wide and
scoped, on SQLite and PostgreSQL."""
from __future__ import annotations

import copy
import gzip
import hashlib
import json
import random
import time

import pytest
from sqlalchemy import func, select, update

import changes_replay
from fleet import Agent, make_report
from scanner.server.access import accounts
from scanner.server.intake import ingest
from scanner.server.intake.batch import Item, store_batch
from scanner.server.store import changes, db
from scanner.server.store.scope import Scope

DAY = 86400
ORGS = ["/a/x", "/a/y", "/b"]


def _drift(rng, prev, doc):
    """``doc`` made from ``prev`` with some drift: most components and statuses kept."""
    if prev is None:
        return doc
    comps = []
    old = {c["category"]: c for c in prev["inventory"]["components"]}
    for c in doc["inventory"]["components"]:
        comps.append(copy.deepcopy(old[c["category"]]) if c["category"] in old and rng.random() < 0.7 else c)
    if rng.random() < 0.1 and comps:
        comps[0] = dict(comps[0], version="9.%d" % rng.randint(0, 99))  # an upgrade in place: no add/remove
    doc["inventory"]["components"] = comps
    if "results" in doc and "results" in prev:
        before = {r["rule_id"]: r for r in prev["results"]}
        res = []
        for r in doc["results"]:
            p = before.get(r["rule_id"])
            r = dict(p) if p is not None and rng.random() < 0.8 else r
            x = rng.random()
            if x < 0.03:
                r["status"] = "error"
            elif x < 0.05:
                r["severity"] = rng.choice(["info", "low", "medium", "high", "critical"])
            elif x < 0.07:
                continue  # no longer reported
            res.append(r)
        doc["results"] = res
    return doc


def _item(agent, doc, at):
    body = json.dumps(doc, ensure_ascii=False).encode()
    return Item(doc["report_id"], agent.host_id, int(time.time()), at, ingest.derive(doc), gzip.compress(body),
                len(body), hashlib.sha256(body).hexdigest())


@pytest.fixture
def history(db_engine):
    engine = db_engine
    rng = random.Random(15)
    base = int(time.time()) - 25 * DAY
    everything = Scope.everything()
    agents, plan = [], []
    for i in range(14):
        org = ORGS[i % 3]
        # h12 is named h03 too, in h03's org (a server reinstalled and enrolled again under its name):
        # the lists' orders tell such hosts apart by id (changes.row_key)
        a = Agent("h%02d" % (3 if i == 12 else i), machine_id="m%02d" % i)
        a.host_id = ingest.enroll(engine, accounts.create_token(engine, org, scope=everything)["token"], a.hostname,
                                  a.machine_id, a.public_key)["host_id"]
        agents.append(a)
        first = 10 if i == 5 else rng.randint(0, 3)  # h05 joins late
        last = 8 if i in (3, 7) else 21  # h03 and h07 stop reporting
        prev = {}
        for day in range(first, last + 1):
            if rng.random() < 0.25 and day != first:
                continue
            kinds = ["mlps-l3"]
            if i % 4 == 1 and day >= 6:
                kinds.append("crypto")  # a second profile appears on an existing host
            if i % 5 == 2 and rng.random() < 0.3:
                kinds.append(None)  # an inventory-only report
            for k, profile in enumerate(kinds):
                doc = make_report(a.hostname, machine_id=a.machine_id, rng=random.Random(rng.random()),
                                  profile=profile or "x", domestic_bias=0.3 + day / 40.0, packages=3,
                                  results=profile is not None)
                doc = _drift(rng, prev.get(profile or "inv"), doc)
                prev[profile or "inv"] = doc
                at = base + day * DAY + rng.randint(0, 3000) * 7 + k * 11 + i
                plan.append((at, a, doc))
    plan.sort(key=lambda x: x[0])
    pos = 0
    while pos < len(plan):  # mixed batches, sometimes two reports of one host in one batch
        n = rng.randint(1, 9)
        with db.write_tx(engine) as conn:
            store_batch(conn, [_item(a, doc, at) for at, a, doc in plan[pos:pos + n]])
        pos += n
    # two latest reports re-evaluated (service.reevaluate's write: evaluated_gz, then apply_latest)
    for a in agents[:2]:
        with engine.connect() as conn:
            rid, at = conn.execute(select(db.hosts.c.latest_report_id, db.hosts.c.latest_collected)
                                   .where(db.hosts.c.id == a.host_id)).first()
        doc = next(d for t, x, d in plan if x is a and d["report_id"] == rid)
        new = copy.deepcopy(doc)
        for r in new.get("results", []):
            r["status"] = "fail" if r["status"] == "pass" else r["status"]
        new["inventory"]["components"] = new["inventory"]["components"][1:]
        with db.write_tx(engine) as conn:
            conn.execute(update(db.reports).where(db.reports.c.id == rid).values(
                evaluated_gz=gzip.compress(json.dumps(new).encode())))
            ingest.apply_latest(conn, a.host_id, rid, at, ingest.derive(new))
    from scanner.server.workflow.hosts import retire_host
    retire_host(engine, agents[13].host_id, "decommissioned", "admin", scope=everything)
    return engine, base, sorted(p[0] for p in plan)


def _windows(rng, base, times):
    out = [(base + 7 * DAY, base + 14 * DAY), (base, base + 22 * DAY), (base + 14 * DAY, base + 22 * DAY),
           (times[10], times[-1]), (times[20] - 1, times[40]), (base - DAY, base + DAY), (times[-1], times[-1] + 1)]
    for _ in range(12):
        a, b = sorted(rng.sample(range(base - DAY, base + 23 * DAY), 2))
        out.append((a, b))
    return out


def test_feed_from_records_equals_the_reading_of_the_stored_documents(history):
    engine, base, times = history
    rng = random.Random(7)
    seen = {"new": 0, "fixed": 0, "added": 0, "removed": 0, "substitutions": 0, "stopped": 0, "joined": 0}
    for scope, org in ((Scope.everything(), None), (Scope(["/a"]), None), (Scope(["/a"]), "/a/x"),
                       (Scope.everything(), "/b")):
        for start, end in _windows(rng, base, times):
            old = changes_replay.feed(engine, scope, org, start, end)
            new = changes.feed(engine, scope, org, start, end)
            assert new == old, (org, start - base, end - base)
            for k in seen:
                seen[k] += new["counts"][k]
            subs = changes.substitutions(engine, scope, org, start, end)
            assert subs["rows"] == old["substitutions"] and subs["count"] == len(old["substitutions"])
    # the history exercised every kind of change
    assert all(n > 0 for n in seen.values()), seen


def test_records_are_compact_and_a_first_report_writes_none(history):
    engine, _base, _times = history
    with engine.connect() as conn:
        n_results = conn.execute(select(func.count()).select_from(db.results)).scalar()
        n_changes = conn.execute(select(func.count()).select_from(db.result_changes)).scalar()
        n_reports = conn.execute(select(func.count()).select_from(db.reports)).scalar()
        # each host's first report: no change rows at its time
        firsts = dict(conn.execute(select(db.reports.c.host_id, func.min(db.reports.c.collected_at))
                                   .group_by(db.reports.c.host_id)).all())
        at_first = [r for r in conn.execute(select(db.result_changes.c.host_id, db.result_changes.c.at))
                    if firsts.get(r[0]) == r[1]]
        ops = dict(conn.execute(select(db.component_changes.c.op, func.count()).group_by(db.component_changes.c.op)).all())
    assert at_first == []
    # a few rows per report (changes only), not a copy of every result
    assert 0 < n_changes < n_reports * 20 and n_results > 0
    assert set(ops) == {"add", "remove"}


def test_large_scope_is_answered_not_refused(history):
    engine, base, _times = history
    got = changes.feed(engine, Scope.everything(), None, base, base + 22 * DAY)
    assert got["hosts"] == 13 and "error" not in got


def test_change_page_folded_in_the_database_equals_the_feed_cut_to_its_first_rows(history):
    """change_summary.summary (the change page) folds the window in the database by the records'
    ``prev_at``; each list equals the feed's rows from its offset (the page's list pagers), the counts
    the whole feed's, for many windows, scopes, row limits and offsets (lists longer and shorter than
    the limit, offsets inside and past a list)."""
    from scanner.server.store import change_summary
    engine, base, times = history
    rng = random.Random(11)
    n = skipped = 0
    for scope, org in ((Scope.everything(), None), (Scope(["/a"]), None), (Scope(["/a"]), "/a/x"),
                       (Scope.everything(), "/b")):
        for start, end in _windows(rng, base, times):
            full = changes.feed(engine, scope, org, start, end)
            for limit in (1, 3, 500):
                got = change_summary.summary(engine, scope, org, start, end, limit)
                assert got == change_summary.cut(full, limit), (org, start - base, end - base, limit)
                n += sum(len(got[k]) for k in changes.SECTIONS)
            for limit in (1, 2):
                offsets = {k: rng.choice((1, 2, 3, 5)) for k in changes.SECTIONS}
                got = change_summary.summary(engine, scope, org, start, end, limit, offsets)
                assert got == change_summary.cut(full, limit, offsets), (org, start - base, end - base, offsets)
                skipped += sum(len(got[k]) for k in changes.SECTIONS)
    assert n > 100 and skipped > 20


def test_fold_statements_are_built_once_per_shape_and_take_each_window_when_run(history):
    """change_summary keeps a fold's statements per shape (database, scope, org), the window's ends and
    each list's rows and offset bound when they run: many windows, row limits and offsets of one shape
    build them once, and each page is still its own (not the first one's). An org outside the scope is
    refused every time."""
    from scanner.server.errors import ApiError
    from scanner.server.store import change_summary
    engine, base, times = history
    change_summary._plans.clear()
    windows = _windows(random.Random(5), base, times)
    pages = set()
    for i, (start, end) in enumerate(windows):
        limit, offsets = 1 + i % 3, {k: (i + j) % 3 for j, k in enumerate(changes.SECTIONS)}
        got = change_summary.summary(engine, Scope(["/a"]), None, start, end, limit, offsets)
        full = changes.feed(engine, Scope(["/a"]), None, start, end)
        assert got == change_summary.cut(full, limit, offsets), (start, end, limit, offsets)
        pages.add(repr(sorted((k, got["counts"][k]) for k in changes.SECTIONS)))
    assert len(pages) > 3  # the windows differ in what they hold
    assert len(change_summary._plans) == 3  # the hosts', findings' and components' statements of one shape
    for _ in range(2):
        with pytest.raises(ApiError) as err:
            change_summary.summary(engine, Scope(["/a"]), "/b", windows[0][0], windows[0][1], 2)
        assert err.value.status == 404
    assert len(change_summary._plans) == 3


def test_api_pages_folded_in_the_database_equal_the_feeds_keyset_pages(history):
    """change_summary.api_page (GET /api/v1/changes, a page after a cursor) reads a page from the fold
    in the database, starting at the position its cursor carries, instead of folding the whole feed:
    every page and every cursor equal changes.page's over the whole feed, for many windows, scopes and
    page sizes (pages ending inside a list and at its end); a position that no longer holds the
    cursor's row (rows moved since) is refused (None: the caller pages the whole feed by key)."""
    from scanner.server.store import change_summary
    engine, base, times = history
    rng = random.Random(5)
    pages = refused = 0
    for scope, org in ((Scope.everything(), None), (Scope(["/a"]), None), (Scope.everything(), "/b")):
        for start, end in list(_windows(rng, base, times))[:4]:
            full = changes.feed(engine, scope, org, start, end)
            total = sum(len(full[k]) for k in changes.SECTIONS)
            for limit in sorted({max(total // 7, 1), max(total // 3, 1), total + 1}):  # (ending inside lists)
                after = offset = None
                for _n in range(total + 2):
                    want = changes.page(full, after, limit)
                    got = change_summary.api_page(engine, scope, org, start, end, after, offset, limit)
                    assert got is not None and got == want, (org, start - base, end - base, limit, after)
                    pages += 1
                    if want[1] is None:
                        break
                    # through the cursor's text, as a client sends it back
                    c = changes.read_cursor(changes.cursor(start, end, org, want[1]))
                    after, offset = c["after"], c["offset"]
                    assert offset == want[1][2]
                    # the same cursor with its row elsewhere: not read from the fold
                    for wrong in (offset + 1, offset - 1) if _n < 2 else ():
                        if wrong >= 1:
                            assert change_summary.api_page(engine, scope, org, start, end, after, wrong, limit) is None
                            refused += 1
                else:
                    raise AssertionError("the pages did not end")
                # a cursor without a position (an earlier server's) is paged by key over the whole feed
                if after is not None:
                    assert change_summary.api_page(engine, scope, org, start, end, after, None, limit) is None
    assert pages > 50 and refused > 20


def test_change_digest_read_for_any_scope_equals_the_page_folded_live_at_its_time(history):
    """change_digest.build folds the 7 days before a time once, per org; read() gives any scope (and
    org narrowing) what change_summary.summary gives for that window: the counts, severities and hosts
    summed over the scope's orgs, each list the first ``limit`` rows of the merged orgs' first rows."""
    from scanner.server.store import change_digest, change_summary
    engine, base, times = history
    for t in (times[-1], base + 12 * DAY + 5, base + 21 * DAY + 3600):
        for limit in (1, 3, 50):
            got = change_digest.build(engine, limit, t=t)
            # rows for /a/x, /a/y, /b and the orgs above them: /a and /
            assert (got["orgs"], got["nodes"], got["skipped"]) == (3, 5, None) and got["records"] > 0
            for scope, org in ((Scope.everything(), None), (Scope(["/a"]), None), (Scope(["/a"]), "/a/x"),
                               (Scope.everything(), "/b"), (Scope(["/a/y", "/b"]), None), (Scope(["/a/x", "/b"]), "/a"),
                               (Scope(["/a/x/deeper"]), None), (Scope(["/a"]), "/")):
                live = change_summary.summary(engine, scope, org, t - change_digest.WINDOW, t, limit)
                kept = change_digest.read(engine, scope, org, limit, max_age=60, t=t + 30)
                assert kept.pop("as_of") == t
                assert kept == live, (t - base, limit, scope.orgs, org)
            # the next pages of its lists, from the rows it keeps (``limit`` each): a page of 1 row from
            # each offset the digest holds; any row past them is not there (None: the page folds live)
            for off in range(limit):
                offsets = dict.fromkeys(changes.SECTIONS, off)
                live = change_summary.summary(engine, Scope(["/a"]), None, t - change_digest.WINDOW, t, 1, offsets)
                kept = change_digest.read(engine, Scope(["/a"]), None, 1, max_age=60, t=t + 30, offsets=offsets)
                assert kept.pop("as_of") == t and kept == live, (t - base, limit, off)
            offsets = dict.fromkeys(changes.SECTIONS, limit)
            kept = change_digest.read(engine, Scope.everything(), None, 1, max_age=60, t=t + 30, offsets=offsets)
            full = change_summary.summary(engine, Scope.everything(), None, t - change_digest.WINDOW, t, 10 ** 6)
            if any(len(full[k]) > limit for k in changes.SECTIONS):
                assert kept is None, (t - base, limit)
            else:  # every list within the rows kept: the page past them is empty, not unknown
                assert kept is not None and not any(kept[k] for k in changes.SECTIONS)
            # a list's next pages name the digest's time (?at=): served while it is that digest, however
            # old, and never from a digest made at another time
            assert change_digest.read(engine, Scope.everything(), None, 1, max_age=60, t=t + 10 ** 6, at=t)["as_of"] == t
            assert change_digest.read(engine, Scope.everything(), None, 1, max_age=60, t=t + 30, at=t - 1) is None
    assert sum(live["counts"].values()) > 0
    # a week with fewer records than asked keeps no digest: the page counts live
    assert change_digest.build(engine, 50, t=t, min_records=10 ** 6)["skipped"] == "few_records"
    assert change_digest.read(engine, Scope.everything(), None, 50, max_age=60, t=t) is None
    change_digest.build(engine, 50, t=t)
    # a damaged row (another version's, or edited by hand) is not served: the page counts live
    with db.write_tx(engine) as conn:
        conn.execute(update(db.change_digests).where(db.change_digests.c.org_path == "/").values(body='{"hosts": 1}'))
    assert change_digest.read(engine, Scope.everything(), None, 50, max_age=60, t=t) is None
    assert change_digest.read(engine, Scope(["/a"]), None, 50, max_age=60, t=t)["as_of"] == t
    # a digest older than max_age is not used; an org outside the scope is refused as every query refuses it
    assert change_digest.read(engine, Scope.everything(), None, 50, max_age=60, t=t + 61) is None
    with pytest.raises(Exception) as err:
        change_digest.read(engine, Scope(["/a"]), "/b", 50, max_age=60, t=t)
    assert getattr(err.value, "status", None) == 404


def _upgrade_from_0028(engine):
    """Migration 0029 run again over the database as it is (down to 0028, then up to head)."""
    from alembic import command
    from scanner.server.store import migrate
    cfg = migrate.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0028")
    migrate.upgrade(engine)


def _chains(engine):
    """{(table, id): the at of the row before it of its key in (at, id) order, -1 for none}."""
    out = {}
    with engine.connect() as conn:
        for t, key in changes.KEYS.items():
            table = db.metadata.tables[t]
            by_key = {}
            for r in conn.execute(select(table.c.id, table.c.at, *[table.c[k] for k in key]).order_by(table.c.at,
                                                                                                        table.c.id)):
                by_key.setdefault(tuple(r[2:]), []).append(r)
            for chain in by_key.values():
                for i, r in enumerate(chain):
                    out[(t, r[0])] = chain[i - 1][1] if i else -1
    return out


def _prev(engine):
    with engine.connect() as conn:
        return {(t, r[0]): r[1] for t in changes.KEYS
                for r in conn.execute(select(db.metadata.tables[t].c.id, db.metadata.tables[t].c.prev_at))}


def test_each_record_names_its_keys_change_before_it_as_intake_and_the_upgrade_write_it(history):
    """prev_at, as the batch writer (several states of a host in one batch, a component removed and
    added at once) and re-evaluation wrote it, is the time of the key's row before it in (at, id)
    order (-1 for none); migration 0029 gives the same to records written before it."""
    engine, _base, _times = history
    want = _chains(engine)
    assert len(want) > 100 and sum(1 for v in want.values() if v != -1) > 20
    assert _prev(engine) == want
    _upgrade_from_0028(engine)
    assert _prev(engine) == want


def test_a_hosts_first_report_time_is_kept_on_the_host_by_the_writer_and_the_upgrade(history):
    """host_firsts (the feed's hosts that joined) holds the host's oldest report, as the batch
    writer keeps it — a report from a spool backlog older than every other moves it — and as
    migration 0029 computes it."""
    engine, base, _times = history

    def firsts():
        with engine.connect() as conn:
            got = dict(conn.execute(select(db.host_firsts.c.host_id, db.host_firsts.c.first_collected)).all())
            return {h: got.get(h) for h in conn.execute(select(db.hosts.c.id)).scalars()}

    def oldest():
        with engine.connect() as conn:
            got = dict(conn.execute(select(db.reports.c.host_id, func.min(db.reports.c.collected_at))
                                    .group_by(db.reports.c.host_id)).all())
        return {h: got.get(h) for h in firsts()}
    assert firsts() == oldest() and len([v for v in firsts().values() if v is not None]) >= 13
    with engine.connect() as conn:  # a live host (the history retires one: its reports are refused)
        host_id = conn.execute(select(db.hosts.c.id).where(db.hosts.c.retired_at.is_(None))
                               .order_by(db.hosts.c.hostname)).scalars().first()
    first = firsts()[host_id]
    a = Agent("late", machine_id="late")
    a.host_id = host_id
    doc = make_report("late", machine_id="late", rng=random.Random(3), profile="mlps-l3", packages=3)
    with db.write_tx(engine) as conn:
        out = store_batch(conn, [_item(a, doc, first - 5 * DAY)])
    assert not isinstance(out[0], Exception), out
    assert firsts()[host_id] == first - 5 * DAY == oldest()[host_id]
    _upgrade_from_0028(engine)
    assert firsts() == oldest()
