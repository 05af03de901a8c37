"""Real aggregator fixtures: `xcscan server init` + `xcscan server serve` in a subprocess with the
init-made TLS certificate, against SQLite and against PostgreSQL at 127.0.0.1:5432 (a uniquely
named database per test session, dropped afterwards). Helpers live in server_support.py (a
uniquely named module: several test directories have a conftest.py)."""
from __future__ import annotations

import os
import secrets
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server_support import IN_CI, PG_BASE, _pg_admin_conn, make_server  # noqa: E402


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database for this session; dropped at the end."""
    yield from _fresh_pg_database()


@pytest.fixture(scope="session")
def pg_scratch_url():
    """A PostgreSQL database of its own for db_engine, which drops and re-creates every table: never the
    database the session's server runs on (its users and hosts would vanish under later tests)."""
    yield from _fresh_pg_database()


@pytest.fixture(scope="module")
def pg_url_module():
    """A fresh PostgreSQL database for one module's own server; dropped at the end."""
    yield from _fresh_pg_database()


def _fresh_pg_database():
    try:
        import psycopg
        conn = _pg_admin_conn()
    except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        msg = "PostgreSQL at %s is not reachable: %s" % (PG_BASE, exc)
        if IN_CI:
            pytest.fail(msg + " (required under CI=true)")
        pytest.skip(msg)
    name = "xcscan_t_%d_%s" % (os.getpid(), secrets.token_hex(4))
    conn.execute('CREATE DATABASE "%s"' % name)
    conn.close()
    base, _db = PG_BASE.rsplit("/", 1)
    yield "%s/%s" % (base, name)
    conn = _pg_admin_conn()
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    conn.execute('DROP DATABASE IF EXISTS "%s"' % name)
    conn.close()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    pg = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    srv = make_server(tmp_path_factory, request.param, pg)
    yield srv
    srv.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db_engine(request, tmp_path):
    """A migrated, empty database without a server: a SQLite file, or a scratch PostgreSQL database
    (not the session server's) with its tables dropped and re-created by the migrations."""
    from scanner.server.store import db
    from scanner.server.store import migrate
    if request.param == "postgres":
        eng = db.make_engine(request.getfixturevalue("pg_scratch_url"))
        with eng.begin() as conn:
            db.metadata.drop_all(conn)
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    else:
        eng = db.make_engine(str(tmp_path / "xcscan.db"))
    migrate.upgrade(eng)
    yield eng
    eng.dispose()
