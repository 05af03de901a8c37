"""Enrollment token revocation is its own fact (revoked_at, revoked_by), not an expiry of 0: the
migration converts tokens revoked the old way (time and actor from the audit log, where it has
them), on SQLite and PostgreSQL, and revoked, expired and used-up tokens keep their error codes."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import insert, inspect, select

from scanner.server.errors import ApiError
from scanner.server.access import accounts
from scanner.server.store import db, migrate
from scanner.server.store.scope import Scope
from scanner.server.util import now, sha256_hex

EVERYTHING = Scope.everything()


def _revisions():
    """(the migration that introduced revoked_at / revoked_by, the one before it)."""
    from alembic.script import ScriptDirectory
    script = ScriptDirectory.from_config(migrate.alembic_config())
    mine = [r for r in script.walk_revisions() if (r.doc or "").startswith("enrollment tokens: revoked_at")]
    assert len(mine) == 1
    return mine[0].revision, mine[0].down_revision


@pytest.fixture(params=["sqlite", "postgres"])
def empty_engine(request, tmp_path):
    if request.param == "postgres":
        eng = db.make_engine(request.getfixturevalue("pg_scratch_url"))
        with eng.begin() as conn:
            db.metadata.drop_all(conn)
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    else:
        eng = db.make_engine(str(tmp_path / "xcscan.db"))
    yield eng
    eng.dispose()


def _old_tokens():
    """enroll_tokens as it was before the revision (no revoked_* columns)."""
    from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table
    return Table("enroll_tokens", MetaData(), Column("id", Integer, primary_key=True, autoincrement=True),
                 Column("token_hash", String(64)), Column("org_path", String(512)), Column("max_uses", Integer),
                 Column("uses", Integer), Column("expires_at", BigInteger), Column("created_at", BigInteger),
                 Column("created_by", String(64)), Column("note", String(255)))


def test_migration_converts_sentinel_revocations(empty_engine):
    eng = empty_engine
    _mine, before = _revisions()
    migrate.upgrade(eng, before)
    old = _old_tokens()
    later = now() + 86400
    with eng.begin() as conn:
        ins = lambda secret, exp, created=1000: conn.execute(insert(old).values(  # noqa: E731
            token_hash=sha256_hex(secret), org_path="/mig", max_uses=5, uses=1, expires_at=exp, created_at=created,
            created_by="cli", note=None)).inserted_primary_key[0]
        active = ins("xct_active", later)
        audited = ins("xct_audited", 0, 2000)
        unaudited = ins("xct_unaudited", 0, 3000)
        expired = ins("xct_expired", 500)
        rows = [(5000, "alice", {"id": audited, "uses": 1}), (6000, "bob", {"id": audited, "uses": 1}),
                (5500, "carol", "not json"), (5600, "dave", {"uses": 3})]
        for at, actor, detail in rows:
            conn.execute(insert(db.audit_log).values(at=at, actor=actor, action="token.revoke", target="/mig",
                                                     detail=detail if isinstance(detail, str) else json.dumps(detail)))
    migrate.upgrade(eng)
    t = db.enroll_tokens
    with eng.connect() as conn:
        got = {r.id: r for r in conn.execute(select(t.c.id, t.c.expires_at, t.c.revoked_at, t.c.revoked_by))}
    assert (got[active].expires_at, got[active].revoked_at, got[active].revoked_by) == (later, None, None)
    assert (got[audited].revoked_at, got[audited].revoked_by, got[audited].expires_at) == (5000, "alice", 5000)
    assert (got[unaudited].revoked_at, got[unaudited].revoked_by) == (3000, "-")  # its creation: the earliest
    assert (got[expired].expires_at, got[expired].revoked_at) == (500, None)

    # the error codes an agent sees are unchanged
    def code(secret):
        try:
            with db.write_tx(eng) as conn:
                accounts.consume_token(conn, secret)
        except ApiError as exc:
            return exc.code
        return "ok"
    assert [code(s) for s in ("xct_active", "xct_audited", "xct_unaudited", "xct_expired", "xct_unknown")] == \
        ["ok", "token_revoked", "token_revoked", "token_expired", "unknown_token"]
    listed = {tk["id"]: tk for tk in accounts.list_tokens(eng, scope=EVERYTHING)}
    assert listed[audited]["revoked_by"] == "alice" and listed[active]["revoked_at"] is None

    # and back: the old encoding again, the columns gone
    _downgrade(eng, before)
    with eng.connect() as conn:
        back = {r.id: r.expires_at for r in conn.execute(select(old.c.id, old.c.expires_at))}
        cols = {c["name"] for c in inspect(conn).get_columns("enroll_tokens")}
    assert back[audited] == back[unaudited] == 0 and back[active] == later and "revoked_at" not in cols


def _downgrade(engine, revision):
    from alembic import command
    cfg = migrate.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_revoke_records_who_and_when_and_is_idempotent(db_engine):
    tok = accounts.create_token(db_engine, "/rev", uses=3, actor="alice", scope=EVERYTHING)
    before = now()
    first = accounts.revoke_token(db_engine, tok["id"], actor="bob", scope=EVERYTHING)
    assert first["already"] is False and first["revoked_by"] == "bob" and first["revoked_at"] >= before
    row = accounts.get_token(db_engine, tok["id"], scope=EVERYTHING)
    assert row["revoked_by"] == "bob" and row["revoked_at"] == first["revoked_at"]
    assert row["expires_at"] > now()  # the expiry is kept, not overwritten
    again = accounts.revoke_token(db_engine, tok["id"], actor="carol", scope=EVERYTHING)
    assert again["already"] is True and again["revoked_by"] == "bob" and again["revoked_at"] == first["revoked_at"]
    with db_engine.connect() as conn:
        audits = conn.execute(select(db.audit_log.c.actor).where(db.audit_log.c.action == "token.revoke")).all()
    assert [a for (a,) in audits] == ["bob"]  # the repeated revoke wrote nothing
    with pytest.raises(ApiError) as exc:
        with db.write_tx(db_engine) as conn:
            accounts.consume_token(conn, tok["token"])
    assert exc.value.code == "token_revoked"
    # a department's admin cannot revoke (or see) another department's token
    other = accounts.create_token(db_engine, "/other", scope=EVERYTHING)
    with pytest.raises(ApiError) as exc:
        accounts.revoke_token(db_engine, other["id"], actor="dept", scope=Scope(["/rev"]))
    assert exc.value.status == 404
    assert accounts.get_token(db_engine, other["id"], scope=EVERYTHING)["revoked_at"] is None
    # used up still says so
    used = accounts.create_token(db_engine, "/rev", uses=1, scope=EVERYTHING)
    with db.write_tx(db_engine) as conn:
        accounts.consume_token(conn, used["token"])
    with pytest.raises(ApiError) as exc:
        with db.write_tx(db_engine) as conn:
            accounts.consume_token(conn, used["token"])
    assert exc.value.code == "token_used_up"
