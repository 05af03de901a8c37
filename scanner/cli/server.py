"""`xcscan server`: the central aggregator (needs the `server` extra).

Nothing here imports FastAPI, SQLAlchemy or Uvicorn at module level, so other commands never pay
for them; each sub-command checks the extra is installed and says how to get it.
"""
from __future__ import absolute_import

import os

import click

DEFAULT_DIR = "/var/lib/xcscan-server"


def _need_extra():
    import importlib.util
    missing = [m for m in ("fastapi", "uvicorn", "sqlalchemy", "alembic", "jinja2", "argon2")
               if importlib.util.find_spec(m) is None]
    if missing:
        from scanner.errors import XcscanError
        raise XcscanError("the aggregator needs the server extra (missing: %s)" % ", ".join(missing),
                          hint="pip install 'xcscan[server]' (Python 3.8 or newer)")


def _settings(data_dir, db):
    _need_extra()
    from scanner.server.settings import load_settings
    return load_settings(data_dir, db_url=db)


def _api_error(exc):
    from scanner.errors import XcscanError
    return XcscanError(exc.message)


data_dir_option = click.option("--data-dir", default=lambda: os.environ.get("XCSCAN_SERVER_DIR", DEFAULT_DIR),
                               show_default="$XCSCAN_SERVER_DIR or %s" % DEFAULT_DIR,
                               help="Data directory (database, TLS keys, server.json) / 数据目录")
db_option = click.option("--db", default=None, help="Database URL, e.g. postgresql://user@host/db "
                         "(default: SQLite in the data directory) / 数据库地址")


def _read_password(password_file, prompt_text, env_var):
    """From --password-file (first line; '-' = stdin), else $env_var, else a prompt on a terminal.
    Without a terminal (cron, Ansible, a pipe) nothing is prompted: a clear error says what to give."""
    from scanner.errors import XcscanError
    if password_file:
        try:
            with click.open_file(password_file, "r", encoding="utf-8") as fh:
                return fh.readline().rstrip("\r\n")
        except (IOError, OSError) as exc:
            raise XcscanError("cannot read the password file: %s" % (exc.strerror or exc), path=password_file)
    env = os.environ.get(env_var)
    if env:
        return env
    import sys
    if not sys.stdin.isatty():
        raise XcscanError("no password given and no terminal to ask on",
                          hint="pass --password-file FILE (or - for stdin) or set %s" % env_var)
    return click.prompt(prompt_text, hide_input=True, confirmation_prompt=True)


@click.group()
def server():
    """Central aggregator: signed reports in, fleet dashboard out / 集中汇聚服务"""


@server.command()
@data_dir_option
@db_option
@click.option("--admin", default="admin", show_default=True, help="First admin user name / 首个管理员")
@click.option("--password-file", default=None, help="Read the admin password from this file ('-' = stdin) "
              "(else $XCSCAN_ADMIN_PASSWORD or a prompt) / 从文件读取口令")
@click.option("--name", "names", multiple=True, help="Extra host name or IP for the server certificate "
              "(repeatable; localhost, 127.0.0.1 and the hostname are always included)")
def init(data_dir, db, admin, password_file, names):
    """Create data dir, database, CA + server certificate and the first admin / 初始化"""
    _need_extra()
    from scanner.server import service
    from scanner.server.pki import default_names
    from scanner.server.settings import load_settings
    from scanner.server.access.accounts import list_users
    settings = load_settings(data_dir, db_url=db)
    password = None
    if not os.path.exists(os.path.join(settings.data_dir, "server.json")) or password_file \
            or os.environ.get("XCSCAN_ADMIN_PASSWORD"):
        password = _read_password(password_file, "Password for %s" % admin, "XCSCAN_ADMIN_PASSWORD")
    settings, created = service.init(data_dir, db, admin, password, sorted(set(default_names()) | set(names)))
    click.echo("data directory: %s" % settings.data_dir)
    click.echo("database:       %s" % service.safe_url(settings.db_url))
    click.echo("CA for agents:  %s%s" % (settings.path("ca.pem"), "" if "ca" in created else " (kept)"))
    if os.path.exists(settings.path("ca.key")):
        click.echo("CA private key: %s - the server does not need it to run; keep it offline (move it to "
                   "removable media) and bring it back only to issue a new server certificate"
                   % settings.path("ca.key"))
    if "admin" in created:
        click.echo("admin user:     %s (created; log in with this name)" % admin)
    else:
        click.echo("admin user:     %s (existing, kept)" % (", ".join(service.admin_names(settings)) or "-"))


@server.command()
@data_dir_option
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address / 监听地址")
@click.option("--port", default=8443, show_default=True, type=int, help="Listen port / 监听端口")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes")
@click.option("--insecure-http", is_flag=True, help="Plain HTTP (only behind a TLS-terminating proxy)")
@click.option("--log-level", default="info", type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(data_dir, db, host, port, workers, insecure_http, log_level):
    """Serve the API and web UI over HTTPS / 启动服务"""
    from scanner.server import service
    settings = _settings(data_dir, db)
    if insecure_http:
        settings.secure_cookies = False
    from scanner.server.access import directory
    directory.from_settings(settings)  # a wrong "ldap" setting stops here, before any worker starts, naming it
    from scanner.server.access import oidc
    oidc.from_settings(settings)  # and a wrong "oidc" one (the provider itself is asked at first use)
    service.serve(settings, host, port, workers, tls=not insecure_http, log_level=log_level)


@server.group()
def token():
    """Enrollment tokens / 注册令牌"""


@token.command("create")
@data_dir_option
@db_option
@click.option("--org", required=True, help="Org unit path the hosts join, e.g. /gov/finance / 组织路径")
@click.option("--uses", default=1, show_default=True, type=click.IntRange(1, 1000000), help="How many hosts may enroll")
@click.option("--expires", default="7d", show_default=True, help="Lifetime: 3600, 12h, 7d, 2w")
@click.option("--note", default=None, help="Free-text note")
@click.option("--offline-bundle", "offline_bundle", type=click.Path(dir_okay=False), default=None,
              help="Also write an enrollment bundle (CA, server URL, this token) for hosts on an air-gapped "
                   "network: `xcscan agent enroll --offline FILE` / 写出离线注册包")
@click.option("--url", "url", default=None, help="With --offline-bundle: the aggregator's https:// URL as agents "
                                                  "would reach it / 汇聚服务器地址")
def token_create(data_dir, db, org, uses, expires, note, offline_bundle, url):
    """Create an enrollment token (printed once, stored hashed) / 创建注册令牌"""
    from scanner.errors import XcscanError
    from scanner.server import service
    from scanner.server.access import accounts
    from scanner.server.errors import ApiError
    from scanner.server.store.scope import Scope
    from scanner.server.util import iso, parse_duration
    settings = _settings(data_dir, db)
    if offline_bundle and not (url or "").startswith("https://"):
        raise click.UsageError("--offline-bundle needs --url https://HOST:PORT (what agents put in agent.yaml)")
    seconds = parse_duration(expires)
    if seconds is None:
        raise XcscanError("--expires %r is not a duration" % expires, hint="use e.g. 3600, 12h, 7d or 2w")
    if offline_bundle:
        from scanner.render.output_target import resolve
        resolve(offline_bundle)          # refused before a token exists
    engine = service.open_engine(settings)
    try:
        tok = accounts.create_token(engine, org, uses, seconds, actor="cli", note=note, scope=Scope.everything())
    except ApiError as exc:
        raise _api_error(exc)
    finally:
        engine.dispose()
    click.echo(tok["token"])
    click.echo("org %s, %d use(s), expires %s" % (tok["org"], tok["uses"], iso(tok["expires_at"])), err=True)
    if offline_bundle:
        import json as _json
        with open(settings.path("ca.pem"), encoding="ascii") as fh:
            ca_pem = fh.read()
        doc = {"format": "xcscan-enrollment/1", "server": url.rstrip("/"), "org": tok["org"], "token": tok["token"],
               "expires_at": iso(tok["expires_at"]), "ca_pem": ca_pem}
        from scanner.render.output_target import open_output   # never replaces a device, FIFO or link
        with open_output(offline_bundle, mode=0o600) as fh:
            fh.write(_json.dumps(doc, indent=1).encode("utf-8"))
        click.echo("wrote %s: carry it to the isolated host, then `xcscan agent enroll --offline %s`; it holds "
                   "the token, keep it like one" % (offline_bundle, os.path.basename(offline_bundle)), err=True)


@server.group()
def user():
    """People who use the web UI / 用户"""


@user.command("add")
@data_dir_option
@db_option
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(["admin", "officer", "auditor", "assessor"]),
              help="admin: everything; officer: review and waivers; auditor: read-only; assessor: read-only, records verdicts for manual GB/T 28448 items")
@click.option("--password-file", default=None, help="Read the password from this file ('-' = stdin; "
              "else $XCSCAN_USER_PASSWORD or a prompt)")
@click.option("--org", "orgs", multiple=True, help="Org subtree the user sees, repeatable, e.g. --org /gov/finance "
              "(default: / , the whole fleet) / 可见的组织子树")
def user_add(data_dir, db, username, role, password_file, orgs):
    """Add a user / 添加用户"""
    from scanner.server import service
    from scanner.server.access import accounts
    from scanner.server.errors import ApiError
    from scanner.server.store.scope import Scope
    settings = _settings(data_dir, db)
    password = _read_password(password_file, "Password for %s" % username, "XCSCAN_USER_PASSWORD")
    engine = service.open_engine(settings)
    try:
        added = accounts.add_user(engine, username, password, role, actor="cli", scope=Scope.everything(),
                                  orgs=list(orgs) or None)
    except ApiError as exc:
        raise _api_error(exc)
    finally:
        engine.dispose()
    click.echo("added %s (%s) for %s" % (username, role, ", ".join(added["orgs"])))


@user.command("unlock")
@data_dir_option
@db_option
@click.argument("username")
def user_unlock(data_dir, db, username):
    """Clear a user's failed-login lock / 解除登录失败锁定"""
    from scanner.server import service
    from scanner.server.access import accounts
    from scanner.server.store.scope import Scope
    settings = _settings(data_dir, db)
    engine = service.open_engine(settings)
    try:
        cleared = accounts.unlock_login(engine, username, actor="cli", scope=Scope.everything())
    finally:
        engine.dispose()
    click.echo(("unlocked %s" if cleared else "%s had no failed logins on record") % username)


def _lifecycle(data_dir, db, call):
    """Run an account or token life-cycle operation as the command line (the whole fleet)."""
    from scanner.server import service
    from scanner.server.errors import ApiError
    from scanner.server.store.scope import Scope
    settings = _settings(data_dir, db)
    engine = service.open_engine(settings)
    try:
        return call(engine, Scope.everything())
    except ApiError as exc:
        raise _api_error(exc)
    finally:
        engine.dispose()


@user.command("disable")
@data_dir_option
@db_option
@click.argument("username")
def user_disable(data_dir, db, username):
    """Disable a user; their sessions end now / 停用用户"""
    from scanner.server.access import accounts
    done = _lifecycle(data_dir, db, lambda e, s: accounts.set_disabled(e, username, True, actor="cli", scope=s))
    click.echo("disabled %s (%d session(s) ended)" % (username, done["sessions_ended"]))


@user.command("enable")
@data_dir_option
@db_option
@click.argument("username")
def user_enable(data_dir, db, username):
    """Enable a disabled user / 启用用户"""
    from scanner.server.access import accounts
    _lifecycle(data_dir, db, lambda e, s: accounts.set_disabled(e, username, False, actor="cli", scope=s))
    click.echo("enabled %s" % username)


@user.command("delete")
@data_dir_option
@db_option
@click.argument("username")
def user_delete(data_dir, db, username):
    """Delete a user and end their sessions (the audit log keeps their actions) / 删除用户"""
    from scanner.server.access import accounts
    done = _lifecycle(data_dir, db, lambda e, s: accounts.delete_user(e, username, actor="cli", scope=s))
    click.echo("deleted %s (%d session(s) ended)" % (username, done["sessions_ended"]))


@user.command("reset-password")
@data_dir_option
@db_option
@click.argument("username")
@click.option("--password-file", default=None, help="Read the new password from this file ('-' = stdin; "
              "else $XCSCAN_USER_PASSWORD or a prompt)")
def user_reset_password(data_dir, db, username, password_file):
    """Set a user's password; their sessions end / 重置口令"""
    from scanner.server.access import accounts
    password = _read_password(password_file, "New password for %s" % username, "XCSCAN_USER_PASSWORD")
    done = _lifecycle(data_dir, db, lambda e, s: accounts.reset_password(e, username, password, actor="cli", scope=s))
    click.echo("password of %s reset (%d session(s) ended)" % (username, done["sessions_ended"]))


@user.command("logout")
@data_dir_option
@db_option
@click.argument("username")
def user_logout(data_dir, db, username):
    """End every session of a user now / 结束用户的全部会话"""
    from scanner.server.access import accounts
    done = _lifecycle(data_dir, db, lambda e, s: accounts.end_sessions(e, username, actor="cli", scope=s))
    click.echo("%d session(s) of %s ended" % (done["sessions_ended"], username))


@token.command("revoke")
@data_dir_option
@db_option
@click.argument("token_id", type=int)
def token_revoke(data_dir, db, token_id):
    """Revoke an enrollment token by its id (see `token list` or the admin page) / 吊销注册令牌"""
    from scanner.server.access import accounts
    from scanner.server.util import iso
    done = _lifecycle(data_dir, db, lambda e, s: accounts.revoke_token(e, token_id, actor="cli", scope=s))
    if done["already"]:
        click.echo("enrollment token %d (%s) was already revoked at %s by %s" % (
            token_id, done["org"], iso(done["revoked_at"]), done["revoked_by"]))
    else:
        click.echo("revoked enrollment token %d (%s)" % (token_id, done["org"]))


@token.command("list")
@data_dir_option
@db_option
def token_list(data_dir, db):
    """Enrollment tokens (never their secret): id, org, uses, expiry, state / 列出注册令牌"""
    from scanner.server.access import accounts
    from scanner.server.util import iso, now
    t = now()
    for tk in _lifecycle(data_dir, db, lambda e, s: accounts.list_tokens(e, scope=s)):
        if tk["revoked_at"] is not None:
            state = "revoked %s by %s" % (iso(tk["revoked_at"]), tk["revoked_by"])
        elif tk["uses"] >= tk["max_uses"]:
            state = "used up"
        else:
            state = "expired" if tk["expires_at"] < t else "active"
        click.echo("%d\t%s\t%d/%d uses\texpires %s\t%s%s" % (
            tk["id"], tk["org_path"], tk["uses"], tk["max_uses"], iso(tk["expires_at"]), state,
            "\t" + tk["note"] if tk["note"] else ""))


@server.group()
def host():
    """Enrolled hosts / 主机"""


@host.command("retire")
@data_dir_option
@db_option
@click.argument("host_id")
@click.option("--reason", required=True, help="Why: decommissioned, key compromised ... / 退役原因")
def host_retire(data_dir, db, host_id, reason):
    """Take a host out of the fleet; its reports are refused from now on, its history kept / 退役主机"""
    from scanner.server import service
    from scanner.server.errors import ApiError
    from scanner.server.workflow.hosts import retire_host
    from scanner.server.store.scope import Scope
    settings = _settings(data_dir, db)
    engine = service.open_engine(settings)
    try:
        done = retire_host(engine, host_id, reason, actor="cli", scope=Scope.everything())
    except ApiError as exc:
        raise _api_error(exc)
    finally:
        engine.dispose()
    click.echo("retired %s (%s)" % (done["host_id"], done["reason"]))


@server.command()
@data_dir_option
@db_option
@click.option("--profile", default=None, help="Evaluate with this profile (default: each report's own)")
@click.option("--latest-only", is_flag=True, help="Only each host's latest report")
@click.option("--org", "orgs", multiple=True, help="Only hosts in this org subtree, repeatable (default: all) / 组织子树")
def reevaluate(data_dir, db, profile, latest_only, orgs):
    """Re-classify and re-evaluate stored reports with the current rules / 用当前规则重新评估"""
    from scanner.errors import XcscanError
    from scanner.server import service
    from scanner.server.store.scope import Scope
    settings = _settings(data_dir, db)
    try:
        scope = Scope(orgs) if orgs else Scope.everything()
    except ValueError as exc:
        raise XcscanError("--org: %s" % exc, hint="use an org path such as /gov/finance")
    n, skipped = service.reevaluate(settings, profile, latest_only, log=lambda m: click.echo(m, err=True),
                                    scope=scope)
    click.echo("re-evaluated %d report(s)" % n + (", skipped %d (listed above)" % len(skipped) if skipped else ""))


@server.command()
@data_dir_option
@db_option
@click.option("--days", type=click.IntRange(1, 100000), default=None,
              help="Keep bodies this many days (default: the report_retention_days setting) / 报告保留天数")
def prune(data_dir, db, days):
    """Compact new report bodies, drop those past retention; history kept / 压缩报告正文并按保留期清理"""
    from scanner.errors import XcscanError
    from scanner.server import service
    settings = _settings(data_dir, db)
    if days is None and not settings.report_retention_days and not settings.report_compaction \
            and not settings.change_retention_days:
        raise XcscanError("no retention period: report_retention_days is 0 (keep every report)",
                          hint="give --days N, or set report_retention_days in the server settings")
    out = service.prune(settings, days)
    if out["skipped"]:
        click.echo("another node is pruning now; nothing done")
    else:
        if out.get("compacted"):
            click.echo("compacted the bodies of %d report(s): %d -> %d bytes (%d new base(s))" % (
                out["compacted"], out["compacted_bytes_before"], out["compacted_bytes_after"], out["bases"]))
        click.echo("pruned %d report(s), %d bytes of stored bodies" % (out["reports"], out["bytes"]))
        if out.get("summarized"):
            click.echo("daily summaries: %d report row(s) that were not a host's last of their day deleted"
                       % out["summarized"])
        if out.get("changes"):
            click.echo("change records: %d older than %d days deleted (change_retention_days)"
                       % (out["changes"], settings.change_retention_days))


@server.command("import")
@data_dir_option
@db_option
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True))
@click.option("--receipt", "receipt_path", type=click.Path(dir_okay=False), default=None,
              help="Where to write the receipt to carry back (default BUNDLE.receipt.json) / 回执文件")
def import_cmd(data_dir, db, bundle, receipt_path):
    """Import an air-gap transfer bundle, verifying every report as online intake does / 导入离线传输包"""
    import json as _json
    from scanner.server import service
    from scanner.server.intake.transfer import import_bundle
    from scanner.render.output_target import open_output, resolve   # never replaces a device, FIFO or link
    settings = _settings(data_dir, db)
    receipt_path = receipt_path or bundle + ".receipt.json"
    resolve(receipt_path)                # refused before anything is imported
    engine = service.open_engine(settings)
    try:
        receipt = import_bundle(engine, settings, bundle)
    finally:
        engine.dispose()
    with open_output(receipt_path) as fh:
        fh.write(_json.dumps(receipt, indent=1, ensure_ascii=False).encode("utf-8"))
    for r in receipt["results"]:
        line = "%s %s" % (r["status"], r["report_id"])
        if r["status"] == "refused":
            line += ": %s (%s)" % (r["reason"], r["code"])
        click.echo(line)
    c = receipt["counts"]
    click.echo("accepted %d, duplicate %d, refused %d; receipt: %s (carry it back: xcscan agent confirm RECEIPT)"
               % (c["accepted"], c["duplicate"], c["refused"], receipt_path), err=True)



@server.group()
def alerts():
    """Alert rules and their channels (webhook, syslog/CEF, e-mail) / 告警规则与通知渠道"""


@alerts.command("channel")
@data_dir_option
@db_option
@click.argument("name")
@click.option("--webhook", default=None, metavar="URL", help="POST JSON events here (HMAC-signed)")
@click.option("--secret-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Webhook HMAC key, first line of this file (default: a new random key, printed once)")
@click.option("--syslog", default=None, metavar="udp://H:P|tcp://H:P|tls://H:P", help="RFC 5424 + CEF to a SIEM")
@click.option("--smtp", default=None, metavar="HOST:PORT", help="Mail relay")
@click.option("--mail-from", default=None)
@click.option("--mail-to", multiple=True)
@click.option("--starttls", is_flag=True)
@click.option("--ca-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="CA to verify an https webhook, a tls syslog or STARTTLS relay")
def alerts_channel(data_dir, db, name, webhook, secret_file, syslog, smtp, mail_from, mail_to, starttls, ca_file):
    """Add a notification channel / 添加通知渠道"""
    from scanner.server.store.scope import Scope
    import secrets as _secrets
    from scanner.server import service
    from scanner.server.errors import ApiError
    from scanner.server.workflow.alerts import add_channel
    chosen = [k for k, v in (("webhook", webhook), ("syslog", syslog), ("email", smtp)) if v]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --webhook, --syslog, --smtp")
    kind = chosen[0]
    secret = None
    if kind == "webhook":
        config = {"url": webhook}
        if secret_file:
            with open(secret_file, encoding="utf-8") as fh:
                secret = fh.readline().strip()
        else:
            secret = _secrets.token_urlsafe(32)
            click.echo(secret)
            click.echo("the webhook HMAC key above is shown once; give it to the receiver", err=True)
    elif kind == "syslog":
        config = {"address": syslog}
    else:
        config = {"smtp": smtp, "from": mail_from, "to": list(mail_to), "starttls": starttls}
    if ca_file:
        config["ca_file"] = os.path.abspath(ca_file)
    settings = _settings(data_dir, db)
    engine = service.open_engine(settings)
    try:
        add_channel(engine, name, kind, config, secret=secret, scope=Scope.everything())
    except ApiError as exc:
        raise _api_error(exc)
    finally:
        engine.dispose()
    click.echo("channel %s (%s) added" % (name, kind), err=True)


@alerts.command("rule")
@data_dir_option
@db_option
@click.argument("name")
@click.option("--kind", type=click.Choice(["new_failure", "host_silent", "failing_hosts", "localization_drop",
                                           "waiver_expiring", "report_refusals"]), required=True)
@click.option("--channel", required=True)
@click.option("--org", default="/", show_default=True, help="The org subtree watched")
@click.option("--severity", default=None, help="new_failure: minimum severity (default high)")
@click.option("--days", type=float, default=None, help="host_silent: days without a report (default 3); "
              "localization_drop: compared with this many days ago (7); waiver_expiring: expiring within (14)")
@click.option("--hosts", type=int, default=None, help="failing_hosts: more than this many hosts (default 10)")
@click.option("--rule-id", default=None, help="failing_hosts: only this rule")
@click.option("--points", type=float, default=None, help="localization_drop: percentage points (default 5)")
@click.option("--by", type=click.Choice(["subtree", "unit"]), default=None,
              help="localization_drop: the subtree as a whole (default) or each org unit in it")
@click.option("--count", type=int, default=None, help="report_refusals: refused reports (default 10) ...")
@click.option("--minutes", type=int, default=None, help="report_refusals: ... within this many minutes (default 10)")
@click.option("--code", "codes", multiple=True, help="report_refusals: only these refusal codes, e.g. bad_signature "
              "(repeatable)")
@click.option("--max-events", type=int, default=None, help="events one evaluation sends one by one (default 100); "
              "the rest in one summary")
def alerts_rule(data_dir, db, name, kind, channel, org, severity, days, hosts, rule_id, points, by, count, minutes,
                codes, max_events):
    """Add an alert rule / 添加告警规则"""
    from scanner.server.store.scope import Scope
    from scanner.server import service
    from scanner.server.errors import ApiError
    from scanner.server.workflow.alerts import add_rule
    if days is not None and kind != "host_silent" and days == int(days):
        days = int(days)
    params = {k: v for k, v in (("severity", severity), ("days", days), ("hosts", hosts), ("rule", rule_id),
                                ("points", points), ("by", by), ("count", count), ("minutes", minutes),
                                ("codes", list(codes) or None), ("max_events", max_events))
              if v is not None}
    settings = _settings(data_dir, db)
    engine = service.open_engine(settings)
    try:
        add_rule(engine, name, kind, params, org, channel, scope=Scope.everything())
    except ApiError as exc:
        raise _api_error(exc)
    finally:
        engine.dispose()
    click.echo("rule %s added" % name, err=True)


@alerts.command("run")
@data_dir_option
@db_option
def alerts_run(data_dir, db):
    """Evaluate the rules and deliver what is due (run it every minute from cron or a timer) / 评估并投递"""
    from scanner.server import service
    from scanner.server.workflow import alerts as _alerts
    from scanner.server.workflow import deliver
    settings = _settings(data_dir, db)
    engine = service.open_engine(settings)
    try:
        queued = _alerts.evaluate(engine)
        sent, failed = deliver.deliver(engine)
    finally:
        engine.dispose()
    click.echo("queued %d, sent %d, failed %d (retried later)" % (queued, sent, failed), err=True)


@alerts.command("test")
@data_dir_option
@db_option
@click.argument("channel")
def alerts_test(data_dir, db, channel):
    """Send a test event to a channel now / 发送测试通知"""
    from sqlalchemy import select
    from scanner.errors import XcscanError
    from scanner.server import service
    from scanner.server.store import db as _db
    from scanner.server.workflow import deliver
    settings = _settings(data_dir, db)
    engine = service.open_engine(settings)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(_db.alert_channels).where(_db.alert_channels.c.name == channel)).mappings().first()
        if row is None:
            raise XcscanError("no channel %s" % channel)
        try:
            deliver.send(dict(row), deliver.test_event(channel))
        except Exception as exc:  # noqa: BLE001 - shown to the admin as the reason
            raise XcscanError("test to %s failed: %s" % (channel, exc))
    finally:
        engine.dispose()
    click.echo("test event sent to %s" % channel, err=True)


@server.group()
def apikey():
    """API keys for other systems (asset databases, ticketing) / 接口密钥"""


@apikey.command("create")
@data_dir_option
@db_option
@click.argument("name")
@click.option("--role", type=click.Choice(["auditor", "officer"]), default="auditor", show_default=True,
              help="auditor: read-only; officer: also waiver requests")
@click.option("--org", "orgs", multiple=True, help="Org subtree the key sees, repeatable (default: all)")
@click.option("--expires", default="90d", show_default=True, help="Lifetime: 30d, 12w … (at most 3 years)")
def apikey_create(data_dir, db, name, role, orgs, expires):
    """Create a key (printed once, stored hashed) / 创建接口密钥"""
    from scanner.errors import XcscanError
    from scanner.server import service
    from scanner.server.access import apikeys
    from scanner.server.errors import ApiError
    from scanner.server.store.scope import Scope
    from scanner.server.util import iso, parse_duration
    seconds = parse_duration(expires)
    if seconds is None:
        raise XcscanError("--expires %r is not a duration" % expires, hint="use e.g. 30d or 12w")
    settings = _settings(data_dir, db)
    engine = service.open_engine(settings)
    try:
        key = apikeys.create(engine, name, role, list(orgs) or ["/"], seconds, scope=Scope.everything())
    except ApiError as exc:
        raise _api_error(exc)
    finally:
        engine.dispose()
    click.echo(key["key"])
    click.echo("key %s: %s of %s, expires %s; shown once — store it in the client's secret store"
               % (key["name"], key["role"], ", ".join(key["orgs"]), iso(key["expires_at"])), err=True)


@apikey.command("list")
@data_dir_option
@db_option
def apikey_list(data_dir, db):
    """Keys with their scope, expiry and last use / 列出接口密钥"""
    from scanner.server.store.scope import Scope
    from scanner.server import service
    from scanner.server.access import apikeys
    from scanner.server.util import iso
    settings = _settings(data_dir, db)
    engine = service.open_engine(settings)
    try:
        for k in apikeys.list_keys(engine, scope=Scope.everything()):
            click.echo("%s\t%s\t%s\texpires %s\tlast used %s%s" % (
                k["name"], k["role"], ",".join(k["orgs"]), iso(k["expires_at"]),
                iso(k["last_used_at"]) if k["last_used_at"] else "never", "\tREVOKED" if k["revoked_at"] else ""))
    finally:
        engine.dispose()


@apikey.command("revoke")
@data_dir_option
@db_option
@click.argument("name")
def apikey_revoke(data_dir, db, name):
    """Revoke a key at once / 吊销接口密钥"""
    from scanner.server.store.scope import Scope
    from scanner.server import service
    from scanner.server.access import apikeys
    from scanner.server.errors import ApiError
    settings = _settings(data_dir, db)
    engine = service.open_engine(settings)
    try:
        apikeys.revoke(engine, name, scope=Scope.everything())
    except ApiError as exc:
        raise _api_error(exc)
    finally:
        engine.dispose()
    click.echo("revoked %s" % name, err=True)


@server.group()
def oidc():
    """Single sign-on (OpenID Connect) / 统一身份认证"""


@oidc.command("check")
@data_dir_option
@db_option
def oidc_check(data_dir, db):
    """Check the oidc setting against the provider / 检查统一身份认证配置"""
    from scanner.errors import XcscanError
    from scanner.server.access import oidc as oidc_login
    settings = _settings(data_dir, db)
    provider = oidc_login.from_settings(settings)
    if provider is None:
        raise XcscanError("single sign-on is off: server.json has no \"oidc\" setting",
                          hint="see docs/integrations.md, Single sign-on (OpenID Connect)")
    try:
        meta = provider.metadata()
        keys = provider.keys()
    except oidc_login.ProviderUnavailable as exc:
        raise XcscanError("the provider cannot be used: %s" % exc,
                          hint="check 'issuer' and 'ca_file' in server.json and that this server reaches the provider")
    click.echo("issuer %s: discovery document read over TLS" % provider.issuer)
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        click.echo("  %s %s" % (key, meta[key]))
    usable = [k for k in keys.keys if getattr(k, "key_type", None) in ("RSA", "EC")]
    if not usable:
        raise XcscanError("the provider publishes no RSA or EC signing key: no ID token could be verified")
    click.echo("signing keys: %d (RS256/ES256 accepted)" % len(usable))
    click.echo("callback this server must be registered with: %s" % provider.redirect_uri)


@server.group()
def ldap():
    """Directory login (LDAP / Active Directory) / 目录服务登录"""


@ldap.command("check")
@data_dir_option
@db_option
@click.option("--user", "username", default=None, help="Also look this user up: DN, groups, the role and org subtrees "
              "they map to (no password is asked or checked)")
def ldap_check(data_dir, db, username):
    """Check the ldap setting against the directory / 检查目录服务配置"""
    from scanner.errors import XcscanError
    from scanner.server.access import directory
    settings = _settings(data_dir, db)
    d = directory.from_settings(settings)
    if d is None:
        raise XcscanError("directory login is off: server.json has no \"ldap\" setting",
                          hint="see docs/integrations.md, Directory login")
    try:
        found = d.lookup(username or "xcscan-ldap-check-no-such-user")
    except directory.DirectoryUnavailable as exc:
        raise XcscanError("the directory cannot be used: %s" % exc)
    click.echo("service account %s: bound over TLS, user search under %s works" % (d.bind_dn, d.user_base))
    if not username:
        return
    if found is None:
        raise XcscanError("no single directory entry for %s (none, or several) under %s" % (username, d.user_base))
    name, dn, groups = found
    role, orgs = d.map_groups(groups)
    click.echo("user %s: %s" % (name, dn))
    for g in groups:
        click.echo("  group %s" % g)
    if role is None:
        click.echo("no mapped group: %s could not log in (403 no_role)" % name)
        raise SystemExit(3)
    click.echo("role %s, org subtrees %s" % (role, ", ".join(orgs)))
