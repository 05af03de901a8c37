"""results rows rewritten in place: a report that changes a result's status rewrote that row with a
new entry in every index holding status (ix_results_rule_status, ix_results_status_severity and the
partial ix_results_failing, whose predicate is on status), so no such update was heap-only (HOT) and
the old versions waited for VACUUM (results dead/live 1.41 after 30 daily reports in
bench/storage.py). The fleet pages count from the maintained aggregates (store/aggregates.py) and
find a status's rows through a rule or a host, so no index needs status: the three go, the rule's
rows are found by ix_results_rule (rule_id, host_id). On PostgreSQL results also gets room on each
page (fillfactor 80) for the new version of the few rows a report changes.

Revision ID: 0027
Revises: 0025
Create Date: 2026-12-06 11:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0027'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_results_rule', 'results', ['rule_id', 'host_id'], unique=False)
    op.drop_index('ix_results_failing', table_name='results')
    op.drop_index('ix_results_status_severity', table_name='results')
    op.drop_index('ix_results_rule_status', table_name='results')
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE results SET (fillfactor = 80)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE results RESET (fillfactor)")
    op.create_index('ix_results_rule_status', 'results', ['rule_id', 'status'], unique=False)
    op.create_index('ix_results_status_severity', 'results', ['status', 'severity'], unique=False)
    op.create_index('ix_results_failing', 'results', ['rule_id', 'host_id', 'waiver_until'], unique=False,
                    postgresql_where=sa.text("status = 'fail'"), sqlite_where=sa.text("status = 'fail'"))
    op.drop_index('ix_results_rule', table_name='results')
