"""scheduled background jobs (job_runs): the retention prune run inside the server, each run claimed
by one node

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 08:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'job_runs',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('started_at', sa.BigInteger(), nullable=False),
        sa.Column('finished_at', sa.BigInteger(), nullable=True),
        sa.Column('runs', sa.Integer(), nullable=False),
        sa.Column('node', sa.String(length=128), nullable=True),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('name', name='pk_job_runs'),
    )


def downgrade():
    op.drop_table('job_runs')
