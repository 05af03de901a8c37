"""host_papers: each host's working-paper summary of its latest report, kept (store/paper_summaries.py).
The summary by 控制点 of an org subtree decoded and assessed every host's latest report on every view
(~7 ms of CPU a host: 0.8 s for a unit of 100 hosts, 8 s for a department of 1,000 at 10,000 hosts);
it now reads one small row per host and makes again only the rows whose stamp no longer matches.

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-07 22:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0035'
down_revision = '0034'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'host_papers',
        sa.Column('host_id', sa.String(length=36), sa.ForeignKey('hosts.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('report_id', sa.String(length=36), nullable=False),
        sa.Column('level', sa.String(length=32), nullable=True),
        sa.Column('stamp', sa.String(length=64), nullable=False),
        sa.Column('summary', sa.Text(), nullable=False),
        sa.Column('made_at', sa.BigInteger(), nullable=False),
    )


def downgrade():
    op.drop_table('host_papers')
