"""daily roll-ups of the fleet's state per org unit and profile

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 03:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'daily_rollups',
        sa.Column('day', sa.Integer(), nullable=False),
        sa.Column('org_path', sa.String(length=512), nullable=False),
        sa.Column('profile', sa.String(length=64), nullable=False),
        sa.Column('hosts', sa.Integer(), nullable=False),
        sa.Column('score_sum', sa.Float(), nullable=True),
        sa.Column('scored', sa.Integer(), nullable=False),
        sa.Column('loc_sum', sa.Float(), nullable=True),
        sa.Column('loc_n', sa.Integer(), nullable=False),
        sa.UniqueConstraint('day', 'org_path', 'profile', name='uq_daily_rollups_day_org_path_profile'),
    )
    op.create_table(
        'rollup_days',
        sa.Column('day', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('computed_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('day', name='pk_rollup_days'),
    )


def downgrade():
    op.drop_table('rollup_days')
    op.drop_table('daily_rollups')
