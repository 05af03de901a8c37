"""change records written at intake (result_changes, component_changes, change_epoch: store/changes.py)
and the per-category localization history (reports.loc_cats, daily_loc: store/rollups.py)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 08:40:00
"""
import time

from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.add_column('reports', sa.Column('loc_cats', sa.Text(), nullable=True))
    op.create_table(
        'result_changes',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('host_id', sa.String(length=36), nullable=False),
        sa.Column('profile', sa.String(length=64), nullable=False),
        sa.Column('rule_id', sa.String(length=128), nullable=False),
        sa.Column('at', sa.BigInteger(), nullable=False),
        sa.Column('status_before', sa.String(length=16), nullable=True),
        sa.Column('status_after', sa.String(length=16), nullable=True),
        sa.Column('severity', sa.String(length=16), nullable=True),
        sa.Column('title_zh', sa.String(length=512), nullable=True),
        sa.Column('title_en', sa.String(length=512), nullable=True),
        sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name='fk_result_changes_host_id_hosts', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_result_changes'),
    )
    op.create_index('ix_result_changes_at', 'result_changes', ['at'], unique=False)
    op.create_index('ix_result_changes_host_at', 'result_changes', ['host_id', 'at'], unique=False)
    op.create_table(
        'component_changes',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('host_id', sa.String(length=36), nullable=False),
        sa.Column('at', sa.BigInteger(), nullable=False),
        sa.Column('op', sa.String(length=8), nullable=False),
        sa.Column('category', sa.String(length=32), nullable=True),
        sa.Column('comp_key', sa.String(length=255), nullable=True),
        sa.Column('product_id', sa.String(length=64), nullable=True),
        sa.Column('name_zh', sa.String(length=255), nullable=True),
        sa.Column('name_en', sa.String(length=255), nullable=True),
        sa.Column('origin', sa.String(length=16), nullable=True),
        sa.Column('version', sa.String(length=255), nullable=True),
        sa.Column('substitutes', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name='fk_component_changes_host_id_hosts',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_component_changes'),
    )
    op.create_index('ix_component_changes_at', 'component_changes', ['at'], unique=False)
    op.create_index('ix_component_changes_host_at', 'component_changes', ['host_id', 'at'], unique=False)
    op.create_table(
        'change_epoch',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('since', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_change_epoch'),
    )
    op.create_table(
        'daily_loc',
        sa.Column('day', sa.Integer(), nullable=False),
        sa.Column('org_path', sa.String(length=512), nullable=False),
        sa.Column('category', sa.String(length=32), nullable=False),
        sa.Column('hosts', sa.Integer(), nullable=False),
        sa.Column('n_domestic', sa.Integer(), nullable=False),
        sa.Column('n_foreign', sa.Integer(), nullable=False),
        sa.Column('n_unknown', sa.Integer(), nullable=False),
        sa.UniqueConstraint('day', 'org_path', 'category', name='uq_daily_loc_day_org_path_category'),
    )
    # a database that already holds reports: the changes before now were never recorded (the feed says so)
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM reports LIMIT 1")).first() is not None:
        bind.execute(sa.text("INSERT INTO change_epoch (id, since) VALUES (1, :t)"), {"t": int(time.time())})


def downgrade():
    op.drop_table('daily_loc')
    op.drop_table('change_epoch')
    op.drop_index('ix_component_changes_host_at', table_name='component_changes')
    op.drop_index('ix_component_changes_at', table_name='component_changes')
    op.drop_table('component_changes')
    op.drop_index('ix_result_changes_host_at', table_name='result_changes')
    op.drop_index('ix_result_changes_at', table_name='result_changes')
    op.drop_table('result_changes')
    op.drop_column('reports', 'loc_cats')
