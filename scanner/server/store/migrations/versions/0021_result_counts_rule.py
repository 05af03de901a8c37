"""an index of the maintained result counts by rule (the rule page's hosts per status and its total)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 09:25:00
"""
from alembic import op


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_result_counts_rule', 'result_counts', ['rule_id'], unique=False)


def downgrade():
    op.drop_index('ix_result_counts_rule', table_name='result_counts')
