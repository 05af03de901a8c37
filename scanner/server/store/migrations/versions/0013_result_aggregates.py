"""maintained aggregates of the latest results and components (result_counts, rule_failing,
component_counts), hosts indexed in the fleet's order (org unit, hostname), the waived score per
host profile, a digest per result row (row_hash) so that intake rewrites only the rows that changed,
and reports.pruned_at (retention of report bodies)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 05:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('results', sa.Column('row_hash', sa.String(length=32), nullable=True))
    op.add_column('reports', sa.Column('pruned_at', sa.BigInteger(), nullable=True))
    op.add_column('host_profiles', sa.Column('waived_n', sa.Integer(), server_default='0', nullable=False))
    op.add_column('host_profiles', sa.Column('waived_score', sa.Float(), nullable=True))
    op.add_column('host_profiles', sa.Column('waived_min', sa.BigInteger(), nullable=True))
    op.add_column('host_profiles', sa.Column('waived_max', sa.BigInteger(), nullable=True))
    op.add_column('host_profiles', sa.Column('fail_weight', sa.Integer(), server_default='0', nullable=False))
    op.add_column('host_profiles', sa.Column('waived_weight', sa.Integer(), server_default='0', nullable=False))
    op.create_index('ix_host_profiles_waived_min', 'host_profiles', ['waived_min'], unique=False,
                    postgresql_where=sa.text('waived_n > 0'), sqlite_where=sa.text('waived_n > 0'))
    op.create_table(
        'result_counts',
        sa.Column('org_path', sa.String(length=512), nullable=False),
        sa.Column('profile', sa.String(length=64), nullable=False),
        sa.Column('rule_id', sa.String(length=128), nullable=False),
        sa.Column('severity', sa.String(length=16), nullable=False),
        sa.Column('category', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('waiver_until', sa.BigInteger(), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.UniqueConstraint('org_path', 'profile', 'rule_id', 'severity', 'category', 'status', 'waiver_until',
                            name='uq_result_counts_key'),
    )
    op.create_table(
        'rule_failing',
        sa.Column('org_path', sa.String(length=512), nullable=False),
        sa.Column('rule_id', sa.String(length=128), nullable=False),
        sa.Column('covered_until', sa.BigInteger(), nullable=False),
        sa.Column('hosts', sa.Integer(), nullable=False),
        sa.UniqueConstraint('org_path', 'rule_id', 'covered_until', name='uq_rule_failing_org_path_rule_id_covered_until'),
    )
    op.create_table(
        'component_counts',
        sa.Column('org_path', sa.String(length=512), nullable=False),
        sa.Column('category', sa.String(length=32), nullable=False),
        sa.Column('origin', sa.String(length=16), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.UniqueConstraint('org_path', 'category', 'origin', name='uq_component_counts_org_path_category_origin'),
    )
    op.create_table(
        'org_hosts',
        sa.Column('org_path', sa.String(length=512), nullable=False),
        sa.Column('hosts', sa.Integer(), nullable=False),
        sa.Column('loc_domestic', sa.Integer(), nullable=False),
        sa.Column('loc_foreign', sa.Integer(), nullable=False),
        sa.Column('loc_unknown', sa.Integer(), nullable=False),
        sa.Column('loc_sum', sa.Float(), nullable=False),
        sa.Column('loc_n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('org_path', name='pk_org_hosts'),
    )
    op.create_table(
        'org_profiles',
        sa.Column('org_path', sa.String(length=512), nullable=False),
        sa.Column('profile', sa.String(length=64), nullable=False),
        sa.Column('waived_min', sa.BigInteger(), nullable=False),
        sa.Column('waived_max', sa.BigInteger(), nullable=False),
        sa.Column('hosts', sa.Integer(), nullable=False),
        sa.Column('score_sum', sa.Float(), nullable=False),
        sa.Column('scored', sa.Integer(), nullable=False),
        sa.Column('wscore_sum', sa.Float(), nullable=False),
        sa.Column('wscored', sa.Integer(), nullable=False),
        sa.Column('failed', sa.Integer(), nullable=False),
        sa.Column('waived_n', sa.Integer(), nullable=False),
        sa.Column('passed', sa.Integer(), nullable=False),
        sa.Column('raw_sum', sa.Float(), nullable=False),
        sa.Column('raw_n', sa.Integer(), nullable=False),
        sa.UniqueConstraint('org_path', 'profile', 'waived_min', 'waived_max', name='uq_org_profiles_key'),
    )
    op.create_index('ix_hosts_last_seen', 'hosts', ['last_seen'], unique=False)
    op.create_index('ix_hosts_org_hostname', 'hosts', ['org_path', 'hostname', 'id'], unique=False)
    op.drop_index('ix_hosts_org_path', table_name='hosts')
    # counted once from the results already stored; intake and the workflow keep them from here on
    from scanner.server.store import aggregates
    aggregates.refresh_profiles(op.get_bind())
    aggregates.rebuild(op.get_bind(), failing=False)
    op.execute("INSERT INTO rule_failing (org_path, rule_id, covered_until, hosts) "
               "SELECT h.org_path, x.rule_id, x.u, count(*) FROM (SELECT host_id, rule_id, "
               "min(coalesce(waiver_until, 0)) AS u FROM results WHERE status = 'fail' GROUP BY host_id, rule_id) x "
               "JOIN hosts h ON h.id = x.host_id GROUP BY h.org_path, x.rule_id, x.u")


def downgrade():
    op.create_index('ix_hosts_org_path', 'hosts', ['org_path'], unique=False)
    op.drop_index('ix_hosts_org_hostname', table_name='hosts')
    op.drop_table('component_counts')
    op.drop_table('org_profiles')
    op.drop_table('org_hosts')
    op.drop_index('ix_hosts_last_seen', table_name='hosts')
    op.drop_table('rule_failing')
    op.drop_table('result_counts')
    op.drop_index('ix_host_profiles_waived_min', table_name='host_profiles')
    for col in ('waived_weight', 'fail_weight', 'waived_max', 'waived_min', 'waived_score', 'waived_n'):
        op.drop_column('host_profiles', col)
    op.drop_column('results', 'row_hash')
    op.drop_column('reports', 'pruned_at')
