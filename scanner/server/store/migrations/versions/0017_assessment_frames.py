"""the working paper's frame (被测单位, 系统名称, 等级, 测评人员, 测评时间) per org unit: workflow/frames.py

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 09:05:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'assessment_frames',
        sa.Column('org_path', sa.String(length=512), nullable=False),
        sa.Column('frame', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.Column('updated_by', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('org_path', name='pk_assessment_frames'),
    )


def downgrade():
    op.drop_table('assessment_frames')
