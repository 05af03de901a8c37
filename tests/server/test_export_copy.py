"""The findings CSV export written by PostgreSQL (store/csvcopy.py: COPY of the same query, cells
formatted in SQL) is byte for byte the one Python writes (web/export.py) from the same rows: header
in both languages, formula-looking values, commas, quotes, line breaks, non-ASCII text, NULLs,
empty strings, every kind of stored JSON value; with scope, filters, offset and limit."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import insert

from scanner.server.store import db, queries
from scanner.server.store.scope import Scope
from scanner.server.web import export
from scanner.server.web.api import FINDING_FIELDS, INVENTORY_FIELDS

# (title_en, title_zh, category, severity, actual (stored JSON text), expected)
EDGE = [
    ("=HYPERLINK(\"http://x\")", "等保=测试", "baseline", "high", '"=1+2"', '"-3"'),
    ("+plus, comma", "逗号，中文", "crypto", "low", '"@SUM(A1)"', '"\\tTAB"'),
    ("-minus \"quoted\"", "引号\"内\"", "data-security", "medium", '{"a": "=x", "b": [1, 2]}', '[1,"x,y"]'),
    ("@at\nnewline", "换行\r\n回车", None, None, '"line\\nbreak"', '"cr\\rstart"'),
    ("\ttab", "", "", "", "null", None),
    ("\rcr", None, "localization", "info", "true", "3.50"),
    ("plain", "普通", "baseline", "critical", '""', '"\\u4e2d\\u6587 \\" \\\\ \\/"'),
    ("", "空", "baseline", "high", '"\\u0000nul"', '"\\ud83d\\ude00"'),
    ("'already", "'已", "baseline", "high", 'not json, at all', '"unterminated'),
    ("emoji 😀", "表情😀", "baseline", "high", '"😀 plain, with comma"', '"\\u001f ctl"'),
    ("quote\"", "x", "baseline", "high", '"a\\"b"', '-1'),
    ("comma,", "y", "baseline", "high", '"=\\"q\\""', '" lead space"'),
    ("\\.", "\\.", "baseline", "high", '"\\\\."', '"\\r"'),
    ("x" * 300, "长" * 200, "baseline", "high", '"' + "y" * 2000 + '"', '[' + ",".join(['"a"'] * 300) + ']'),
]
HOSTS = [("h1", "/gov/a", "=evil-host"), ("h2", "/gov/a/b", "普通主机, \"q\""), ("h3", "/gov/c", "-host\nx")]


@pytest.fixture
def pg_engine(request):
    """A migrated, empty scratch PostgreSQL database (the db_engine fixture's postgres case)."""
    from scanner.server.store import migrate
    eng = db.make_engine(request.getfixturevalue("pg_scratch_url"))
    with eng.begin() as conn:
        db.metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


def _seed(engine):
    with db.write_tx(engine) as conn:
        for hid, org, name in HOSTS:
            conn.execute(insert(db.hosts).values(id=hid, hostname=name, org_path=org, public_key="k" * 64,
                                                 enrolled_at=1))
            rows = []
            for i, (ten, tzh, cat, sev, actual, expected) in enumerate(EDGE):
                for profile in ("mlps-l3", "=prof"):
                    rows.append({"host_id": hid, "profile": profile, "rule_id": "r.%02d" % i if i % 5 else "-r.%02d" % i,
                                 "title_en": ten, "title_zh": tzh, "category": cat, "severity": sev,
                                 "status": ("fail", "pass", "waived", "fail", "manual")[i % 5], "actual": actual,
                                 "expected": expected, "waiver_id": 7 if i % 3 == 0 else None,
                                 "waiver_until": (4102444800 if i % 2 else 1) if i % 3 == 0 else None})
            conn.execute(insert(db.results), rows)
            conn.execute(insert(db.components), [
                {"host_id": hid, "seq": k, "category": "database", "product_id": p, "name_en": n, "name_zh": z,
                 "vendor_en": v, "origin": o, "version": ver}
                for k, (p, n, z, v, o, ver) in enumerate([
                    ("dm", "DM, \"8\"", "达梦", "=vendor", "domestic", "-8.1"),
                    ("oracle-db", "Oracle\nDB", "甲骨文", None, "foreign", ""),
                    ("x", "", None, "@v", "unknown", None)])])


def _python(engine, query, fields, lang):
    columns = [c.name for c in query.selected_columns]
    counter = {}
    text = "".join(export.csv_chunks(queries.stream(engine, query), columns, fields, lang, counter))
    return text.encode("utf-8"), counter["rows"]


def _copy(engine, query, fields, lang):
    counter = {}
    data = export.csv_header(fields, lang).encode("utf-8") + b"".join(export.pg_csv_rows(engine, query, fields, counter))
    return data, counter["rows"]


@pytest.mark.parametrize("lang", [None, "zh", "en"])
def test_copy_export_is_byte_equal_to_the_python_export(pg_engine, lang):
    _seed(pg_engine)
    cases = [
        (queries.findings_query(Scope.everything()), FINDING_FIELDS),
        (queries.findings_query(Scope.everything(), org="/gov/a", status=["fail", "waived"]), FINDING_FIELDS),
        (queries.findings_query(Scope(["/gov/a/b"])), FINDING_FIELDS),
        (queries.findings_query(Scope.everything()).offset(5).limit(17), FINDING_FIELDS),
        (queries.findings_query(Scope.everything(), q="evil"), FINDING_FIELDS),
        (queries.inventory_query(Scope.everything()), INVENTORY_FIELDS),
    ]
    for query, fields in cases:
        py, py_rows = _python(pg_engine, query, fields, lang)
        pg, pg_rows = _copy(pg_engine, query, fields, lang)
        assert pg == py, (query, _first_difference(pg, py))
        assert pg_rows == py_rows
    # the whole export has every row, and the cells are what a spreadsheet should see
    py, rows = _python(pg_engine, cases[0][0], FINDING_FIELDS, lang)
    assert rows == len(HOSTS) * len(EDGE) * 2
    parsed = list(csv.reader(io.StringIO(py.decode("utf-8").lstrip("\ufeff"))))
    assert len(parsed) == rows + 1 and all(len(r) == len(FINDING_FIELDS) for r in parsed)
    cells = [c for r in parsed[1:] for c in r]
    assert not any(c[:1] in ("=", "+", "-", "@", "\t", "\r") for c in cells)
    by = {(r[1], r[3], r[4]): dict(zip(FINDING_FIELDS, r)) for r in parsed[1:]}
    row = by[("'=evil-host", "mlps-l3", "'-r.00")]
    assert row["title_en"] == "'=HYPERLINK(\"http://x\")" and row["actual"] == "'=1+2" and row["expected"] == "'-3"
    assert by[("'=evil-host", "mlps-l3", "r.03")]["actual"] == "line\nbreak"
    assert by[("'=evil-host", "mlps-l3", "r.02")]["actual"] == '{"a": "=x", "b": [1, 2]}'
    row = by[("'=evil-host", "mlps-l3", "r.04")]
    assert row["actual"] == "" and row["expected"] == "" and row["title_zh"] == "" and row["category"] == ""
    assert by[("'=evil-host", "mlps-l3", "'-r.05")]["actual"] == "true"
    assert by[("'=evil-host", "mlps-l3", "r.06")]["expected"] == '中文 " \\ /'
    assert by[("'=evil-host", "mlps-l3", "r.07")]["expected"] == '"\\ud83d\\ude00"'  # shown as stored
    assert by[("'=evil-host", "mlps-l3", "r.09")]["expected"] == "\x1f ctl"
    assert by[("'=evil-host", "mlps-l3", "'-r.10")]["expected"] == "'-1"
    # status: a failure under a waiver in force is "waived", one whose waiver expired is "fail"
    assert by[("'=evil-host", "mlps-l3", "'-r.00")]["status"] == "fail"
    assert by[("'=evil-host", "mlps-l3", "r.03")]["status"] == "waived"
    assert by[("'=evil-host", "mlps-l3", "r.03")]["reported_status"] == "fail"


def _first_difference(a, b):
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    return i, a[max(0, i - 80):i + 80], b[max(0, i - 80):i + 80]


def test_copy_export_counts_rows_in_chunks_and_stops_early(pg_engine):
    """Chunks of ``batch`` rows each; closing the stream part way cancels the COPY and gives the
    connection back in a usable state."""
    from scanner.server.store import csvcopy
    _seed(pg_engine)
    query = queries.findings_query(Scope.everything())
    chunks = list(csvcopy.rows(pg_engine, query, FINDING_FIELDS, export.JSON_COLUMNS, batch=10))
    assert [n for _c, n in chunks] == [10] * 8 + [4]
    assert sum(c.count(b"\r\n") for c, _n in chunks) > 84  # line breaks inside cells too
    gen = csvcopy.rows(pg_engine, query, FINDING_FIELDS, export.JSON_COLUMNS, batch=10)
    next(gen)
    gen.close()
    with pg_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM results").scalar() == 84
