"""CSV rows written by PostgreSQL itself: ``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` of an export's
query with every cell formatted in SQL exactly as ``web/export.py`` formats it in Python, so a
full export streams at the database's pace instead of one Python call per row and cell.

The same query (its scope conditions, filters, order, ``offset`` and ``limit``: store/queries.py)
is kept; only its columns are replaced by their cells. Each cell, as ``export.cell`` and
``export.json_cell`` make it:

- a stored JSON column (``actual``, ``expected``): SQL NULL and JSON ``null`` are empty; a JSON
  string (``JSON_STRING``, the same pattern in both paths) is its decoded value; anything else
  (objects, arrays, numbers, booleans, text that is not JSON) is the stored text as it is;
- any other column: its text (``NULL`` empty);
- a cell starting with ``= + - @``, a tab or a carriage return gets a leading ``'`` (spreadsheet
  formula injection);
- an empty cell is written as NULL: PostgreSQL's CSV quotes an empty string (``""``, to tell it
  from NULL) where Python's csv module writes nothing.

PostgreSQL quotes a cell exactly when Python's csv module does (it contains the delimiter, a quote,
``\\n`` or ``\\r``; quotes doubled); its rows end with ``\\n`` and each CopyData message is one row,
so ``rows`` turns the ending into ``\\r\\n`` (csv.writer's) without looking inside the row.
tests/server/test_export_copy.py compares both paths byte for byte."""
from __future__ import annotations

from sqlalchemy import Text, and_, case, cast, func, literal, literal_column, null, or_
from sqlalchemy.dialects.postgresql import JSON

FORMULA = ("=", "+", "-", "@", "\t", "\r")
# A JSON string whose value a cell shows decoded: valid JSON (no raw control character, known
# escapes) and no \u0000 or surrogate escape (PostgreSQL cannot hold the first and rejects a
# lone second); anything else is shown as stored.
JSON_STRING = ('"(?:[^"\\\\\x00-\x1f]|\\\\["\\\\/bfnrt]|\\\\u(?![dD][89abAB])(?!0000)[0-9a-fA-F]{4})*"')
PG_JSON_STRING = "^" + JSON_STRING.replace("\x00", "\x01") + "$"  # PostgreSQL text never holds NUL
# the common case, decoded by removing the quotes: no escape, no quote, no control character
PG_PLAIN_STRING = '^"[^"\\\\\x01-\x1f]*"$'


def _formula_safe(text):
    """``text`` with the leading "'" when it starts like a formula, NULL when empty. ascii(), the
    code of its first character, makes one integer compare for most cells."""
    first = func.ascii(text)
    return case((first >= 65, text),
                (first.in_([ord(c) for c in FORMULA]), literal("'", Text) + text),
                (first == 0, null()), else_=text)  # ascii('') is 0 (text never holds NUL)


def json_cell(col):
    """SQL: the CSV cell of a stored JSON text column. Each branch formats its own value (a CASE
    used as a value is evaluated again wherever it is used)."""
    quoted = func.ascii(col) == 34
    plain = func.substr(col, 2, func.length(col) - 2)
    return case((or_(col.is_(None), col == "null"), null()),
                (and_(quoted, col.op("~")(literal(PG_PLAIN_STRING, Text))),
                 _formula_safe(plain)),
                (and_(quoted, col.op("~")(literal(PG_JSON_STRING, Text))),
                 _formula_safe(cast(col, JSON).op("#>>")(literal_column("'{}'")))),
                else_=_formula_safe(col))


def text_cell(col):
    """SQL: the CSV cell of any other column."""
    return _formula_safe(cast(col, Text))


def csv_select(query, fields, json_columns):
    """``query`` with its columns replaced by the CSV cells of ``fields`` (in that order); the rest
    of the statement (FROM, WHERE, ORDER BY, OFFSET, LIMIT) unchanged."""
    cols = query.selected_columns
    cells = []
    for f in fields:
        expr = cols[f]
        expr = getattr(expr, "element", expr)  # a label's expression
        cells.append((json_cell(expr) if f in json_columns else text_cell(expr)).label(f))
    return query.with_only_columns(*cells, maintain_column_froms=True)


def rows(engine, query, fields, json_columns, batch=2000):
    """Yield chunks (bytes) of CSV rows (``\r\n``-terminated, no header) of ``query``, ``batch``
    rows at a time, with each chunk's row count: (bytes, n). PostgreSQL only."""
    statement = csv_select(query, fields, json_columns)
    compiled = statement.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    sql = "COPY (%s) TO STDOUT (FORMAT csv)" % compiled
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        try:
            with raw.cursor() as cur:
                # JIT compiles these few hundred expressions for longer than it saves (measured:
                # bench/fleet_scale.py's export, docs/server.md "Fourth round")
                cur.execute("SET LOCAL jit = off")
                with cur.copy(sql, compiled.params) as copy:
                    part = []
                    read = copy.read
                    while True:
                        data = read()  # one CopyData message: one row, ending in "\n"
                        if not data:
                            break
                        part.append(data)
                        if len(part) >= batch:
                            yield _crlf(part), len(part)
                            part = []
                    if part:
                        yield _crlf(part), len(part)
        finally:
            raw.rollback()


def _crlf(part):
    """The rows of ``part`` (each ending in "\n") joined, each ending in "\r\n" as csv.writer's do."""
    data = b"".join(part)
    if data.count(b"\n") == len(part):  # no line break inside a (quoted) cell: replace them all
        return data.replace(b"\n", b"\r\n")
    return b"".join(bytes(row[:-1]) + b"\r\n" for row in part)
