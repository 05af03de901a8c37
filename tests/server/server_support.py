"""Real aggregator helpers (fixtures in conftest.py): `xcscan server init` + `xcscan server serve` in a subprocess with the
init-made TLS certificate, against SQLite and against PostgreSQL at 127.0.0.1:5432 (a uniquely
named database per test session, dropped afterwards)."""
from __future__ import annotations

import contextlib
import os
import secrets
import socket
import ssl
import subprocess
import sys

import pytest
from server_process import wait_until_serving  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PG_BASE = os.environ.get("XCSCAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
ADMIN = ("admin", "admin-password-1")
OFFICER = ("officer1", "officer-password-1")
AUDITOR = ("auditor1", "auditor-password-1")
IN_CI = os.environ.get("CI", "").lower() == "true"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_admin_conn():
    import psycopg
    return psycopg.connect(PG_BASE, autocommit=True, connect_timeout=5)


@contextlib.contextmanager
def fresh_pg_database():
    """A new, uniquely named PostgreSQL database for one server (or one test session), dropped on exit.
    Skips when PostgreSQL is not reachable; fails under CI=true, where it is required."""
    import secrets
    import pytest
    try:
        conn = _pg_admin_conn()
    except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        msg = "PostgreSQL at %s is not reachable: %s" % (PG_BASE, exc)
        if IN_CI:
            pytest.fail(msg + " (required under CI=true)")
        pytest.skip(msg)
    name = "xcscan_t_%d_%s" % (os.getpid(), secrets.token_hex(4))
    conn.execute('CREATE DATABASE "%s"' % name)
    conn.close()
    base, _db = PG_BASE.rsplit("/", 1)
    try:
        yield "%s/%s" % (base, name)
    finally:
        conn = _pg_admin_conn()
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        conn.execute('DROP DATABASE IF EXISTS "%s"' % name)
        conn.close()


def run_cli(args, env=None, input_text=None, check=True):
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "scanner"] + args, capture_output=True, text=True, env=full_env,
                          input=input_text, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError("xcscan %s failed (%d):\n%s\n%s" % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
    return proc


class Server(object):
    def __init__(self, data_dir, db_url, kind):
        self.data_dir = str(data_dir)
        self.db_url = db_url
        self.kind = kind
        self.port = free_port()
        self.base_url = "https://127.0.0.1:%d" % self.port
        self.ca = os.path.join(self.data_dir, "ca.pem")
        self.proc = None
        self._engine = None

    def cli(self, *args, **kw):
        args = list(args) + ["--data-dir", self.data_dir] + (["--db", self.db_url] if self.db_url else [])
        return run_cli(args, **kw)

    def start(self, workers=1):
        args = [sys.executable, "-m", "scanner", "server", "serve", "--data-dir", self.data_dir, "--port", str(self.port),
                "--workers", str(workers), "--log-level", "warning"]
        if self.db_url:
            args += ["--db", self.db_url]
        self.log = open(os.path.join(self.data_dir, "serve.log"), "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until_serving(self.proc, self.port, self.ca, self.log.name, timeout=30)
        return self

    def stop(self):
        if getattr(self, "_admin", None) is not None:
            self._admin.close()
            self._admin = None
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self._engine is not None:
            self._engine.dispose()

    @property
    def engine(self):
        """Direct database access for assertions (same URL the server uses)."""
        if self._engine is None:
            from scanner.server.store.db import make_engine
            from scanner.server.settings import load_settings
            self._engine = make_engine(load_settings(self.data_dir, db_url=self.db_url).db_url, pool_size=2)
        return self._engine

    def client(self, **kw):
        import httpx
        return httpx.Client(base_url=self.base_url, verify=ssl.create_default_context(cafile=self.ca), timeout=60, **kw)

    def login(self, who=ADMIN):
        with self.client() as c:
            resp = c.post("/api/v1/session", json={"username": who[0], "password": who[1]})
        assert resp.status_code == 200, resp.text
        return self.client(headers={"Authorization": "Bearer " + resp.json()["token"]})

    def token(self, org="/gov/finance", uses=10, expires="7d"):
        """An enrollment token, made through the admin API (the CLI path has its own test)."""
        if getattr(self, "_admin", None) is None:
            self._admin = self.login()
        resp = self._admin.post("/api/v1/tokens", json={"org": org, "uses": uses, "expires": expires})
        assert resp.status_code == 201, resp.text
        return resp.json()["token"]

    def counts(self):
        """Row counts of every table: the 'database unchanged' check. Not counted: the audit log,
        sessions and login throttling (requests write them by design), the daily roll-ups (daily_loc too), a
        cache derived from the reports that the first overview of a day fills in, and the kept working-paper
        summaries (host_papers) and rule-set digests (host_rule_sets), caches derived from the reports that
        a control-point summary, a coverage view or the server's job fill in."""
        from sqlalchemy import func, select
        from scanner.server.store import db
        skip = ("audit_log", "sessions", "login_throttle", "daily_rollups", "daily_loc", "rollup_days", "host_papers",
                "host_rule_sets")
        with self.engine.connect() as conn:
            return {t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                    for t in db.metadata.sorted_tables if t.name not in skip}


def make_server(tmp_path_factory, kind, pg=None, workers=1, settings=None):
    """A started server; ``settings``: server.json values to set after init (limits under test)."""
    data = tmp_path_factory.mktemp("srv-%s" % kind)
    db_url = pg if kind == "postgres" else None
    srv = Server(data, db_url, kind)
    srv.cli("server", "init", env={"XCSCAN_ADMIN_PASSWORD": ADMIN[1]})
    if settings:
        import json
        cfg = os.path.join(srv.data_dir, "server.json")
        with open(cfg, encoding="utf-8") as fh:
            values = json.load(fh)
        values.update(settings)
        with open(cfg, "w", encoding="utf-8") as fh:
            json.dump(values, fh)
    srv.cli("server", "user", "add", OFFICER[0], "--role", "officer", env={"XCSCAN_USER_PASSWORD": OFFICER[1]})
    srv.cli("server", "user", "add", AUDITOR[0], "--role", "auditor", env={"XCSCAN_USER_PASSWORD": AUDITOR[1]})
    return srv.start(workers)
