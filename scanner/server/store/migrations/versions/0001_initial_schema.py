"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 23:59:34.140764
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    # generated from scanner.server.store.db by alembic autogenerate, then frozen
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=512), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)

    op.create_table('enroll_tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('org_path', sa.String(length=512), nullable=False),
    sa.Column('max_uses', sa.Integer(), nullable=False),
    sa.Column('uses', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('note', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enroll_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_enroll_tokens_token_hash'))
    )
    op.create_table('hosts',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('machine_id', sa.String(length=128), nullable=True),
    sa.Column('org_path', sa.String(length=512), nullable=False),
    sa.Column('public_key', sa.String(length=64), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.Column('enrolled_at', sa.BigInteger(), nullable=False),
    sa.Column('last_seen', sa.BigInteger(), nullable=True),
    sa.Column('latest_report_id', sa.String(length=36), nullable=True),
    sa.Column('latest_collected', sa.BigInteger(), nullable=True),
    sa.Column('os_name', sa.String(length=255), nullable=True),
    sa.Column('os_family', sa.String(length=32), nullable=True),
    sa.Column('loc_domestic', sa.Integer(), nullable=False),
    sa.Column('loc_foreign', sa.Integer(), nullable=False),
    sa.Column('loc_unknown', sa.Integer(), nullable=False),
    sa.Column('loc_rate', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hosts'))
    )
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hosts_org_path'), ['org_path'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('disabled', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('waivers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('rule_id', sa.String(length=128), nullable=False),
    sa.Column('scope', sa.String(length=8), nullable=False),
    sa.Column('scope_value', sa.String(length=512), nullable=True),
    sa.Column('justification', sa.Text(), nullable=False),
    sa.Column('approver', sa.String(length=128), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('revoked_at', sa.BigInteger(), nullable=True),
    sa.Column('revoked_by', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waivers'))
    )
    with op.batch_alter_table('waivers', schema=None) as batch_op:
        batch_op.create_index('ix_waivers_rule', ['rule_id'], unique=False)

    op.create_table('components',
    sa.Column('host_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('product_id', sa.String(length=64), nullable=True),
    sa.Column('name_zh', sa.String(length=255), nullable=True),
    sa.Column('name_en', sa.String(length=255), nullable=True),
    sa.Column('vendor_en', sa.String(length=255), nullable=True),
    sa.Column('vendor_zh', sa.String(length=255), nullable=True),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('version', sa.String(length=255), nullable=True),
    sa.Column('evidence', sa.Text(), nullable=True),
    sa.Column('substitutes', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_components_host_id_hosts'), ondelete='CASCADE'),
    sa.UniqueConstraint('host_id', 'seq', name=op.f('uq_components_host_id_seq'))
    )
    with op.batch_alter_table('components', schema=None) as batch_op:
        batch_op.create_index('ix_components_category_origin', ['category', 'origin'], unique=False)

    op.create_table('host_profiles',
    sa.Column('host_id', sa.String(length=36), nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('report_id', sa.String(length=36), nullable=False),
    sa.Column('collected_at', sa.BigInteger(), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('score_without_waivers', sa.Float(), nullable=True),
    sa.Column('passed', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.Column('other', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_host_profiles_host_id_hosts'), ondelete='CASCADE'),
    sa.UniqueConstraint('host_id', 'profile', name=op.f('uq_host_profiles_host_id_profile'))
    )
    op.create_table('reports',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('host_id', sa.String(length=36), nullable=False),
    sa.Column('received_at', sa.BigInteger(), nullable=False),
    sa.Column('collected_at', sa.BigInteger(), nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('loc_rate', sa.Float(), nullable=True),
    sa.Column('fail_count', sa.Integer(), nullable=True),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('body_gz', sa.LargeBinary(), nullable=False),
    sa.Column('evaluated_gz', sa.LargeBinary(), nullable=True),
    sa.Column('evaluated_at', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_reports_host_id_hosts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reports'))
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index('ix_reports_collected_at', ['collected_at'], unique=False)
        batch_op.create_index('ix_reports_host_collected', ['host_id', 'collected_at'], unique=False)

    op.create_table('results',
    sa.Column('host_id', sa.String(length=36), nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('rule_id', sa.String(length=128), nullable=False),
    sa.Column('title_zh', sa.String(length=512), nullable=True),
    sa.Column('title_en', sa.String(length=512), nullable=True),
    sa.Column('category', sa.String(length=32), nullable=True),
    sa.Column('severity', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('actual', sa.Text(), nullable=True),
    sa.Column('expected', sa.Text(), nullable=True),
    sa.Column('evidence', sa.Text(), nullable=True),
    sa.Column('waiver_id', sa.Integer(), nullable=True),
    sa.Column('waiver_until', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_results_host_id_hosts'), ondelete='CASCADE'),
    sa.UniqueConstraint('host_id', 'profile', 'rule_id', name=op.f('uq_results_host_id_profile_rule_id'))
    )
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.create_index('ix_results_rule_status', ['rule_id', 'status'], unique=False)
        batch_op.create_index('ix_results_status_severity', ['status', 'severity'], unique=False)

    op.create_table('sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('csrf', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_sessions'))
    )


def downgrade():
    # generated from scanner.server.store.db by alembic autogenerate, then frozen
    op.drop_table('sessions')
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.drop_index('ix_results_status_severity')
        batch_op.drop_index('ix_results_rule_status')

    op.drop_table('results')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index('ix_reports_host_collected')
        batch_op.drop_index('ix_reports_collected_at')

    op.drop_table('reports')
    op.drop_table('host_profiles')
    with op.batch_alter_table('components', schema=None) as batch_op:
        batch_op.drop_index('ix_components_category_origin')

    op.drop_table('components')
    with op.batch_alter_table('waivers', schema=None) as batch_op:
        batch_op.drop_index('ix_waivers_rule')

    op.drop_table('waivers')
    op.drop_table('users')
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hosts_org_path'))

    op.drop_table('hosts')
    op.drop_table('enroll_tokens')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_at')

    op.drop_table('audit_log')
