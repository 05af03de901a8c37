"""the (host, UTC day) pairs whose reports lost their bodies and whose day is not yet kept as a daily
summary (summary_pending, store/retention.py): written in the transaction that prunes the bodies, deleted
in the one that summarizes the day, so a day pruned while report_daily_summaries was off, or by a run
stopped between the two steps, is summarized by a later run instead of keeping every row for ever.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07 08:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'summary_pending',
        sa.Column('host_id', sa.String(length=36), nullable=False),
        sa.Column('day', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('host_id', 'day', name='pk_summary_pending'),
    )


def downgrade():
    op.drop_table('summary_pending')
