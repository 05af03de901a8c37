"""host_rule_sets: each host's set of rule ids with results, as a digest, kept (store/coverage.py). The
GB/T 28448 coverage of an org subtree needs only which rules each host has results of; reading them for
every host of the whole fleet (1.58 million index entries at 10,000 hosts) took ~1 s a view. Kept per
host under the key of its profiles' latest reports, the view reads one row a host.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07 23:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0036'
down_revision = '0035'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'host_rule_sets',
        sa.Column('host_id', sa.String(length=36), sa.ForeignKey('hosts.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('profiles', sa.Text(), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
    )


def downgrade():
    op.drop_table('host_rule_sets')
