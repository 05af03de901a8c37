"""信创 localization targets per org unit and component category

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 05:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('loc_targets',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('org_path', sa.String(length=512), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('target_rate', sa.Float(), nullable=False),
    sa.Column('deadline', sa.BigInteger(), nullable=False),
    sa.Column('baseline_rate', sa.Float(), nullable=True),
    sa.Column('set_by', sa.String(length=64), nullable=False),
    sa.Column('set_at', sa.BigInteger(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loc_targets')),
    sa.UniqueConstraint('org_path', 'category', name=op.f('uq_loc_targets_org_path_category'))
    )


def downgrade():
    op.drop_table('loc_targets')
