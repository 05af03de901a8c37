"""API keys

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 03:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'api_keys',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('name', sa.String(64), nullable=False),
        sa.Column('key_hash', sa.String(64), nullable=False),
        sa.Column('role', sa.String(16), nullable=False),
        sa.Column('orgs', sa.Text(), nullable=False),
        sa.Column('created_by', sa.String(64), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.Column('last_used_at', sa.BigInteger(), nullable=True),
        sa.Column('revoked_at', sa.BigInteger(), nullable=True),
        sa.UniqueConstraint('name', name='uq_api_keys_name'),
        sa.UniqueConstraint('key_hash', name='uq_api_keys_key_hash'),
    )


def downgrade():
    op.drop_table('api_keys')
