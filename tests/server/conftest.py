"""Real aggregator fixtures: `xcscan server init` + `xcscan server serve` in a subprocess with the
init-made TLS certificate, against SQLite and against PostgreSQL at 127.0.0.1:5432 (a uniquely
named database per test session, dropped afterwards). Helpers live in server_support.py (a
uniquely named module: several test directories have a conftest.py)."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server_support import fresh_pg_database, make_server  # noqa: E402


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database for this session; dropped at the end."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def pg_scratch_url():
    """A PostgreSQL database of its own for db_engine, which drops and re-creates every table: never the
    database the session's server runs on (its users and hosts would vanish under later tests)."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def pg_url_fresh():
    """A fresh PostgreSQL database for one test's own server; dropped afterwards. A module-scoped server
    fixture opens ``fresh_pg_database()`` itself: pytest may set such a fixture up more than once in a
    module (parametrised fixtures are re-ordered), and each setup needs an empty database."""
    with fresh_pg_database() as url:
        yield url


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
