"""component_changes: a partial index of the domestic components added (ix_component_changes_domestic_add).
The 信创 progress page counts the substitutions completed in the last 90 days (changes.substitutions): a
foreign component gone and a domestic one new in a host and category. Only the hosts that added a
domestic component in the window can have one, and the index finds them without reading the window's
every component change (178,000 rows at 10,000 hosts x 90 days; most are version changes).

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07 19:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0034'
down_revision = '0033'
branch_labels = None
depends_on = None

WHERE = "op = 'add' AND origin = 'domestic'"


def upgrade():
    op.create_index('ix_component_changes_domestic_add', 'component_changes', ['at'],
                    postgresql_where=sa.text(WHERE), sqlite_where=sa.text(WHERE))


def downgrade():
    op.drop_index('ix_component_changes_domestic_add', table_name='component_changes')
