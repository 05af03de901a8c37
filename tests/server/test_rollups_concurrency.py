"""Two server processes against one PostgreSQL compute the daily roll-ups (store/rollups.py) once:
the first takes the roll-up advisory lock and computes the missing days, the other waits on it and
then finds them done. Each process is a real Python process with its own engine, started together;
every day is computed exactly once and the stored roll-ups equal a fresh computation."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from scanner.server.store import db, rollups
from test_aggregates import _all_rollups
from test_batch_store import enroll, item, put

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

WORKER = r"""
import json, sys, time
from scanner.server.store import db, rollups
engine = db.make_engine(sys.argv[1])
with engine.connect() as conn:  # connected before the start, so both start the same way
    conn.exec_driver_sql("SELECT 1")
start_at = float(sys.argv[2])
time.sleep(max(0.0, start_at - time.time()))
t0 = time.time()
n = rollups.ensure(engine, int(sys.argv[3]))
print(json.dumps({"computed": n, "start": t0, "end": time.time()}))
"""


@pytest.mark.parametrize("db_engine", ["postgres"], indirect=True)
def test_two_processes_compute_each_day_once(db_engine):
    engine = db_engine
    url = engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")
    fleet = enroll(engine, "/gov/finance", 30) + enroll(engine, "/gov/health", 30)
    today = rollups.today()
    days = 40
    for d in range(1, days + 1):
        put(engine, [item(a, (today - d) * 86400 + 600 + k, seed=d * 100 + k)[0] for k, a in enumerate(fleet)])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(db.rollup_days)).scalar() == 0
    env = dict(os.environ, PYTHONPATH=ROOT)
    start_at = time.time() + 3.0
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, repr(start_at), str(days)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    # they ran at the same time (or this test proves nothing), and the days were computed once
    assert max(o["start"] for o in outs) < min(o["end"] for o in outs), outs
    assert sorted(o["computed"] for o in outs) == [0, days], outs
    with engine.connect() as conn:
        marks = conn.execute(select(func.count()).select_from(db.rollup_days)).scalar()
        stored = _all_rollups(conn)
    assert marks == days
    assert {d for d, *_x in stored} == set(range(today - days, today))
    with db.write_tx(engine) as conn:  # the same days computed afresh by one process: identical
        for day in range(today - days, today):
            rollups.compute_day(conn, day)
        assert _all_rollups(conn) == stored
    by_day = {}
    for d, org, prof, n, *_x in stored:
        by_day[d] = by_day.get(d, 0) + n
    assert set(by_day.values()) == {60}  # every host in every day, once
