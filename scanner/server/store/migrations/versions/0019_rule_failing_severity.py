"""the most severe severity of each host's failures of a rule in rule_failing's key, so that "top
failing rules" ranks by severity from rule_failing alone (it read every failing row of result_counts)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 08:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def _table(severity):
    cols = [sa.Column('org_path', sa.String(length=512), nullable=False),
            sa.Column('rule_id', sa.String(length=128), nullable=False),
            sa.Column('covered_until', sa.BigInteger(), nullable=False),
            sa.Column('hosts', sa.Integer(), nullable=False)]
    if severity:
        cols.append(sa.Column('severity', sa.String(length=16), server_default='', nullable=False))
        cols.append(sa.UniqueConstraint('org_path', 'rule_id', 'covered_until', 'severity', name='uq_rule_failing_key'))
    else:
        cols.append(sa.UniqueConstraint('org_path', 'rule_id', 'covered_until',
                                        name='uq_rule_failing_org_path_rule_id_covered_until'))
    op.create_table('rule_failing', *cols)


def upgrade():
    # a derived table: made again with its new key and counted from the latest results
    op.drop_table('rule_failing')
    _table(severity=True)
    op.execute("INSERT INTO rule_failing (org_path, rule_id, covered_until, severity, hosts) "
               "SELECT h.org_path, x.rule_id, x.u, substr(x.s, 2), count(*) FROM (SELECT host_id, rule_id, "
               "min(coalesce(waiver_until, 0)) AS u, min(CASE severity WHEN 'critical' THEN '0' WHEN 'high' THEN '1' "
               "WHEN 'medium' THEN '2' WHEN 'low' THEN '3' WHEN 'info' THEN '4' ELSE '5' END || coalesce(severity, '')) "
               "AS s FROM results WHERE status = 'fail' GROUP BY host_id, rule_id) x "
               "JOIN hosts h ON h.id = x.host_id GROUP BY h.org_path, x.rule_id, x.u, substr(x.s, 2)")


def downgrade():
    op.drop_table('rule_failing')
    _table(severity=False)
    op.execute("INSERT INTO rule_failing (org_path, rule_id, covered_until, hosts) "
               "SELECT h.org_path, x.rule_id, x.u, count(*) FROM (SELECT host_id, rule_id, "
               "min(coalesce(waiver_until, 0)) AS u FROM results WHERE status = 'fail' GROUP BY host_id, rule_id) x "
               "JOIN hosts h ON h.id = x.host_id GROUP BY h.org_path, x.rule_id, x.u")
