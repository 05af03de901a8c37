"""an index of each host's results by severity (the findings page sorted by severity)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 06:50:00
"""
from alembic import op


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_results_host_severity', 'results', ['host_id', 'severity'], unique=False)


def downgrade():
    op.drop_index('ix_results_host_severity', table_name='results')
