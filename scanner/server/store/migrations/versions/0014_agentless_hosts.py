"""agentless hosts: enrolled under a scanning station whose key signs their reports

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 06:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('station_id', sa.String(length=36), nullable=True))
        batch_op.create_index('ix_hosts_station', ['station_id', 'machine_id'], unique=False)


def downgrade():
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_index('ix_hosts_station')
        batch_op.drop_column('station_id')
