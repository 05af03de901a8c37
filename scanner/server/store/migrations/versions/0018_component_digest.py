"""a digest per latest inventory component (components.row_hash), so that intake rewrites only the
components that changed, as it does for results

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 08:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('components', sa.Column('row_hash', sa.String(length=32), nullable=True))


def downgrade():
    op.drop_column('components', 'row_hash')
