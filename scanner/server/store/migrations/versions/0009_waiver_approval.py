"""waivers are requested and approved (four-eyes), optionally for items of a rule; their history

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 03:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    # waivers made before approvals existed applied at once: they stay approved
    with op.batch_alter_table('waivers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.String(length=16), server_default='approved', nullable=False))
        batch_op.add_column(sa.Column('items', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('decided_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('decided_at', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('decision_note', sa.Text(), nullable=True))
    op.create_table('waiver_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('waiver_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['waiver_id'], ['waivers.id'], name=op.f('fk_waiver_events_waiver_id_waivers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waiver_events'))
    )
    with op.batch_alter_table('waiver_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_waiver_events_waiver_id'), ['waiver_id'], unique=False)
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.create_index('ix_results_waiver_until', ['waiver_until'], unique=False)


def downgrade():
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.drop_index('ix_results_waiver_until')
    with op.batch_alter_table('waiver_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_waiver_events_waiver_id'))
    op.drop_table('waiver_events')
    with op.batch_alter_table('waivers', schema=None) as batch_op:
        batch_op.drop_column('decision_note')
        batch_op.drop_column('decided_at')
        batch_op.drop_column('decided_by')
        batch_op.drop_column('items')
        batch_op.drop_column('state')
