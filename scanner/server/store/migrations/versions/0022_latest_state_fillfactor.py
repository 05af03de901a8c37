"""PostgreSQL: room on every page of host_profiles for the new version of its rows (fillfactor 50):
each report rewrites its host's profile row (report id, collected time), and with room on the page
the update is heap-only (no index entry) and the next visit to the page reclaims the old version, so
dead rows do not pile up between vacuums. Existing pages get the room when the table is rewritten
(VACUUM FULL); new pages at once. SQLite has no such setting.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 09:30:00
"""
from alembic import op


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE host_profiles SET (fillfactor = 50)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE host_profiles RESET (fillfactor)")
