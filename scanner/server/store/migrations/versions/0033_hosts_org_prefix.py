"""hosts.org_path indexed for prefix matches (ix_hosts_org_prefix): a department's or unit's hosts are
``org_path = X OR org_path LIKE 'X/%'`` (store/scope.py), which a btree serves only when it compares by
code point; the database's collation (e.g. C.UTF-8 or en_US.UTF-8) does not, so every scoped read of
the hosts scanned the whole table (7.4 ms at 10,000 hosts, 834 pages). PostgreSQL: the
``text_pattern_ops`` operator class, which LIKE 'prefix%' uses whatever the collation (1.2 ms for a
department of 1,000 hosts, 0.2 ms for a unit of 100). SQLite: a plain index (the same declaration; its
LIKE does not use it, equality does).

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07 10:45:00
"""
from alembic import op


revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_hosts_org_prefix', 'hosts', ['org_path'], postgresql_ops={'org_path': 'text_pattern_ops'})


def downgrade():
    op.drop_index('ix_hosts_org_prefix', table_name='hosts')
