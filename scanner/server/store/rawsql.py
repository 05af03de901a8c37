"""Set-at-a-time statements on the raw driver connection, for the report intake hot path.

The batch writer stores tens of reports (hundreds of rows) per transaction. Building SQLAlchemy
expressions and result objects for each statement cost more CPU than the database spent running
them, so this module speaks to the driver directly, with fixed statement texts (PostgreSQL
plans each once per connection) and one statement per table and operation:

================  ==========================================  =========================================
operation         PostgreSQL (psycopg 3)                      SQLite (sqlite3)
================  ==========================================  =========================================
select by keys    ``WHERE k = ANY(%s)``                        ``WHERE k IN (SELECT value FROM json_each(?))``
insert rows       ``COPY ... FROM STDIN (FORMAT BINARY)``      ``executemany`` (runs in C)
update rows       ``UPDATE ... FROM json_to_recordset(%s)``    ``executemany``
delete by keys    ``DELETE ... USING json_to_recordset(%s)``   ``executemany``
add to counters   ``INSERT .. ON CONFLICT DO UPDATE`` (json)   ``executemany`` (the same upsert)
================  ==========================================  =========================================

Column lists come from the SQLAlchemy tables in db.py, so the schema has one definition. The
statements run inside the caller's SQLAlchemy transaction (``db.write_tx``), on its connection.
"""
from __future__ import annotations

from scanner.server.util import dumps

# SQLAlchemy type name -> json_to_recordset column type
_PG_TYPES = {"VARCHAR": "text", "TEXT": "text", "INTEGER": "int4", "BIGINT": "int8", "FLOAT": "float8"}


_TYPES = {}


def for_connection(conn):
    """The statement set for a SQLAlchemy connection inside a transaction."""
    raw = conn.connection.driver_connection
    return (PgSql if conn.dialect.name == "postgresql" else SqliteSql)(raw, conn.dialect)


class _Sql(object):
    def __init__(self, raw, dialect):
        self.raw = raw
        self.dialect = dialect

    def _types(self, table, cols):
        """PostgreSQL type names of ``cols`` (json_to_recordset columns and binary COPY), cached."""
        key = (table.name, tuple(cols))
        types = _TYPES.get(key)
        if types is None:
            names = [table.c[c].type.compile(self.dialect).split("(")[0] for c in cols]
            types = _TYPES[key] = ["bytea" if n == "BYTEA" else _PG_TYPES[n] for n in names]
        return types


class PgSql(_Sql):
    def select_in(self, table, cols, key, values, lock=False):
        """Rows (tuples of ``cols``) whose ``key`` is in ``values``; ``lock``: FOR UPDATE, in key order."""
        sql = "SELECT %s FROM %s WHERE %s = ANY(%%s)" % (", ".join(cols), table.name, key)
        if lock:
            sql += " ORDER BY %s FOR UPDATE" % key
        with self.raw.cursor() as cur:
            cur.execute(sql, (list(values),))
            return cur.fetchall()

    def insert(self, table, cols, rows):
        """COPY in binary format: no text escaping of the report bodies (bytea) and JSON columns."""
        if not rows:
            return
        with self.raw.cursor() as cur:
            with cur.copy("COPY %s (%s) FROM STDIN (FORMAT BINARY)" % (table.name, ", ".join(cols))) as copy:
                copy.set_types(self._types(table, cols))
                for row in rows:
                    copy.write_row(row)

    def update(self, table, keys, cols, rows):
        """``rows``: tuples of ``keys + cols``; each sets ``cols`` on the row matching ``keys``."""
        if not rows:
            return
        names = list(keys) + list(cols)
        record = ", ".join("%s %s" % (n, t) for n, t in zip(names, self._types(table, names)))
        sql = "UPDATE %s AS t SET %s FROM json_to_recordset(%%s::json) AS x(%s) WHERE %s" % (
            table.name, ", ".join("%s = x.%s" % (c, c) for c in cols), record,
            " AND ".join("t.%s = x.%s" % (k, k) for k in keys))
        with self.raw.cursor() as cur:
            cur.execute(sql, (dumps([dict(zip(names, row)) for row in rows]),))

    def delete(self, table, keys, rows):
        """Delete the rows matching each tuple of ``keys`` values."""
        if not rows:
            return
        with self.raw.cursor() as cur:
            if len(keys) == 1:
                cur.execute("DELETE FROM %s WHERE %s = ANY(%%s)" % (table.name, keys[0]), ([r[0] for r in rows],))
                return
            record = ", ".join("%s %s" % (n, t) for n, t in zip(keys, self._types(table, keys)))
            cur.execute("DELETE FROM %s AS t USING json_to_recordset(%%s::json) AS x(%s) WHERE %s" % (
                table.name, record, " AND ".join("t.%s = x.%s" % (k, k) for k in keys)),
                (dumps([dict(zip(keys, row)) for row in rows]),))

    def add_counts(self, table, keys, col, rows):
        """``rows``: tuples of ``keys + (delta,)``; adds each delta to ``col`` of its row (made if new).
        Rows in key order, so concurrent writers take the row locks in the same order."""
        if not rows:
            return
        names = list(keys) + [col]
        record = ", ".join("%s %s" % (n, t) for n, t in zip(names, self._types(table, names)))
        with self.raw.cursor() as cur:
            cur.execute("INSERT INTO %s (%s) SELECT %s FROM json_to_recordset(%%s::json) AS x(%s) "
                        "ON CONFLICT (%s) DO UPDATE SET %s = %s.%s + excluded.%s" % (
                            table.name, ", ".join(names), ", ".join(names), record, ", ".join(keys), col, table.name,
                            col, col), (dumps([dict(zip(names, row)) for row in rows]),))


class SqliteSql(_Sql):
    def select_in(self, table, cols, key, values, lock=False):  # the write transaction is the lock
        cur = self.raw.execute("SELECT %s FROM %s WHERE %s IN (SELECT value FROM json_each(?))" % (
            ", ".join(cols), table.name, key), (dumps(list(values)),))
        try:
            return cur.fetchall()
        finally:
            cur.close()

    def insert(self, table, cols, rows):
        if rows:
            self.raw.executemany("INSERT INTO %s (%s) VALUES (%s)" % (
                table.name, ", ".join(cols), ", ".join("?" * len(cols))), rows)

    def update(self, table, keys, cols, rows):
        if rows:
            n = len(keys)
            self.raw.executemany("UPDATE %s SET %s WHERE %s" % (
                table.name, ", ".join("%s = ?" % c for c in cols), " AND ".join("%s = ?" % k for k in keys)),
                [tuple(row[n:]) + tuple(row[:n]) for row in rows])

    def add_counts(self, table, keys, col, rows):
        if rows:
            names = list(keys) + [col]
            self.raw.executemany("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) DO UPDATE SET %s = %s + excluded.%s" % (
                table.name, ", ".join(names), ", ".join("?" * len(names)), ", ".join(keys), col, col, col), rows)

    def delete(self, table, keys, rows):
        if rows:
            self.raw.executemany("DELETE FROM %s WHERE %s" % (
                table.name, " AND ".join("%s = ?" % k for k in keys)), rows)
