"""A base body may itself be a zstd delta against a root base of another host (store/bodies.py): hosts
of one build share most of their report, so a fleet keeps a few whole bodies instead of one per host.
report_bases.parent_id: NULL for a body stored whole (every base before this migration).
ix_report_bodies_base goes: only retention asks which bases the deltas refer to, once per run over the
few days of deltas kept, and on PostgreSQL the index cost 16 KB and more per daily partition.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 11:30:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('report_bases', sa.Column('parent_id', sa.String(length=36), nullable=True))
    op.create_index('ix_report_bases_parent', 'report_bases', ['parent_id'], unique=False)
    op.drop_index('ix_report_bodies_base', table_name='report_bodies')


def downgrade():
    if op.get_bind().execute(sa.text("SELECT count(*) FROM report_bases WHERE parent_id IS NOT NULL")).scalar():
        raise RuntimeError("bases stored against a root would be lost: downgrade below 0025 only a database "
                           "without them")
    op.create_index('ix_report_bodies_base', 'report_bodies', ['base_id'], unique=False)
    op.drop_index('ix_report_bases_parent', table_name='report_bases')
    op.drop_column('report_bases', 'parent_id')
