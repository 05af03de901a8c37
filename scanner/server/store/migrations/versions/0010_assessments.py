"""assessors' verdicts for manual and partial GB/T 28448 items, with evidence files

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 03:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('assessments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('level', sa.String(length=32), nullable=False),
    sa.Column('item_id', sa.String(length=64), nullable=False),
    sa.Column('target_kind', sa.String(length=8), nullable=False),
    sa.Column('target', sa.String(length=512), nullable=False),
    sa.Column('org_path', sa.String(length=512), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('record', sa.Text(), nullable=False),
    sa.Column('assessor', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('valid_until', sa.BigInteger(), nullable=False),
    sa.Column('revoked_at', sa.BigInteger(), nullable=True),
    sa.Column('revoked_by', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assessments'))
    )
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.create_index('ix_assessments_target', ['level', 'target'], unique=False)
    op.create_table('assessment_files',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('assessment_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['assessment_id'], ['assessments.id'], name=op.f('fk_assessment_files_assessment_id_assessments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assessment_files'))
    )
    with op.batch_alter_table('assessment_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assessment_files_assessment_id'), ['assessment_id'], unique=False)


def downgrade():
    op.drop_table('assessment_files')
    op.drop_table('assessments')
