"""change records linked to their key's change before them (prev_at), and each host's first report
time (host_firsts): the change page folds a window in the database (store/change_summary.py).

A change record's key is (host, profile, rule) or (host, category, component key); ``prev_at`` is the
time of the key's change before the row, in (at, id) order (-1: none). With it the first change of a
key inside a window (from, to] is the one row with ``prev_at <= from``, a filter instead of a sort of
the window's rows per key. Intake writes it with the row (changes.write: the newest change of the key
before the batch, looked up by the (host, at) index in the insert itself, or the batch's own row
before it); this migration fills it in for the records already there. ``host_firsts.first_collected``: the
collected time of the host's oldest report stored (the batch writer keeps it; retention does not
move it; a table of its own, see store/db.py), so the hosts that joined in a window need no probe of
the reports index each.

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
    op.create_table(
        'host_firsts',
        sa.Column('host_id', sa.String(length=36), nullable=False),
        sa.Column('first_collected', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name='fk_host_firsts_host_id_hosts', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('host_id', name='pk_host_firsts'),
    )
    op.execute("INSERT INTO host_firsts (host_id, first_collected) SELECT host_id, min(collected_at) FROM reports "
               "GROUP BY host_id")
    for table, key in TABLES:
        op.add_column(table, sa.Column('prev_at', sa.BigInteger(), nullable=True))
        # each row's predecessor of its key in (at, id) order; a NULL category or component key is a
        # key value like another (PARTITION BY groups NULLs together, as the feed's fold does)
        op.execute("UPDATE {t} SET prev_at = COALESCE(x.p, -1) FROM (SELECT id, lag(at) OVER (PARTITION BY {key} "
                   "ORDER BY at, id) AS p FROM {t}) AS x WHERE {t}.id = x.id".format(t=table, key=", ".join(key)))


def downgrade():
    op.drop_table('host_firsts')
    for table, _key in TABLES:
        op.drop_column(table, 'prev_at')
