"""`xcscan server` commands, Alembic migrations on both databases, re-evaluation of stored facts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from server_support import ADMIN, run_cli
from fleet import Agent

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_init_makes_ca_and_cert_and_keeps_them(tmp_path):
    from cryptography import x509
    d = tmp_path / "srv"
    out = run_cli(["server", "init", "--data-dir", str(d), "--name", "agg.example.gov.cn"],
                  env={"XCSCAN_ADMIN_PASSWORD": "first-admin-pw"}).stdout
    assert "ca.pem" in out
    assert oct(os.stat(d / "server.key").st_mode & 0o777) == "0o600"
    assert oct(os.stat(d / "ca.key").st_mode & 0o777) == "0o600"
    ca = x509.load_pem_x509_certificate((d / "ca.pem").read_bytes())
    srv = x509.load_pem_x509_certificate((d / "server.pem").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = srv.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert "agg.example.gov.cn" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    srv.verify_directly_issued_by(ca)
    before = (d / "ca.pem").read_bytes()
    again = run_cli(["server", "init", "--data-dir", str(d)]).stdout  # idempotent: nothing asked, nothing replaced
    assert "(kept)" in again and (d / "ca.pem").read_bytes() == before


def test_init_needs_a_strong_password(tmp_path):
    proc = run_cli(["server", "init", "--data-dir", str(tmp_path / "s")], env={"XCSCAN_ADMIN_PASSWORD": "short"}, check=False)
    assert proc.returncode == 1 and "at least 10 characters" in proc.stderr and "Traceback" not in proc.stderr


def test_token_and_user_commands(server):
    proc = server.cli("server", "token", "create", "--org", "/gov/tax", "--uses", "2", "--expires", "12h")
    token = proc.stdout.strip()
    assert token.startswith("xct_") and "/gov/tax" in proc.stderr and "2 use(s)" in proc.stderr
    from sqlalchemy import select
    from scanner.server.store import db
    with server.engine.connect() as conn:
        hashes = [r[0] for r in conn.execute(select(db.enroll_tokens.c.token_hash))]
    assert token not in hashes and len(hashes[0]) == 64  # stored hashed only
    with server.client() as c:
        a = Agent("cli-host")
        r = a.enroll(c, token)
        assert r.status_code == 201 and r.json()["org"] == "/gov/tax"
    bad = server.cli("server", "token", "create", "--org", "/gov/../x", check=False)
    assert bad.returncode == 1 and "org must be a path" in bad.stderr
    bad = server.cli("server", "token", "create", "--org", "/x", "--expires", "soon", check=False)
    assert bad.returncode == 1 and "not a duration" in bad.stderr
    name = "cli%s" % uuid.uuid4().hex[:6]
    ok = server.cli("server", "user", "add", name, "--role", "auditor", "--password-file", "-", input_text="auditor-pass-123\n")
    assert "added" in ok.stdout
    with server.client() as c:
        assert c.post("/api/v1/session", json={"username": name, "password": "auditor-pass-123"}).json()["role"] == "auditor"
    bad = server.cli("server", "user", "add", name, "--role", "wizard", "--password-file", "-", input_text="x\n", check=False)
    assert bad.returncode == 2


def test_server_extra_missing_gives_clear_message(tmp_path):
    code = ("import sys, importlib.util as u\n"
            "real = u.find_spec\n"
            "u.find_spec = lambda n, *a: None if n == 'fastapi' else real(n, *a)\n"
            "from scanner.cli import main\n"
            "sys.argv = ['xcscan', 'server', 'serve', '--data-dir', %r]\n"
            "main()\n" % str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1 and "pip install 'xcscan[server]'" in proc.stderr


def test_inventory_command_does_not_import_the_server_stack():
    code = "import sys; from scanner.cli import main\ntry:\n main(['inventory', '--format', 'json'])\nexcept SystemExit: pass\n" \
           "bad = [m for m in ('fastapi', 'sqlalchemy', 'uvicorn', 'alembic') if m in sys.modules]\nprint('HEAVY', bad)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in proc.stdout


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_migrations_create_exactly_the_declared_schema(kind, tmp_path, request):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from scanner.server.store import db
    from scanner.server.store.migrate import current_revision, head_revision, upgrade
    if kind == "postgres":
        base = request.getfixturevalue("pg_url")
        import psycopg
        name = "xcscan_m_%s" % uuid.uuid4().hex[:8]
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute('CREATE DATABASE "%s"' % name)
        url = base.rsplit("/", 1)[0] + "/" + name
    else:
        url = "sqlite:///%s" % (tmp_path / "m.db")
    engine = db.make_engine(url, pool_size=1)
    try:
        upgrade(engine)
        upgrade(engine)  # idempotent
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            # report_bodies' partitions (PostgreSQL; the default one and the daily ones the retention job makes,
            # store/bodies.py) are tables of their own, not declared ones
            diff = compare_metadata(MigrationContext.configure(conn, opts={
                "compare_type": True, "include_name": lambda name, kind, _parent: not (
                    kind == "table" and name.startswith("report_bodies_"))}), db.metadata)
        assert diff == []
    finally:
        engine.dispose()
        if kind == "postgres":
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute('DROP DATABASE "%s"' % name)


def test_unreachable_database_is_a_clear_error(tmp_path):
    proc = run_cli(["server", "init", "--data-dir", str(tmp_path / "s"), "--db", "postgresql://nobody@127.0.0.1:1/none"],
                   env={"XCSCAN_ADMIN_PASSWORD": "first-admin-pw"}, check=False)
    assert proc.returncode == 1 and "cannot open database" in proc.stderr and "Traceback" not in proc.stderr


def test_reevaluate_recomputes_stored_facts_with_current_rules(server, tmp_path):
    """A real scan of a fixture root whose results the (old) agent got wrong: re-evaluation fixes them."""
    from scanner.pipeline import scan_report
    root = os.path.join(REPO, "tests", "fixtures", "hardware", "taishan-kylin")
    if not os.path.isdir(root):
        pytest.skip("fixture root missing")
    report = scan_report(root=root, profile="xinchuang", live=False)
    truth = {r["rule_id"]: r["status"] for r in report["results"]}
    assert "fail" in truth.values() or "pass" in truth.values()
    stale = json.loads(json.dumps(report))
    for r in stale["results"]:
        r["status"] = "manual"  # what an older rule pack said
    a = Agent("reeval-%s" % uuid.uuid4().hex[:6])
    with server.client() as c:
        assert a.enroll(c, server.token()).status_code == 201
        assert a.submit(c, stale).status_code == 200
    with server.login() as c:
        before = {r["rule_id"]: r["status"] for r in c.get("/api/v1/hosts/%s" % a.host_id).json()["results"]}
    assert set(before.values()) == {"manual"}
    out = server.cli("server", "reevaluate", "--latest-only").stdout
    assert "re-evaluated" in out
    with server.login() as c:
        host = c.get("/api/v1/hosts/%s" % a.host_id).json()
        after = {r["rule_id"]: r["status"] for r in host["results"] if r["profile"] == "xinchuang"}
        stored = c.get("/api/v1/reports/%s" % report["report_id"]).json()
    assert after == truth
    assert stored["facts"] == json.loads(json.dumps(report["facts"]))  # raw facts unchanged
    from sqlalchemy import select
    from scanner.server.store import db
    import gzip
    with server.engine.connect() as conn:
        body = conn.execute(select(db.reports.c.body_gz).where(db.reports.c.id == report["report_id"])).scalar()
    assert json.loads(gzip.decompress(body))["results"][0]["status"] == "manual"  # the signed original is kept


@pytest.mark.parametrize("text, expected", [
    ('{"max_body": 10,', "not valid JSON"),
    ('[1, 2]', "must be a JSON object"),
    ('{"sesion_idle": 600}', "unknown setting 'sesion_idle'"),
    ('{"max_body": "16M"}', "setting 'max_body' must be a whole number"),
    ('{"secure_cookies": 1}', "setting 'secure_cookies' must be true or false"),
    ('{"session_idle": -1}', "setting 'session_idle' must be a whole number of at least 0"),
])
def test_bad_server_json_is_a_clear_error_naming_the_file(tmp_path, text, expected):
    from server_support import run_cli
    (tmp_path / "server.json").write_text(text, encoding="utf-8")
    proc = run_cli(["server", "token", "create", "--org", "/x", "--data-dir", str(tmp_path)], check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert str(tmp_path / "server.json") in proc.stderr and expected in proc.stderr
    assert (tmp_path / "server.json").read_text(encoding="utf-8") == text  # nothing rewritten
