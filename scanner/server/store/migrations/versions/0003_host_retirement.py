"""host retirement

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 05:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retired_at', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('retired_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('retire_reason', sa.String(length=255), nullable=True))


def downgrade():
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_column('retire_reason')
        batch_op.drop_column('retired_by')
        batch_op.drop_column('retired_at')
