"""Streamed CSV and JSON exports: every matching row, written as it comes from a server-side
cursor, in constant memory, and an audit entry saying how many rows were written and whether the
export finished (a client that hangs up early leaves ``complete: false``)."""
from __future__ import annotations

import csv
import io
import json
import logging
import re

import anyio
from starlette.responses import StreamingResponse

from scanner.i18n import t
from scanner.server.store.csvcopy import JSON_STRING

log = logging.getLogger("xcscan.server")
FLUSH_ROWS = 500
JSON_COLUMNS = ("actual", "expected")  # stored as JSON text
_JSON_STRING = re.compile(JSON_STRING)


def cell(value):
    """A CSV cell: JSON for lists and dicts; a leading formula character is neutralised."""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text  # spreadsheet formula injection
    return text


def json_cell(text):
    """A stored JSON column for CSV: JSON ``null`` is empty, a JSON string is its value, anything
    else (objects, arrays, numbers, booleans; text that is not JSON) is the stored text as it is.
    store/csvcopy.py makes the same cell in SQL (the PostgreSQL export), with the same pattern."""
    if text is None or text == "null":
        return ""
    if _JSON_STRING.fullmatch(text):
        return cell(json.loads(text))
    return cell(text)


def header_labels(fields, lang):
    """The header row: each column's name in ``lang`` followed by its code, e.g. "主机名 hostname"."""
    out = []
    for f in fields:
        label = t("server.col." + f, lang)
        out.append(f if label == "server.col." + f else "%s %s" % (label, f))
    return out


def csv_header(fields, lang=None):
    """The BOM (Excel opens UTF-8 Chinese text correctly) and the header row."""
    buf = io.StringIO()
    csv.writer(buf).writerow(header_labels(fields, lang) if lang else fields)
    return "\ufeff" + buf.getvalue()


def csv_chunks(rows, columns, fields, lang=None, counter=None):
    """CSV text in chunks: the BOM, the header, the rows. ``rows``: tuples in ``columns`` order;
    ``counter["rows"]`` counts what was written."""
    yield csv_header(fields, lang)
    buf = io.StringIO()
    w = csv.writer(buf)
    index = [columns.index(f) for f in fields]
    convert = [json_cell if f in JSON_COLUMNS else cell for f in fields]
    n = 0
    for row in rows:
        w.writerow([conv(row[i]) for conv, i in zip(convert, index)])
        n += 1
        if n % FLUSH_ROWS == 0:
            if counter is not None:
                counter["rows"] = n
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    if counter is not None:
        counter["rows"] = n
    yield buf.getvalue()


def pg_csv_rows(engine, query, fields, counter=None):
    """The rows of ``csv_chunks`` (bytes, UTF-8, no header) written by PostgreSQL itself from the same
    query (store/csvcopy.py): the same bytes, at the database's pace."""
    from scanner.server.store import csvcopy
    n = 0
    for chunk, k in csvcopy.rows(engine, query, fields, JSON_COLUMNS):
        n += k
        if counter is not None:
            counter["rows"] = n
        yield chunk
    if counter is not None:
        counter["rows"] = n


def json_chunks(rows, columns, counter=None):
    """A JSON array of objects in chunks; JSON columns are embedded as JSON, not as strings."""
    from scanner.server.store import jsondoc
    yield "["
    n = 0
    parts = []
    for row in rows:
        d = dict(zip(columns, row))
        try:  # the readers' limits: a stored row that cannot be read is logged and left out
            for key in JSON_COLUMNS:
                if key in d:
                    d[key] = jsondoc.decode(d[key])
        except jsondoc.Unreadable as exc:
            jsondoc.skipped("export", d, exc)
            continue
        parts.append(json.dumps(d, ensure_ascii=False))
        n += 1
        if len(parts) == FLUSH_ROWS:
            yield ("," if n > FLUSH_ROWS else "") + ",".join(parts)
            parts = []
            if counter is not None:
                counter["rows"] = n
    if parts:
        yield ("," if n > len(parts) else "") + ",".join(parts)
    if counter is not None:
        counter["rows"] = n
    yield "]"


class ClosingStream(StreamingResponse):
    """A streamed response of ``held`` (store/slots.py ``Held``) that closes it when the response is over
    for any reason: read to its end, the client gone (Starlette then stops asking for chunks and drops
    the iterator, whose ``finally`` blocks would wait for the garbage collector; the server raises its
    thresholds, app.tune_gc), or the client still connected but taking no more (``send_timeout``: a
    chunk it has not taken within that many seconds ends the response, the connection is closed).
    Closing waits, on a worker thread and shielded from the request's cancellation, for a chunk still
    being made (a database read) to come back."""

    def __init__(self, held, send_timeout, **kw):
        StreamingResponse.__init__(self, held, **kw)
        self.held, self.send_timeout = held, send_timeout

    async def __call__(self, scope, receive, send):
        async def send_in_time(message):
            # uvicorn's send waits while the connection's buffers are full (the client does not read)
            with anyio.fail_after(self.send_timeout):
                await send(message)
        try:
            await StreamingResponse.__call__(self, scope, receive, send_in_time)
        except TimeoutError:
            # the response stays incomplete: the server closes the connection
            log.warning("an export to %s stopped: its client took nothing for %d s",
                        (scope.get("client") or ("?",))[0], self.send_timeout)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.held.close)
