"""Scheduled background jobs that the server nodes run themselves, each run by exactly one node.

Every node (each `xcscan server serve` worker process, on one machine or several, against one
database) polls its jobs. A job's run is claimed by one conditional UPDATE of the job's row in
``job_runs`` — ``started_at`` set to now where it is at least ``interval`` seconds old — so of the
nodes polling at the same moment exactly one transaction matches the row (PostgreSQL re-checks the
condition on the row another transaction just changed; SQLite's write lock serializes them) and the
others find the run taken. The row also says which node ran it last, when, how many runs there were
and what the last one did. Times are the nodes' clocks (keep them in NTP sync).
"""
from __future__ import annotations

import json
import os
import socket

from sqlalchemy import select, update

from scanner.server.store import db
from scanner.server.util import now


def node_name():
    return ("%s:%d" % (socket.gethostname(), os.getpid()))[:128]


def claim(engine, name, interval, t=None, node=None):
    """True when this node claimed the run of job ``name`` due at ``t`` (none in the last
    ``interval`` seconds), False when it is not due or another node claimed it."""
    t = now() if t is None else t
    j = db.job_runs
    with db.write_tx(engine) as conn:
        conn.execute(db.insert_new(conn, j, ["name"]).values(name=name, started_at=0, runs=0))
        got = conn.execute(update(j).where(j.c.name == name, j.c.started_at <= t - interval).values(
            started_at=t, finished_at=None, runs=j.c.runs + 1, node=node or node_name()))
        return got.rowcount == 1


def finish(engine, name, detail, t=None):
    """Record what the claimed run did."""
    j = db.job_runs
    with db.write_tx(engine) as conn:
        conn.execute(update(j).where(j.c.name == name).values(finished_at=now() if t is None else t,
                                                               detail=json.dumps(detail, sort_keys=True)))


def state(engine, name):
    """The job's row as a dict (detail decoded), or None before its first claim."""
    j = db.job_runs
    with engine.connect() as conn:
        row = conn.execute(select(j).where(j.c.name == name)).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["detail"] = json.loads(out["detail"]) if out["detail"] else None
    return out
