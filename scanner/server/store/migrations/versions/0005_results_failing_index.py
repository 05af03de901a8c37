"""a partial index of the failing latest results

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 03:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_results_failing', 'results', ['rule_id', 'host_id', 'waiver_until'], unique=False,
                    postgresql_where=sa.text("status = 'fail'"), sqlite_where=sa.text("status = 'fail'"))


def downgrade():
    op.drop_index('ix_results_failing', table_name='results')
