"""enrollment tokens: revoked_at / revoked_by instead of expires_at = 0

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 05:50:00

Before this revision a revoked token was stored as ``expires_at = 0``. Those rows get the time and
actor of their ``token.revoke`` audit entry (the first one); a row without one (an audit log pruned
since) gets its creation time and actor ``-``, the earliest time it can have been revoked. Their
original expiry was overwritten by the revocation and is unknown: ``expires_at`` becomes the
revocation time.
"""
import json

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_tokens = sa.table('enroll_tokens', sa.column('id', sa.Integer()), sa.column('expires_at', sa.BigInteger()),
                   sa.column('created_at', sa.BigInteger()), sa.column('revoked_at', sa.BigInteger()),
                   sa.column('revoked_by', sa.String(64)))
_audit = sa.table('audit_log', sa.column('id', sa.Integer()), sa.column('at', sa.BigInteger()),
                  sa.column('actor', sa.String(64)), sa.column('action', sa.String(64)), sa.column('detail', sa.Text()))


def upgrade():
    with op.batch_alter_table('enroll_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revoked_at', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('revoked_by', sa.String(length=64), nullable=True))
    conn = op.get_bind()
    revoked = conn.execute(sa.select(_tokens.c.id, _tokens.c.created_at).where(_tokens.c.expires_at == 0)).all()
    if not revoked:
        return
    first = {}
    for at, actor, detail in conn.execute(sa.select(_audit.c.at, _audit.c.actor, _audit.c.detail)
                                          .where(_audit.c.action == 'token.revoke').order_by(_audit.c.at, _audit.c.id)):
        try:
            tid = int(json.loads(detail)["id"])
        except (TypeError, ValueError, KeyError):
            continue
        first.setdefault(tid, (at, actor))
    for tid, created in revoked:
        at, actor = first.get(tid, (created, '-'))
        conn.execute(sa.update(_tokens).where(_tokens.c.id == tid)
                     .values(revoked_at=at, revoked_by=(actor or '-')[:64], expires_at=at))


def downgrade():
    conn = op.get_bind()
    conn.execute(sa.update(_tokens).where(_tokens.c.revoked_at.isnot(None)).values(expires_at=0))
    with op.batch_alter_table('enroll_tokens', schema=None) as batch_op:
        batch_op.drop_column('revoked_by')
        batch_op.drop_column('revoked_at')
