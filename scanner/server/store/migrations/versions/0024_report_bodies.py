"""Compacted report bodies (store/bodies.py): reports.body_kind says where a report's exact signed
body is (0 reports.body_gz, gzip as received; 1 compacted; 2 dropped by retention), report_bases holds
full bodies (zstd) and report_bodies the others as zstd deltas against a base. On PostgreSQL
report_bodies is range-partitioned by collected_at (weekly partitions made by the retention job, a
default partition for the rest), so retention drops partitions instead of deleting rows.

Existing bodies are carried over as they are: every stored body stays readable in body_gz (kind 0)
and the retention job's first run compacts them; the bodies retention already dropped become kind 2.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 11:40:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade():
    pg = op.get_bind().dialect.name == "postgresql"
    op.add_column('reports', sa.Column('body_kind', sa.SmallInteger(), nullable=False, server_default='0'))
    op.execute("UPDATE reports SET body_kind = 2 WHERE pruned_at IS NOT NULL")
    op.create_index('ix_reports_inline', 'reports', ['host_id', 'collected_at'], unique=False,
                    postgresql_where=sa.text('body_kind = 0'), sqlite_where=sa.text('body_kind = 0'))
    op.create_table(
        'report_bases',
        sa.Column('report_id', sa.String(length=36), nullable=False),
        sa.Column('host_id', sa.String(length=36), nullable=False),
        sa.Column('collected_at', sa.BigInteger(), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('report_id', name='pk_report_bases'),
    )
    op.create_index('ix_report_bases_host', 'report_bases', ['host_id', 'collected_at'], unique=False)
    op.create_table(
        'report_bodies',
        sa.Column('report_id', sa.String(length=36), nullable=False),
        sa.Column('collected_at', sa.BigInteger(), nullable=False),
        sa.Column('host_id', sa.String(length=36), nullable=False),
        sa.Column('base_id', sa.String(length=36), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('report_id', 'collected_at', name='pk_report_bodies'),
        postgresql_partition_by='RANGE (collected_at)',
    )
    op.create_index('ix_report_bodies_base', 'report_bodies', ['base_id'], unique=False)
    if pg:
        op.execute("CREATE TABLE report_bodies_default PARTITION OF report_bodies DEFAULT")


def downgrade():
    if op.get_bind().execute(sa.text("SELECT count(*) FROM reports WHERE body_kind = 1")).scalar():
        raise RuntimeError("compacted report bodies would be lost: downgrade below 0024 only a database "
                           "whose bodies were never compacted")
    op.drop_index('ix_report_bodies_base', table_name='report_bodies')
    op.drop_table('report_bodies')
    op.drop_index('ix_report_bases_host', table_name='report_bases')
    op.drop_table('report_bases')
    op.drop_index('ix_reports_inline', table_name='reports')
    op.drop_column('reports', 'body_kind')
