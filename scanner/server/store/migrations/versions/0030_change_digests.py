"""the change page's default view kept ahead (change_digests): per org path, the last 7 days of changes
as of a time, written by one node every change_digest_interval (store/change_digest.py).

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07 01:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'change_digests',
        sa.Column('org_path', sa.String(length=512), nullable=False),
        sa.Column('at', sa.BigInteger(), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('org_path', name='pk_change_digests'),
    )


def downgrade():
    op.drop_table('change_digests')
