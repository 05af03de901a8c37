"""The localization history per category (daily_loc, kept by the roll-up job: store/rollups.py) on
SQLite and PostgreSQL: each past day holds the per-category components of each host's newest report
of that day; a late report recomputes the days from its own on; retiring a host takes it out of
every stored day exactly as a recomputation would."""
from __future__ import annotations

import gzip
import hashlib
import json
import time

from sqlalchemy import select

from fleet import Agent, component, make_report
from scanner.server.access import accounts
from scanner.server.intake import ingest
from scanner.server.intake.batch import Item, store_batch
from scanner.server.store import db, localization, rollups
from scanner.server.store.scope import Scope

DAY = 86400
CENTOS = ("os", "centos", "CentOS", "CentOS", "foreign", "7.9")
KYLIN = ("os", "kylin", "银河麒麟", "Kylin", "domestic", "V10")
ORACLE = ("database", "oracle-db", "Oracle 数据库", "Oracle Database", "foreign", "19c")
DM = ("database", "dm", "达梦数据库", "DM", "domestic", "8.1")
ODD = ("database", None, "某数据库", "Some DB", "unknown", "1")


def _put(engine, agent, comps, at):
    doc = make_report(agent.hostname, machine_id=agent.machine_id, packages=2)
    doc["inventory"]["components"] = [component(*c) for c in comps]
    body = json.dumps(doc).encode()
    with db.write_tx(engine) as conn:
        store_batch(conn, [Item(doc["report_id"], agent.host_id, int(time.time()), at, ingest.derive(doc),
                                gzip.compress(body), len(body), hashlib.sha256(body).hexdigest())])


def _cells(pts):
    return {p["day"] // DAY: (p["domestic"], p["foreign"], p["unknown"]) for p in pts}


def _snapshot(conn):
    dl = db.daily_loc
    return {tuple(r[:3]): tuple(r[3:]) for r in conn.execute(select(
        dl.c.day, dl.c.org_path, dl.c.category, dl.c.hosts, dl.c.n_domestic, dl.c.n_foreign, dl.c.n_unknown))
        if r[3]}


def test_history_per_category_late_reports_and_retirement(db_engine):
    engine = db_engine
    everything = Scope.everything()
    today = rollups.today()
    agents = []
    for i, org in enumerate(("/t/a", "/t/a", "/t/b")):
        a = Agent("lt%d" % i, machine_id="lt%d" % i)
        a.host_id = ingest.enroll(engine, accounts.create_token(engine, org, scope=everything)["token"], a.hostname,
                                  a.machine_id, a.public_key)["host_id"]
        agents.append(a)
    day = lambda d, s=3600: (today + d) * DAY + s  # noqa: E731
    _put(engine, agents[0], [CENTOS, ORACLE], day(-5))
    _put(engine, agents[1], [CENTOS, ODD], day(-5))
    _put(engine, agents[2], [CENTOS], day(-5))
    _put(engine, agents[0], [KYLIN, DM], day(-3))
    _put(engine, agents[2], [KYLIN], day(-1))
    got = localization.progress(engine, everything)["trend"]
    assert _cells(got["os"]) == {today - 5: (0, 3, 0), today - 4: (0, 3, 0), today - 3: (1, 2, 0),
                                 today - 2: (1, 2, 0), today - 1: (2, 1, 0), today: (2, 1, 0)}
    assert _cells(got["database"]) == {today - 5: (0, 1, 1), today - 4: (0, 1, 1), today - 3: (1, 0, 1),
                                       today - 2: (1, 0, 1), today - 1: (1, 0, 1), today: (1, 0, 1)}
    assert [p["rate"] for p in got["os"]] == [0.0, 0.0, 0.3333, 0.3333, 0.6667, 0.6667]
    assert _cells(localization.progress(engine, Scope(["/t/b"]))["trend"]["os"]) == {
        today - 5: (0, 1, 0), today - 4: (0, 1, 0), today - 3: (0, 1, 0), today - 2: (0, 1, 0), today - 1: (1, 0, 0),
        today: (1, 0, 0)}
    # a report late for day -4 (its Kylin) recomputes the days from -4 on
    _put(engine, agents[1], [KYLIN, ODD], day(-4))
    got = localization.progress(engine, everything)["trend"]
    assert _cells(got["os"])[today - 5] == (0, 3, 0)
    assert [_cells(got["os"])[today + d] for d in (-4, -3, -2, -1, 0)] == [(1, 2, 0), (2, 1, 0), (2, 1, 0), (3, 0, 0),
                                                                           (3, 0, 0)]
    # retiring host 0 subtracts it from every stored day: equal to recomputing the days without it
    from scanner.server.workflow.hosts import retire_host
    retire_host(engine, agents[0].host_id, "decommissioned", "admin", scope=everything)
    with db.write_tx(engine) as conn:
        kept = _snapshot(conn)
        sp = conn.begin_nested()
        for d in range(today - 30, today):
            rollups.compute_day(conn, d)
        fresh = _snapshot(conn)
        sp.rollback()
    assert kept == fresh and kept
    got = localization.progress(engine, everything)["trend"]
    assert _cells(got["os"])[today - 5] == (0, 2, 0) and _cells(got["os"])[today] == (2, 0, 0)
    assert _cells(got["database"])[today - 3] == (0, 0, 1)
    with engine.connect() as conn:  # the per-category counts kept with each report
        cats = [json.loads(v) for v in conn.execute(select(db.reports.c.loc_cats)).scalars()]
    assert {"os": [0, 1, 0], "database": [0, 0, 1]} in cats
