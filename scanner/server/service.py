"""Operations behind `xcscan server ...`: init, serve, reevaluate."""
from __future__ import annotations

import gzip
import json
import os
import socket

from sqlalchemy import select, update

from scanner.errors import XcscanError
from scanner.server.store import db
from scanner.server.settings import load_settings, save_settings


def open_engine(settings, migrate=True):
    from scanner.server.store.migrate import upgrade
    engine = db.make_engine(settings.db_url, settings.pool_size)
    try:
        if migrate:
            upgrade(engine)
    except Exception as exc:  # connection refused, bad URL, permissions...
        engine.dispose()
        raise XcscanError("cannot open database %s: %s" % (safe_url(settings.db_url), first_line(exc)),
                          hint="check the --db URL, that the server is running and the user may create tables")
    return engine


def safe_url(url):
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return "%s://%s@%s" % (scheme, creds.split(":", 1)[0], host)
    return url


def first_line(exc):
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def init(data_dir, db_url=None, admin="admin", password=None, names=None):
    """Create the data directory, TLS material, schema and first admin. Refuses to overwrite.

    The admin's name and password are checked before anything is written: a weak password leaves
    no half-made data directory behind."""
    from scanner.server.pki import default_names, make_pki
    from scanner.server.access.accounts import add_user, check_username, list_users
    from scanner.server.access.passwords import password_problem
    from scanner.server.errors import ApiError
    from scanner.server.store.scope import Scope
    try:
        check_username(admin)
    except ApiError as exc:
        raise XcscanError("admin user name %r: %s" % (admin, exc.message), hint="choose another --admin NAME")
    fresh = not os.path.exists(os.path.join(data_dir, "server.json"))
    if password is not None:
        problem = password_problem(password, admin)
        if problem:
            raise XcscanError("admin password: %s" % problem, hint="nothing was written; give a stronger password "
                              "(--password-file FILE or XCSCAN_ADMIN_PASSWORD)")
    elif fresh:
        raise XcscanError("the first admin needs a password", hint="nothing was written; pass --password-file "
                          "FILE or set XCSCAN_ADMIN_PASSWORD, or answer the prompt")
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    settings = load_settings(data_dir, db_url=db_url)
    created = []
    if not os.path.exists(settings.path("ca.pem")):
        make_pki(settings.data_dir, names or default_names())
        created.append("ca")
    save_settings(settings)
    engine = open_engine(settings)
    try:
        if not list_users(engine, scope=Scope.everything()):
            if not password:
                raise XcscanError("the first admin needs a password", hint="pass --password-file or set "
                                  "XCSCAN_ADMIN_PASSWORD, or answer the prompt")
            try:
                add_user(engine, admin, password, "admin", actor="cli:init", scope=Scope.everything())
            except ApiError as exc:
                raise XcscanError(exc.message)
            created.append("admin")
    finally:
        engine.dispose()
    tighten_permissions(settings)
    return settings, created


SECRET_FILES = ("xcscan.db", "xcscan.db-wal", "xcscan.db-shm", "server.json", "server.key", "ca.key")


def tighten_permissions(settings):
    """The data directory 0700 and every secret in it 0600 (the database, server.json, which may hold
    a database password, and the keys), also when init runs over an existing directory."""
    os.chmod(settings.data_dir, 0o700)
    for name in SECRET_FILES:
        path = settings.path(name)
        if os.path.isfile(path) and not os.path.islink(path):
            os.chmod(path, 0o600)


def admin_names(settings):
    """The admins' user names (what `server init` tells the person who ran it)."""
    from scanner.server.access.accounts import list_users
    from scanner.server.store.scope import Scope
    engine = open_engine(settings)
    try:
        return [u["username"] for u in list_users(engine, scope=Scope.everything()) if u.get("role") == "admin"]
    finally:
        engine.dispose()


def serve(settings, host="127.0.0.1", port=8443, workers=1, tls=True, log_level="info"):
    import uvicorn
    engine = open_engine(settings)  # migrate once, before any worker starts
    engine.dispose()
    kwargs = {}
    if tls:
        cert, key = settings.path("server.pem"), settings.path("server.key")
        if not (os.path.exists(cert) and os.path.exists(key)):
            raise XcscanError("no TLS certificate in %s" % settings.data_dir,
                              hint="run `xcscan server init` first, or pass --insecure-http behind a TLS proxy")
        kwargs.update(ssl_certfile=cert, ssl_keyfile=key)
    os.environ["XCSCAN_SERVER_DIR"] = settings.data_dir
    os.environ["XCSCAN_SERVER_DB"] = settings.db_url
    raise_open_file_limit()
    try:
        uvicorn.run("scanner.server.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, timeout_graceful_shutdown=5, server_header=False,
                    # the client address and scheme come from X-Forwarded-For/-Proto only when the
                    # connection is from a configured trusted proxy (then cookies are Secure, HSTS sent)
                    proxy_headers=bool(settings.trusted_proxies.strip()),
                    forwarded_allow_ips=settings.trusted_proxies.strip() or None,
                    date_header=True,
                    # request deadlines, head limits and the per-client cap (connguard.py)
                    http="scanner.server.connguard:GuardedHttpToolsProtocol",
                    # no WebSocket upgrades (the application has none): an upgraded connection would leave
                    # the guard's deadlines and per-client count
                    ws="none",
                    timeout_keep_alive=settings.keep_alive_timeout,
                    limit_concurrency=settings.max_connections or None, **kwargs)
    except socket.error as exc:
        raise XcscanError("cannot listen on %s:%d: %s" % (host, port, exc.strerror or exc))


def raise_open_file_limit():
    """Open files up to the hard limit: each connection holds one (the common soft limit of 1,024
    would otherwise cap the server below max_connections)."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536) if hard != resource.RLIM_INFINITY
                                                       else 65536, hard))
    except (ImportError, ValueError, OSError):
        pass


def prune(settings, days=None):
    """Retention (store/retention.py): drop the bodies of reports older than ``days`` (default:
    the report_retention_days setting) and the change records older than change_retention_days; one
    node at a time. Returns prune()'s summary."""
    from scanner.server.store import retention
    days = settings.report_retention_days if days is None else days
    engine = open_engine(settings)
    try:
        out = retention.prune(engine, days, compact=settings.report_compaction,
                              summaries=settings.report_daily_summaries, change_days=settings.change_retention_days)
        if out["reports"] or out["changes"]:
            with db.write_tx(engine) as conn:
                from scanner.server.store.audit import audit
                audit(conn, "cli", "reports.prune", None, dict(out, days=days,
                                                               change_days=settings.change_retention_days))
    finally:
        engine.dispose()
    return out


def reevaluate(settings, profile=None, latest_only=False, log=None, scope=None):
    """Re-classify and re-evaluate stored reports' raw facts with the current catalog and rules;
    ``scope`` (store/scope.py): only the reports of hosts inside it (default: every host).

    Nothing in a stored report is trusted: its ``summary.profile`` is used only when it names an
    installed profile (never as a path), and a report that cannot be read or evaluated is reported
    through ``log`` and skipped; the rest of the fleet is still re-evaluated. Returns
    (re-evaluated, [(report id, why skipped)])."""
    from scanner.server.store.scope import Scope, check
    scope = check(scope or Scope.everything())
    try:
        from scanner.pipeline import evaluate_report
    except ImportError:
        raise XcscanError("this xcscan has no rule engine (scanner.pipeline.evaluate_report)",
                          hint="upgrade xcscan on the server")
    from scanner.engine.profiles import list_profiles
    from scanner.server.intake.ingest import apply_latest, derive
    from scanner.server.store import jsondoc, rollups
    from scanner.server.store import bodies
    from scanner.server.store.reports import report_document
    from scanner.server.util import now
    installed = set(list_profiles())
    if profile is not None and profile not in installed:
        raise XcscanError("unknown profile %r" % profile, hint="installed profiles: %s" % ", ".join(sorted(installed)))
    engine = open_engine(settings)
    r = db.reports
    done = 0
    skipped = []
    try:
        with engine.connect() as conn:
            q = select(r.c.id, r.c.host_id, r.c.collected_at).where(r.c.pruned_at.is_(None)).order_by(
                r.c.host_id, r.c.collected_at)  # a pruned report has no facts left to evaluate
            cond = scope.where(db.hosts.c.org_path)
            if cond is not None:
                q = q.where(r.c.host_id.in_(select(db.hosts.c.id).where(cond)))
            if latest_only:
                q = q.where(r.c.id.in_(select(db.hosts.c.latest_report_id)))
            rows = conn.execute(q).all()
        for report_id, host_id, collected_at in rows:
            try:
                with engine.connect() as conn:
                    row = dict(conn.execute(select(r.c.id, r.c.body_gz, r.c.body_kind, r.c.sha256, r.c.collected_at)
                                            .where(r.c.id == report_id)).mappings().one())
                    bodies.load(conn, [row])
                original = report_document(row)
                if not isinstance(original, dict):
                    raise jsondoc.Unreadable("not a report object")
                use = profile or _stored_profile(original, installed)
                new = evaluate_report(original, profile=use)
                derived = derive(new)
                evaluated = gzip.compress(json.dumps(new, ensure_ascii=False).encode("utf-8"))
            except Exception as exc:  # noqa: BLE001 - one bad report is reported, never stops the fleet
                why = "%s: %s" % (exc.__class__.__name__, first_line(exc)[:300])
                skipped.append((report_id, why))
                if log:
                    log("skipped report %s: %s" % (report_id, why))
                continue
            with db.write_tx(engine) as conn:
                conn.execute(update(r).where(r.c.id == report_id).values(
                    evaluated_gz=evaluated, evaluated_at=now(), profile=derived["profile"], score=derived["score"],
                    loc_rate=derived["loc_rate"], fail_count=derived["fail_count"], loc_cats=derived["loc_cats"]))
                apply_latest(conn, host_id, report_id, collected_at, derived)
                # its results may hold other rule ids under the same report: the kept set goes (store/coverage.py)
                conn.execute(db.host_rule_sets.delete().where(db.host_rule_sets.c.host_id == host_id))
                rollups.invalidate_from(conn, collected_at // rollups.DAY)  # its day's roll-up had the old score
            done += 1
            if log and done % 500 == 0:
                log("%d/%d" % (done, len(rows)))
        # the days whose roll-ups held the old scores were dropped above; recompute them now (under the
        # roll-up lock: a server node computing them meanwhile is waited for, nothing is done twice)
        from scanner.server.store.queries import TREND_DAYS
        rollups.ensure(engine, TREND_DAYS)
        with db.write_tx(engine) as conn:
            from scanner.server.store.audit import audit
            audit(conn, "cli", "reevaluate", None, {"reports": done, "profile": profile, "orgs": list(scope.orgs),
                                                    "skipped": len(skipped)}, org=scope.root())
    finally:
        engine.dispose()
    return done, skipped


class UnknownProfile(ValueError):
    pass


def _stored_profile(doc, installed):
    """The profile a stored report names, when it is one of the installed profiles' names."""
    name = (doc.get("summary") if isinstance(doc.get("summary"), dict) else {}).get("profile")
    if name is None:
        return "all"
    if not isinstance(name, str) or name not in installed:
        raise UnknownProfile("the report names profile %r, which is not installed here (installed: %s); "
                             "re-evaluate it with --profile NAME" % (str(name)[:80], ", ".join(sorted(installed))))
    return name
