"""user org scopes; audit entries carry the org they concern

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 02:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('user_orgs',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('org_path', sa.String(length=512), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_orgs_user_id_users'), ondelete='CASCADE'),
    sa.UniqueConstraint('user_id', 'org_path', name=op.f('uq_user_orgs_user_id_org_path'))
    )
    # users that existed before scopes saw the whole fleet; they keep doing so
    op.execute("INSERT INTO user_orgs (user_id, org_path) SELECT id, '/' FROM users")
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('org_path', sa.String(length=512), nullable=True))


def downgrade():
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_column('org_path')
    op.drop_table('user_orgs')
