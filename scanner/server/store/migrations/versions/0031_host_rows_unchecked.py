"""the rows of a host's latest state and its change records without a foreign key to hosts
(results, components, result_changes, component_changes).

PostgreSQL checks a foreign key with a query per inserted row (an RI trigger: a SELECT ... FOR KEY
SHARE of the host's row): a host's first report inserts its ~160 results, and a report that changes
many results inserts a change record for each. Measured in one transaction (psql, 158 result rows of a
real report): 6.1 to 8.1 ms with the key, 3.9 ms without. The key never refused a row and never
cascaded: every such row is written by the batch writer or re-evaluation under the host row's lock
(SELECT ... FOR UPDATE in the same transaction, intake/batch.py), and hosts are retired, never deleted
(workflow/hosts.py); the writer refuses a report whose host row it cannot lock, and
tests/server/test_batch_store.py checks that no row names a missing host.
The keys of the per-report tables (reports, host_profiles, host_firsts) stay.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07 04:40:00
"""
from alembic import op


revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None

TABLES = ("results", "components", "result_changes", "component_changes")


def upgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        name = "fk_%s_host_id_hosts" % table
        if postgres:
            op.drop_constraint(name, table, type_="foreignkey")
        else:
            with op.batch_alter_table(table) as batch_op:
                batch_op.drop_constraint(name, type_="foreignkey")


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        name = "fk_%s_host_id_hosts" % table
        if postgres:
            op.create_foreign_key(name, table, "hosts", ["host_id"], ["id"], ondelete="CASCADE")
        else:
            with op.batch_alter_table(table) as batch_op:
                batch_op.create_foreign_key(name, "hosts", ["host_id"], ["id"], ondelete="CASCADE")
