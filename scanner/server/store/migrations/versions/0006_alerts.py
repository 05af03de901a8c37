"""alert channels, rules, their state and the delivery outbox

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 03:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'alert_channels',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('name', sa.String(64), nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('config', sa.Text(), nullable=False),
        sa.Column('secret', sa.String(128), nullable=True),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.UniqueConstraint('name', name='uq_alert_channels_name'),
    )
    op.create_table(
        'alert_rules',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('name', sa.String(64), nullable=False),
        sa.Column('kind', sa.String(32), nullable=False),
        sa.Column('params', sa.Text(), nullable=False),
        sa.Column('org_path', sa.String(512), nullable=False),
        sa.Column('channel_id', sa.Integer(), sa.ForeignKey('alert_channels.id', ondelete='CASCADE',
                                                            name='fk_alert_rules_channel_id_alert_channels'),
                  nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created_by', sa.String(64), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.UniqueConstraint('name', name='uq_alert_rules_name'),
    )
    op.create_table(
        'alert_state',
        sa.Column('rule_id', sa.Integer(), sa.ForeignKey('alert_rules.id', ondelete='CASCADE',
                                                         name='fk_alert_state_rule_id_alert_rules'),
                  primary_key=True),
        sa.Column('key', sa.String(300), primary_key=True),
        sa.Column('since', sa.BigInteger(), nullable=False),
    )
    op.create_table(
        'alert_outbox',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('event_id', sa.String(36), nullable=False),
        sa.Column('channel_id', sa.Integer(), sa.ForeignKey('alert_channels.id', ondelete='CASCADE',
                                                            name='fk_alert_outbox_channel_id_alert_channels'),
                  nullable=False),
        sa.Column('event', sa.Text(), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.BigInteger(), nullable=False),
        sa.Column('delivered_at', sa.BigInteger(), nullable=True),
        sa.Column('last_error', sa.String(512), nullable=True),
        sa.UniqueConstraint('event_id', name='uq_alert_outbox_event_id'),
    )
    op.create_index('ix_alert_outbox_due', 'alert_outbox',
                    ['delivered_at', 'next_attempt_at'])


def downgrade():
    op.drop_index('ix_alert_outbox_due', table_name='alert_outbox')
    op.drop_table('alert_outbox')
    op.drop_table('alert_state')
    op.drop_table('alert_rules')
    op.drop_table('alert_channels')
