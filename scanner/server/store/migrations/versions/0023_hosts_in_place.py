"""hosts rows rewritten in place: every stored report sets its host's last_seen (and latest report),
and the index on last_seen (ix_hosts_last_seen, 0013) made each such update write a new index
entry, so no update was heap-only (HOT) and PostgreSQL kept ~31 dead rows per live one between
vacuums. The index goes: the queries it served (hosts that stopped reporting per org unit, the
host_silent alert, the hosts list sorted by last seen) read the whole narrow table in 1-3 ms at
10,000 hosts instead of 0.1-0.3 ms. On PostgreSQL hosts also gets room on each page for the new
version of its rows (fillfactor 50, as host_profiles in 0022), so the update stays on its page.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 09:50:00
"""
from alembic import op


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index('ix_hosts_last_seen', table_name='hosts')
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE hosts SET (fillfactor = 50)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE hosts RESET (fillfactor)")
    op.create_index('ix_hosts_last_seen', 'hosts', ['last_seen'], unique=False)
