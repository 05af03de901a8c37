"""Alembic environment: the engine comes from scanner.server.store.migrate (never from alembic.ini)."""
from alembic import context

from scanner.server.store.db import metadata

config = context.config


def run_migrations_online():
    connection = config.attributes.get("connection")
    if connection is None:
        from scanner.server.store.db import make_engine
        engine = make_engine(config.get_main_option("sqlalchemy.url"))
        with engine.connect() as connection:
            _run(connection)
        return
    _run(connection)


def _run(connection):
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
