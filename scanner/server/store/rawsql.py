"""Set-at-a-time statements on the raw driver connection, for the report intake hot path.

The batch writer stores tens of reports (hundreds of rows) per transaction. Building SQLAlchemy
expressions and result objects for each statement cost more CPU than the database spent running
them, so this module speaks to the driver directly, with fixed statement texts (PostgreSQL
plans each once per connection) and one statement per table and operation:

================  ==========================================  =========================================
operation         PostgreSQL (psycopg 3)                      SQLite (sqlite3)
================  ==========================================  =========================================
select by keys    ``WHERE k = ANY(%s)``                        ``WHERE k IN (SELECT value FROM json_each(?))``
insert rows       ``INSERT .. SELECT`` (json); more rows     ``executemany`` (runs in C)
                  or a bytea: ``COPY .. (FORMAT BINARY)``
update rows       ``UPDATE ... FROM json_to_recordset(%s)``    ``executemany``
delete by keys    ``DELETE ... USING json_to_recordset(%s)``   ``executemany``
add to counters   ``INSERT .. ON CONFLICT DO UPDATE`` (json)   ``executemany`` (the same upsert)
================  ==========================================  =========================================

Column lists come from the SQLAlchemy tables in db.py, so the schema has one definition. The
statements run inside the caller's SQLAlchemy transaction (``db.write_tx``), on its connection.

Round trips (PostgreSQL): ``select_many`` sends several selects at once and reads their answers
together (psycopg pipeline mode, one round trip); between ``begin_pipeline`` and ``end_pipeline``
the writes are sent without waiting for each answer (one round trip for all of them). COPY cannot
run in pipeline mode: inside one, a few rows are one insert from JSON (with a binary column, the
report bodies: an ``executemany``) riding the pipeline, and more (over ``PIPELINE_INSERT_ROWS``
rows) end the pipeline, COPY, and start a new one, so statements still run in the order they
were given. An error in a pipelined statement is
raised by ``end_pipeline`` (or the next read) and fails the transaction, as it would have at once.
On SQLite these are plain loops (``executemany`` runs in C; there is no network round trip).
"""
from __future__ import annotations

from scanner.server.util import dumps

PIPELINE_INSERT_ROWS = 32  # more rows than this in one insert: COPY (outside the pipeline)

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
        self._pipeline = None

    def begin_pipeline(self):
        """Send the following writes without waiting for each answer (PostgreSQL; no-op elsewhere)."""

    def end_pipeline(self):
        """Wait for the answers of the writes sent since ``begin_pipeline``; raise the first error."""

    def select_many(self, specs):
        """[rows] for each (table, cols, key, values, lock) in ``specs``, as ``select_in``."""
        return [self.select_in(*spec) for spec in specs]

    def _types(self, table, cols):
        """PostgreSQL type names of ``cols`` (json_to_recordset columns and binary COPY), cached."""
        key = (table.name, tuple(cols))
        types = _TYPES.get(key)
        if types is None:
            names = [table.c[c].type.compile(self.dialect).split("(")[0] for c in cols]
            types = _TYPES[key] = ["bytea" if n == "BYTEA" else _PG_TYPES[n] for n in names]
        return types


def _key_array(values):
    """(parameter, whether it is a text array literal) for ``= ANY(...)``: strings are sent as one
    ``text[]`` literal, a str (psycopg's list dumper inspects every element and costs more CPU than
    the select it feeds); anything else as the list."""
    values = list(values)
    for v in values:
        if type(v) is not str:
            return values, False
    if not values:
        return "{}", True
    joined = '","'.join(values)
    if "\\" in joined or '"' in joined:  # quoted elements: a backslash escapes these two
        joined = '","'.join([v.replace("\\", "\\\\").replace('"', '\\"') for v in values])
    return '{"' + joined + '"}', True


class PgSql(_Sql):
    @staticmethod
    def _select_sql(table, cols, key, lock=False, text=False):
        sql = "SELECT %s FROM %s WHERE %s = ANY(%s)" % (", ".join(cols), table.name, key,
                                                         "%s::text[]" if text else "%s")
        if lock:
            sql += " ORDER BY %s FOR UPDATE" % key
        return sql

    def select_in(self, table, cols, key, values, lock=False):
        """Rows (tuples of ``cols``) whose ``key`` is in ``values``; ``lock``: FOR UPDATE, in key order."""
        param, text = _key_array(values)
        with self.raw.cursor() as cur:
            cur.execute(self._select_sql(table, cols, key, lock, text), (param,))
            return cur.fetchall()

    def select_many(self, specs):
        specs = list(specs)
        if len(specs) < 2 or self._pipeline is not None:
            return [self.select_in(*spec) for spec in specs]
        cursors = []
        try:
            with self.raw.pipeline():
                for spec in specs:
                    table, cols, key, values = spec[:4]
                    cur = self.raw.cursor()
                    cursors.append(cur)
                    param, text = _key_array(values)
                    cur.execute(self._select_sql(table, cols, key, spec[4] if len(spec) > 4 else False, text),
                                (param,))
            return [cur.fetchall() for cur in cursors]
        finally:
            for cur in cursors:
                cur.close()

    def begin_pipeline(self):
        if self._pipeline is None:
            self._pipeline = self.raw.pipeline()
            self._pipeline.__enter__()

    def end_pipeline(self, exc_info=(None, None, None)):
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.__exit__(*exc_info)

    def execute(self, sql, params=None):
        """One statement of the caller's (rides the pipeline when one is open)."""
        with self.raw.cursor() as cur:
            cur.execute(sql, params)

    def insert(self, table, cols, rows):
        """A few rows (up to ``PIPELINE_INSERT_ROWS``) without a binary column: one ``INSERT ... SELECT
        FROM json_to_recordset`` riding the pipeline (one statement and one executor run for all of
        them: an ``executemany`` ran one per row, each with its parameters dumped in Python; measured
        per synthetic report stored alone, 0.3 ms less of this process's CPU and of PostgreSQL's).
        More rows: COPY in binary format (no text escaping; for a host's first 158 result rows,
        ~1 ms of PostgreSQL CPU less than parsing them from JSON). A few rows with a bytea (report
        bodies) in pipeline mode: an ``executemany``."""
        if not rows:
            return
        if len(rows) <= PIPELINE_INSERT_ROWS and "bytea" not in self._types(table, cols):
            with self.raw.cursor() as cur:
                cur.execute("INSERT INTO %s (%s) SELECT %s FROM %s" % (
                    table.name, ", ".join(cols), ", ".join(cols), self._recordset(table, cols)),
                    (dumps([dict(zip(cols, row)) for row in rows]),))
            return
        if self._pipeline is not None:
            if len(rows) <= PIPELINE_INSERT_ROWS:
                marks = ", ".join("%b" if t == "bytea" else "%s" for t in self._types(table, cols))
                with self.raw.cursor() as cur:
                    cur.executemany("INSERT INTO %s (%s) VALUES (%s)" % (table.name, ", ".join(cols), marks), rows)
                return
            self.end_pipeline()
            try:
                self._copy(table, cols, rows)
            finally:
                self.begin_pipeline()
            return
        self._copy(table, cols, rows)

    def insert_chained(self, table, cols, key, rows):
        """Change records (store/changes.py ``chained``): tuples of ``cols`` + prev_at; a None
        prev_at becomes the newest ``at`` stored of the row's ``key`` (-1: none), read in the insert
        itself by walking the (host_id, at) index back from the host's newest change to the key's
        (a max() read every change of the host: ~1,000 a year) (rows of one statement do not see
        each other: the caller gave the later rows of a key their prev_at). One statement, whatever
        the number of rows."""
        names = tuple(cols) + ("prev_at",)
        with self.raw.cursor() as cur:
            cur.execute("INSERT INTO %s (%s) SELECT %s, COALESCE(x.prev_at, (SELECT p.at FROM %s AS p WHERE %s "
                        "ORDER BY p.at DESC LIMIT 1), -1) FROM %s" % (table.name, ", ".join(names), ", ".join("x." + c for c in cols), table.name,
                                     " AND ".join(("p.%s IS NOT DISTINCT FROM x.%s" if table.c[k].nullable else "p.%s = x.%s")
                                                  % (k, k) for k in key), self._recordset(table, names)),
                        (dumps([dict(zip(names, row)) for row in rows]),))

    def _copy(self, table, cols, rows):
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
        with self.raw.cursor() as cur:
            cur.execute(self.update_sql(table, keys, cols), (dumps([dict(zip(names, row)) for row in rows]), len(rows)))

    def update_sql(self, table, keys, cols):
        """The text of ``update``: parameters (the rows as a JSON array, their number)."""
        names = list(keys) + list(cols)
        return "UPDATE %s AS t SET %s FROM %s WHERE %s" % (
            table.name, ", ".join("%s = x.%s" % (c, c) for c in cols), self._rows_of(table, names),
            " AND ".join("t.%s = x.%s" % (k, k) for k in keys))

    def _recordset(self, table, names):
        """The JSON rows parameter (an array of objects keyed by ``names``) as a relation ``x``."""
        record = ", ".join("%s %s" % (n, t) for n, t in zip(names, self._types(table, names)))
        return "json_to_recordset(%%s::json) AS x(%s)" % record

    def _rows_of(self, table, names):
        """The JSON rows parameter as a relation with its row count: PostgreSQL estimates any
        json_to_recordset at 100 rows, and against a table of a few thousand rows (components at
        1,000 hosts) it then hashes the whole table, scanned, for a handful of changed rows; a LIMIT
        of the row count (a parameter: 10 % of 100 in a generic plan) makes it walk the key index."""
        return "(SELECT * FROM %s LIMIT %%s) AS x" % self._recordset(table, names)

    def delete(self, table, keys, rows):
        """Delete the rows matching each tuple of ``keys`` values."""
        if not rows:
            return
        with self.raw.cursor() as cur:
            if len(keys) == 1:
                cur.execute("DELETE FROM %s WHERE %s = ANY(%%s)" % (table.name, keys[0]), ([r[0] for r in rows],))
                return
            cur.execute("DELETE FROM %s AS t USING %s WHERE %s" % (
                table.name, self._rows_of(table, keys), " AND ".join("t.%s = x.%s" % (k, k) for k in keys)),
                (dumps([dict(zip(keys, row)) for row in rows]), len(rows)))

    def add_counts(self, table, keys, cols, rows):
        """``rows``: tuples of ``keys + cols`` (``cols``: one column name or several); adds each
        value to its column of the row of its keys (made if new). Rows in key order, so concurrent
        writers take the row locks in the same order."""
        if not rows:
            return
        cols = (cols,) if isinstance(cols, str) else tuple(cols)
        names = list(keys) + list(cols)
        with self.raw.cursor() as cur:
            cur.execute("INSERT INTO %s (%s) SELECT %s FROM %s ON CONFLICT (%s) DO UPDATE SET %s" % (
                table.name, ", ".join(names), ", ".join(names), self._recordset(table, names), ", ".join(keys),
                ", ".join("%s = %s.%s + excluded.%s" % (c, table.name, c, c) for c in cols)),
                (dumps([dict(zip(names, row)) for row in rows]),))


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

    def insert_chained(self, table, cols, key, rows):
        """As PgSql.insert_chained (each row sees the ones inserted before it)."""
        if rows:
            self.raw.executemany("INSERT INTO %s (%s, prev_at) VALUES (%s, COALESCE(?, (SELECT p.at FROM %s AS p "
                                 "WHERE %s ORDER BY p.at DESC LIMIT 1), -1))" % (table.name, ", ".join(cols), ", ".join("?" * len(cols)),
                                                      table.name, " AND ".join("p.%s IS ?" % k for k in key)),
                                 [tuple(r) + tuple(r[cols.index(k)] for k in key) for r in rows])

    def update(self, table, keys, cols, rows):
        if rows:
            n = len(keys)
            self.raw.executemany("UPDATE %s SET %s WHERE %s" % (
                table.name, ", ".join("%s = ?" % c for c in cols), " AND ".join("%s = ?" % k for k in keys)),
                [tuple(row[n:]) + tuple(row[:n]) for row in rows])

    def add_counts(self, table, keys, cols, rows):
        if rows:
            cols = (cols,) if isinstance(cols, str) else tuple(cols)
            names = list(keys) + list(cols)
            self.raw.executemany("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) DO UPDATE SET %s" % (
                table.name, ", ".join(names), ", ".join("?" * len(names)), ", ".join(keys),
                ", ".join("%s = %s + excluded.%s" % (c, c, c) for c in cols)), rows)

    def delete(self, table, keys, rows):
        if rows:
            self.raw.executemany("DELETE FROM %s WHERE %s" % (
                table.name, " AND ".join("%s = ?" % k for k in keys)), rows)
