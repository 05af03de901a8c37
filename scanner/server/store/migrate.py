"""Create or upgrade the schema with Alembic (the same migrations for SQLite and PostgreSQL)."""
from __future__ import annotations

import os

HERE = os.path.dirname(os.path.abspath(__file__))


def alembic_config(url=None):
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", os.path.join(HERE, "migrations"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine, revision="head"):
    """Bring the database at ``engine`` to ``revision`` (idempotent)."""
    from alembic import command
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine):
    from alembic.runtime.migration import MigrationContext
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision():
    from alembic.script import ScriptDirectory
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
