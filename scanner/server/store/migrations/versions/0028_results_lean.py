"""results: the default fillfactor again, and waiver_until indexed only where a waiver covers the row.

0027 gave results fillfactor 80 so that a status change found room on its page (HOT). Measured with
bench/storage.py (20 hosts x 30 daily reports of the real report, after retention and VACUUM FULL):
with 80, results took 6,690 B per report and all tables 11,087 B (over the 10 KB a report may cost);
with the default (100), 5,571 B and 9,967 B, while the dead rows stay within bounds (pgstattuple
dead/live 1.05 before vacuum; HOT updates 0.54, rising as pruned pages keep room): no index holds
status since 0027, so a changed row is HOT wherever its page has room. Most results carry no waiver
(NULL waiver_until): the index holds only the rows that have one — every query on it compares
waiver_until with a time, which implies NOT NULL on both databases.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 12:05:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE results RESET (fillfactor)")
    op.drop_index('ix_results_waiver_until', table_name='results')
    op.create_index('ix_results_waiver_until', 'results', ['waiver_until'], unique=False,
                    postgresql_where=sa.text("waiver_until IS NOT NULL"),
                    sqlite_where=sa.text("waiver_until IS NOT NULL"))


def downgrade():
    op.drop_index('ix_results_waiver_until', table_name='results')
    op.create_index('ix_results_waiver_until', 'results', ['waiver_until'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE results SET (fillfactor = 80)")
