"""change records linked to their neighbours (prev_at, next_at) and indexed by key: the change page
folds a window in the database (store/change_summary.py).

A change record's key is (host, profile, rule) or (host, category, component key). ``prev_at`` is the
time of the key's change before it (-1: none; NULL: not linked yet), ``next_at`` the time of the one
after it (NULL: none yet). With them the first change of a key inside a window (from, to] is the one
row with ``prev_at <= from`` and the last the one with ``next_at`` NULL or after ``to``: filters on a
row, not a sort of the window's rows per key. Intake writes NULL; store/changes.py ``link`` links the
new rows of the keys they belong to. The (host, at) indexes become (key, at) ones: the linking walks a
key's rows; a host's rows are still its prefix.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 23:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None

TABLES = (("result_changes", ("host_id", "profile", "rule_id")), ("component_changes", ("host_id", "category", "comp_key")))


def upgrade():
    for table, key in TABLES:
        op.add_column(table, sa.Column('prev_at', sa.BigInteger(), nullable=True))
        op.add_column(table, sa.Column('next_at', sa.BigInteger(), nullable=True))
        op.drop_index('ix_%s_host_at' % table, table_name=table)
        op.create_index('ix_%s_key' % table, table, list(key) + ['at'], unique=False)
        op.create_index('ix_%s_unlinked' % table, table, ['id'], unique=False,
                        postgresql_where=sa.text("prev_at IS NULL"), sqlite_where=sa.text("prev_at IS NULL"))
    from scanner.server.store.changes import link
    link(op.get_bind())


def downgrade():
    for table, key in TABLES:
        op.drop_index('ix_%s_unlinked' % table, table_name=table)
        op.drop_index('ix_%s_key' % table, table_name=table)
        op.create_index('ix_%s_host_at' % table, table, ['host_id', 'at'], unique=False)
        op.drop_column(table, 'next_at')
        op.drop_column(table, 'prev_at')
