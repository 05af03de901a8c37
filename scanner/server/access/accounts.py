"""People, sessions and enrollment tokens (the audit log itself is scanner.server.store.audit)."""
from __future__ import annotations

import collections
import hmac
import secrets
import threading
import time

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from scanner.server.store import db
from scanner.server.errors import ApiError, bad_request, forbidden, not_found, too_many_attempts, unauthorized
from scanner.server.access.directory import LOCAL_HASH
from scanner.server.access.passwords import dummy_verify, hash_password, password_problem, verify_password
from scanner.server.store.audit import audit
from scanner.server.store.scope import Scope, check
from scanner.server.util import clean_text, normalise_org, now, sha256_hex

ROLES = ("admin", "officer", "auditor", "assessor")
USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


# --- users -----------------------------------------------------------------------------------------
def check_username(username):
    if not isinstance(username, str) or not (1 <= len(username) <= 64) or not set(username) <= USERNAME_CHARS:
        raise bad_request("bad_username", "username must be 1-64 characters of letters, digits and ._-@")


def user_scope(orgs, scope):
    """The Scope of a new user: ``orgs`` (default: the creator's own), each inside ``scope``."""
    check(scope)
    if orgs is None or not list(orgs):
        return scope
    if isinstance(orgs, str) or len(orgs) > 50:
        raise bad_request("bad_org", "orgs must be a list of at most 50 org paths such as /gov/finance")
    try:
        wanted = Scope(orgs)
    except ValueError:
        raise bad_request("bad_org", "orgs must be org paths such as /gov/finance (segments of 1-64 characters)")
    if not scope.covers_scope(wanted):
        raise forbidden("org_outside_scope", "you may only give a user org subtrees inside your own (%s)"
                        % ", ".join(scope.orgs))
    return wanted


def user_orgs(conn, user_ids):
    """{user id: [org path, ...]}"""
    rows = conn.execute(select(db.user_orgs.c.user_id, db.user_orgs.c.org_path)
                        .where(db.user_orgs.c.user_id.in_(list(user_ids)))).all() if user_ids else []
    out = {}
    for uid, org in rows:
        out.setdefault(uid, []).append(org)
    return out


def add_user(engine, username, password, role, actor="cli", ip=None, *, scope, orgs=None):
    """A new user with ``orgs`` (default: the creator's ``scope``); a scoped admin creates users only
    inside their own subtrees."""
    check_username(username)
    if role not in ROLES:
        raise bad_request("bad_role", "role must be one of: %s" % ", ".join(ROLES))
    new_scope = user_scope(orgs, scope)
    problem = password_problem(password or "", username)
    if problem:
        raise bad_request("weak_password", problem)
    pw_hash = hash_password(password)
    with db.write_tx(engine) as conn:
        exists = conn.execute(select(db.users.c.id).where(db.users.c.username == username)).first()
        if exists:
            raise ApiError(409, "user_exists", "user %r already exists" % username)
        uid = conn.execute(insert(db.users).values(
            username=username, password_hash=pw_hash, role=role, created_at=now(), disabled=0)
        ).inserted_primary_key[0]
        for org in new_scope.orgs:
            conn.execute(insert(db.user_orgs).values(user_id=uid, org_path=org))
        audit(conn, actor, "user.add", username, {"role": role, "orgs": list(new_scope.orgs)}, ip,
              org=new_scope.root())
    return {"id": uid, "username": username, "role": role, "orgs": list(new_scope.orgs)}


def list_users(engine, *, scope):
    """Users whose every subtree is inside ``scope`` (a scoped admin sees their department's people)."""
    check(scope)
    with engine.connect() as conn:
        rows = conn.execute(select(db.users.c.id, db.users.c.username, db.users.c.role, db.users.c.created_at,
                                   db.users.c.disabled).order_by(db.users.c.username)).mappings().all()
        orgs = user_orgs(conn, [r["id"] for r in rows])
    out = []
    for r in rows:
        mine = sorted(orgs.get(r["id"], []))
        if scope.is_global or (mine and scope.covers_scope(Scope(mine))):
            out.append(dict(r, orgs=mine))
    return out


def user_in_scope(engine, username, scope):
    """The user named ``username`` if all their subtrees are inside ``scope``; else 404."""
    check(scope)
    with engine.connect() as conn:
        row = conn.execute(select(db.users.c.id).where(db.users.c.username == str(username)[:64])).first()
        mine = user_orgs(conn, [row[0]]).get(row[0], []) if row else []
    if row is None or not (scope.is_global or (mine and scope.covers_scope(Scope(mine)))):
        raise not_found("no user %s" % username)
    return row[0]


def user_summary(engine, username, scope):
    """What an admin sees before acting on ``username`` (404 outside ``scope``): role, subtrees,
    whether disabled, how many sessions are open now and until when logins are locked."""
    check(scope)
    t = now()
    with engine.connect() as conn:
        user, orgs = _managed_user(conn, username, scope)
        sessions = conn.execute(select(func.count()).select_from(db.sessions).where(
            db.sessions.c.user_id == user["id"], db.sessions.c.expires_at >= t)).scalar() or 0
        lt = db.login_throttle
        locked = conn.execute(select(lt.c.locked_until).where(lt.c.key == "user:" + user["username"].lower(),
                                                               lt.c.locked_until > t)).scalar()
    return {"username": user["username"], "role": user["role"], "disabled": bool(user["disabled"]),
            "orgs": sorted(orgs), "sessions": int(sessions), "locked_until": locked}


class LoginPolicy(object):
    """Failed-login limits and session lifetimes (from Settings; defaults for direct callers)."""

    def __init__(self, settings=None, events=None):
        # events: the server's SecurityEvents limiter; refused logins of a locked name are audited at most
        # audit_events_per_minute times a minute per address (None: every one, for direct callers)
        self.events = events
        get = lambda name, default: getattr(settings, name, default) if settings is not None else default  # noqa: E731
        self.max_failures = get("login_max_failures", 5)
        self.ip_max_failures = get("login_ip_max_failures", 0)
        self.window = get("login_window", 900)
        self.lock_seconds = get("login_lock_seconds", 900)
        self.session_ttl = get("session_ttl", 8 * 3600)
        self.session_idle = get("session_idle", 1800)
        self.rate_per_client = get("login_rate_per_client", 60)  # failed attempts a minute from one address (0: off)
        self.max_hashes = get("login_max_concurrent_hashes", 2)  # Argon2 checks at once (64 MiB each)


class ClientRate(object):
    """Login attempts per client address in the last minute, in this process: refused before any
    database work or password hash."""

    def __init__(self, max_clients=100000):
        self.lock = threading.Lock()
        self.hits = {}
        self.max_clients = max_clients

    def wait(self, ip, per_minute, t=None):
        """0 when one more attempt from ``ip`` is allowed now (and counted), else seconds to wait."""
        t = time.monotonic() if t is None else t
        with self.lock:
            q = self.hits.get(ip)
            if q is None:
                if len(self.hits) >= self.max_clients:
                    self.hits.clear()
                q = self.hits[ip] = collections.deque()
            while q and q[0] <= t - 60:
                q.popleft()
            if len(q) >= per_minute:
                return max(1, int(60 - (t - q[0])) + 1)
            q.append(t)
            return 0


    def refund(self, ip):
        """A successful login does not count against its address."""
        with self.lock:
            q = self.hits.get(ip)
            if q:
                q.pop()


CLIENT_RATE = ClientRate()
_HASH_POOLS = {}
_HASH_LOCK = threading.Lock()


class HashPool(object):
    """At most ``n`` password hashes at once (Argon2id: 64 MiB and two threads each), on threads of
    lower CPU priority so that a login flood slows logins, not the fleet views; at most ``8 n``
    waiting, beyond which a login is answered 503 at once."""

    def __init__(self, n):
        from concurrent.futures import ThreadPoolExecutor
        self.n = max(1, n)
        self.waiting = threading.BoundedSemaphore(self.n * 9)
        self.pool = ThreadPoolExecutor(max_workers=self.n, thread_name_prefix="xcscan-hash",
                                       initializer=_lower_priority)

    def run(self, fn, *args):
        if not self.waiting.acquire(blocking=False):
            raise _busy()
        try:
            return self.pool.submit(fn, *args).result()
        finally:
            self.waiting.release()


def _lower_priority():
    try:
        import os
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # this thread only (Linux)
    except (AttributeError, OSError):
        pass


def hash_pool(n):
    with _HASH_LOCK:
        if n not in _HASH_POOLS:
            _HASH_POOLS[n] = HashPool(n)
        return _HASH_POOLS[n]


def _busy():
    return ApiError(503, "busy", "the server is checking too many passwords at once; try again in a few seconds",
                    headers={"Retry-After": "5"})


def _throttle_keys(username, ip, policy=None):
    keys = [("user:" + str(username or "")[:64].lower(), "user")]
    if ip and policy is not None and policy.ip_max_failures > 0:
        keys.append(("ip:" + str(ip)[:64], "ip"))
    return keys


def locked_for(engine, username, ip, policy, t=None):
    """Seconds until a login for ``username`` from ``ip`` is allowed again (0: allowed now)."""
    t = now() if t is None else t
    lt = db.login_throttle
    keys = [k for k, _kind in _throttle_keys(username, ip, policy)]
    with engine.connect() as conn:
        rows = conn.execute(select(lt.c.locked_until).where(lt.c.key.in_(keys))).all()
    return max([row.locked_until - t for row in rows if row.locked_until and row.locked_until > t] or [0])


def _throttle_row(conn, key, t):
    """The throttle row of ``key``, made if missing and locked for this transaction.

    A concurrent successful login deletes the row (PostgreSQL, READ COMMITTED): it can vanish between
    our insert, refused because the row was there, and our FOR UPDATE read, which then finds nothing.
    The insert is tried again; with SQLite the write transaction already excludes every other writer."""
    lt = db.login_throttle
    for _attempt in range(5):
        try:
            with conn.begin_nested():
                conn.execute(insert(lt).values(key=key, failures=0, first_failed_at=t, locked_until=None))
        except IntegrityError:
            pass
        row = conn.execute(select(lt).where(lt.c.key == key).with_for_update()).mappings().first()
        if row is not None:
            return row
    raise RuntimeError("login throttle row %r kept vanishing under concurrent logins" % key)


def _record_failure(conn, username, ip, policy, t, confirmed=True):
    """Count one failed login for the user name and the address; lock what reached its limit.
    ``confirmed=False``: count an attempt about to be checked (a reservation, cleared by a success),
    without locking. Returns how far the count went past a limit (> 0: this attempt is over it)."""
    lt = db.login_throttle
    over = 0
    for key, kind in _throttle_keys(username, ip, policy):
        limit = policy.max_failures if kind == "user" else policy.ip_max_failures
        # the row exists before it is locked, so concurrent first attempts queue on its lock too
        # (PostgreSQL: FOR UPDATE; SQLite: the write transaction)
        row = _throttle_row(conn, key, t)
        if t - row["first_failed_at"] > policy.window:
            failures, first = 1, t
        else:
            failures, first = row["failures"] + 1, row["first_failed_at"]
        if not confirmed:
            conn.execute(update(lt).where(lt.c.key == key).values(failures=failures, first_failed_at=first))
            over = max(over, failures - limit)
            continue
        failures = max(1, failures - 1)  # the reservation made before the check becomes this failure
        locked = t + policy.lock_seconds if failures >= limit else None
        conn.execute(update(lt).where(lt.c.key == key).values(failures=failures, first_failed_at=first,
                                                              locked_until=locked))
        if locked and not (row["locked_until"] and row["locked_until"] > t):
            audit(conn, clean_text(username, 64) or "-", "login.locked", key,
                  {"failures": failures, "until": locked}, ip)
        over = max(over, failures - limit)
    return over


def _refused_locked_detail(policy, ip, retry_after):
    """The audit detail of a login refused because the name is locked, or None when the limiter leaves
    it out (a flood against a locked name must not fill the audit log); ``suppressed``: how many were
    left out since the last one written from that address."""
    suppressed = policy.events.admit("login.refused_locked", ip) if policy.events is not None else 0
    if suppressed is None:
        return None
    return dict({"retry_after": retry_after}, **({"suppressed": suppressed} if suppressed else {}))


def login(engine, username, password, ttl=None, ip=None, policy=None, directory=None):
    """Check the password; on success create a session. Every attempt is audited.

    After ``max_failures`` failed logins for a user name (or ``ip_max_failures`` from one
    address) within ``window`` seconds, logins for it are refused with 429 for ``lock_seconds``,
    whether or not the password is right, and whether or not the user exists.

    With ``directory`` (access.directory.Directory), a name without a local account, or with one made by
    an earlier directory login, is checked by the directory; the same counting and locks apply."""
    policy = policy or LoginPolicy()
    ttl = ttl or policy.session_ttl
    t = now()
    _client_rate(ip, policy)
    wait = locked_for(engine, username, ip, policy, t)
    if wait > 0:
        detail = _refused_locked_detail(policy, ip, wait)
        if detail is not None:
            with db.write_tx(engine) as conn:
                audit(conn, clean_text(username, 64) or "-", "login.refused_locked", None, detail, ip)
        raise too_many_attempts(wait)
    # The attempt is counted as a failure before the password hash is computed, atomically under the
    # throttle row's lock: of concurrent attempts only those within the limit are hashed at all (a
    # success clears the count below).
    with db.write_tx(engine) as conn:
        over = _record_failure(conn, username, ip, policy, t, confirmed=False)
        detail = _refused_locked_detail(policy, ip, policy.lock_seconds) if over > 0 else None
        if detail is not None:
            audit(conn, clean_text(username, 64) or "-", "login.refused_locked", None, detail, ip)
    if over > 0:
        raise too_many_attempts(policy.lock_seconds)
    with engine.connect() as conn:
        user = conn.execute(select(db.users).where(db.users.c.username == str(username)[:64])).mappings().first()
    if directory is not None and (user is None or user["password_hash"] == LOCAL_HASH):
        return _directory_login(engine, directory, username, password, user, ttl, ip, policy, t)
    pool = hash_pool(policy.max_hashes)
    ok = False
    if user is None or user["disabled"]:
        pool.run(dummy_verify, password or "")
        ok = False
    else:
        ok = pool.run(verify_password, user["password_hash"], password or "")
    if not ok:
        _failed(engine, username, ip, policy, t)
    if ip and policy.rate_per_client:
        CLIENT_RATE.refund(ip)
    with db.write_tx(engine) as conn:
        return _new_session(conn, user["id"], user["username"], user["role"], username, ip, policy, t, ttl)


def _client_rate(ip, policy):
    """Refuse (429) an address over its per-client login rate, when that limit is on."""
    if ip and policy.rate_per_client:
        wait = CLIENT_RATE.wait(ip, policy.rate_per_client)
        if wait:
            raise ApiError(429, "login_rate", "too many login attempts from your address; try again in %d "
                           "second(s)" % wait, headers={"Retry-After": str(wait)})


def _failed(engine, username, ip, policy, t, detail=None):
    """Count and audit a failed login (locking the name at its limit); raise 401."""
    with db.write_tx(engine) as conn:
        audit(conn, clean_text(username, 64) or "-", "login.failed", None, detail, ip)
        _record_failure(conn, username, ip, policy, t)
    raise unauthorized("bad_credentials", "wrong username or password")


def _release_reservation(conn, username, ip, policy):
    """Take back the attempt counted before the check, for an attempt that checked no password
    (the directory could not be asked) or a right password that still cannot log in."""
    lt = db.login_throttle
    for key, _kind in _throttle_keys(username, ip, policy):
        conn.execute(update(lt).where(lt.c.key == key, lt.c.failures > 0).values(failures=lt.c.failures - 1))


def _new_session(conn, user_id, name, role, typed, ip, policy, t, ttl, via=None):
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    conn.execute(delete(db.login_throttle).where(db.login_throttle.c.key.in_(
        [k for k, _kind in _throttle_keys(typed, ip, policy)])))
    conn.execute(delete(db.sessions).where(db.sessions.c.expires_at < t))
    conn.execute(insert(db.sessions).values(token_hash=sha256_hex(token), user_id=user_id, csrf=csrf,
                                            created_at=t, expires_at=t + ttl, last_used=t))
    audit(conn, name, "login", None, dict({"role": role}, **({"via": via} if via else {})), ip)
    orgs = sorted(user_orgs(conn, [user_id]).get(user_id, []))
    return {"token": token, "csrf": csrf, "username": name, "role": role, "orgs": orgs, "expires_at": t + ttl}


def _external_account(conn, name, marker_hash, found, via, detail, ip, t):
    """The account row of a directory or single sign-on user ``name``, made at the first login with
    ``marker_hash`` (a hash that never verifies, telling how the account logs in). Two first logins at
    once: the loser of the insert reads the winner's row (up to three tries)."""
    row = None
    for _attempt in range(3):
        row = conn.execute(select(db.users).where(db.users.c.username == name)).mappings().first()
        if row is not None:
            break
        try:
            with conn.begin_nested():
                conn.execute(insert(db.users).values(username=name, password_hash=marker_hash, role=found.role,
                                                     created_at=t, disabled=0))
            audit(conn, via, "user.add", name, dict({"role": found.role, "orgs": found.orgs, "via": via}, **detail),
                  ip, org=Scope(found.orgs).root())
        except IntegrityError:
            pass  # a concurrent first login made it: read it again
    return row


def _sync_external(conn, row, found, via, ip):
    """Give an external account the role and org subtrees its groups map to now (audited when they change)."""
    had = sorted(user_orgs(conn, [row["id"]]).get(row["id"], []))
    if row["role"] != found.role or had != sorted(found.orgs):
        conn.execute(update(db.users).where(db.users.c.id == row["id"]).values(role=found.role))
        conn.execute(delete(db.user_orgs).where(db.user_orgs.c.user_id == row["id"]))
        for org in found.orgs:
            conn.execute(insert(db.user_orgs).values(user_id=row["id"], org_path=org))
        audit(conn, via, "user.directory_update", row["username"], {"role": found.role, "orgs": found.orgs,
                                                                    "was": {"role": row["role"], "orgs": had}},
              ip, org=Scope(found.orgs).root())


def _directory_login(engine, directory, username, password, user, ttl, ip, policy, t):
    """Log in a directory (LDAP) user: the directory checks the password; the account here (made at the
    first login, marked by a password hash that never verifies) takes the role and org subtrees its groups
    map to, at every login. A local account of the same name is never taken over; a disabled one stays off."""
    from scanner.server.access.directory import BadCredentials, DirectoryUnavailable, NoRole
    typed = clean_text(username, 64) or "-"
    if (user is not None and user["disabled"]) or not isinstance(username, str) \
            or not (1 <= len(username) <= 64) or not set(username) <= USERNAME_CHARS:
        _failed(engine, username, ip, policy, t, {"via": "ldap"})
    try:
        found = directory.authenticate(username, password or "")
    except BadCredentials:
        _failed(engine, username, ip, policy, t, {"via": "ldap"})
    except DirectoryUnavailable as exc:
        import logging
        logging.getLogger("xcscan.server").warning("directory login for %s: %s", typed, exc)
        with db.write_tx(engine) as conn:
            _release_reservation(conn, username, ip, policy)
            audit(conn, typed, "login.directory_unavailable", None, {"error": str(exc)[:500]}, ip)
        raise ApiError(503, "directory_unavailable", "the directory (LDAP) cannot be reached or refused the service "
                       "account; try again later (local accounts still log in)", headers={"Retry-After": "30"})
    except NoRole as exc:
        with db.write_tx(engine) as conn:
            _release_reservation(conn, username, ip, policy)
            row = conn.execute(select(db.users.c.id).where(db.users.c.username == exc.username,
                                                           db.users.c.password_hash == LOCAL_HASH)).first()
            ended = _end_sessions(conn, row[0]) if row else 0
            audit(conn, exc.username, "login.no_role", None, {"groups": exc.groups[:20], "sessions_ended": ended}, ip)
        raise forbidden("no_role", "your directory account is in no group that is given a role here; ask an "
                        "administrator")
    name = found.username
    if not (1 <= len(name) <= 64) or not set(name) <= USERNAME_CHARS:
        with db.write_tx(engine) as conn:
            _release_reservation(conn, username, ip, policy)
            audit(conn, typed, "login.refused", None, {"reason": "directory user name not usable here",
                                                       "name": clean_text(name, 64)}, ip)
        raise forbidden("bad_username", "your directory user name has characters this server does not accept in "
                        "user names (letters, digits and ._-@)")
    if ip and policy.rate_per_client:
        CLIENT_RATE.refund(ip)
    with db.write_tx(engine) as conn:
        row = _external_account(conn, name, LOCAL_HASH, found, "ldap", {"dn": found.dn[:500]}, ip, t)
        if row is not None and row["password_hash"] != LOCAL_HASH:
            _release_reservation(conn, username, ip, policy)
            audit(conn, name, "login.refused", None, {"reason": "a local account has this name", "via": "ldap"}, ip)
            refused = True
        else:
            refused = False
    if refused:
        raise forbidden("name_taken", "a local account has your directory user name; an administrator must rename "
                        "or delete one of them")
    if row["disabled"]:
        _failed(engine, username, ip, policy, t, {"via": "ldap"})
    with db.write_tx(engine) as conn:
        _sync_external(conn, row, found, "ldap", ip)
        return _new_session(conn, row["id"], name, found.role, username, ip, policy, t, ttl, via="ldap")


def oidc_login(engine, provider, cookie, state, code, error=None, ip=None, policy=None, ttl=None):
    """Log in with OpenID Connect: ``provider`` (access.oidc.Provider) checks the redirect back and the ID
    token; the account here (made at the first login, marked by a password hash that never verifies) takes the
    role and org subtrees its groups claim maps to, at every login. Refused answers count as failed logins of
    the address (the name in an unverified token is not believed); a name locked by failed logins stays locked
    for single sign-on too; a local or LDAP account of the same name is never taken over."""
    from scanner.server.access.oidc import LOCAL_HASH as OIDC_HASH, NoRole, ProviderUnavailable, Refused
    import logging
    policy = policy or LoginPolicy()
    ttl = ttl or policy.session_ttl
    t = now()
    _client_rate(ip, policy)
    wait = locked_for(engine, "-", ip, policy, t) if ip and policy.ip_max_failures > 0 else 0
    if wait > 0:
        raise too_many_attempts(wait)
    try:
        found = provider.finish(cookie, state, code, error)
    except Refused as exc:
        with db.write_tx(engine) as conn:
            audit(conn, "-", "login.failed", None, {"via": "oidc", "reason": exc.reason[:500]}, ip)
            _record_failure(conn, "-", ip, policy, t, confirmed=False)  # counted like a wrong password
            _record_failure(conn, "-", ip, policy, t)
        raise unauthorized("oidc_refused", "the single sign-on answer was not accepted: " + exc.reason)
    except ProviderUnavailable as exc:
        logging.getLogger("xcscan.server").warning("OIDC login: %s", exc)
        with db.write_tx(engine) as conn:
            audit(conn, "-", "login.directory_unavailable", None, {"via": "oidc", "error": str(exc)[:500]}, ip)
        raise ApiError(503, "directory_unavailable", "the single sign-on provider cannot be reached; try again "
                       "later (local accounts still log in)", headers={"Retry-After": "30"})
    except NoRole as exc:
        with db.write_tx(engine) as conn:
            row = conn.execute(select(db.users.c.id).where(db.users.c.username == str(exc.username)[:64],
                                                           db.users.c.password_hash == OIDC_HASH)).first()
            ended = _end_sessions(conn, row[0]) if row else 0
            audit(conn, clean_text(exc.username, 64) or "-", "login.no_role", None,
                  {"via": "oidc", "groups": exc.groups[:20], "sessions_ended": ended}, ip)
        raise forbidden("no_role", "your single sign-on account is in no group that is given a role here; ask an "
                        "administrator")
    name = found.username
    if not (1 <= len(name) <= 64) or not set(name) <= USERNAME_CHARS:
        with db.write_tx(engine) as conn:
            audit(conn, "-", "login.refused", None, {"reason": "OIDC user name not usable here", "via": "oidc",
                                                      "name": clean_text(name, 64)}, ip)
        raise forbidden("bad_username", "your user name has characters this server does not accept in user names "
                        "(letters, digits and ._-@)")
    wait = locked_for(engine, name, ip, policy, t)
    if wait > 0:
        with db.write_tx(engine) as conn:
            audit(conn, name, "login.refused_locked", None, {"via": "oidc", "retry_after": wait}, ip)
        raise too_many_attempts(wait)
    with db.write_tx(engine) as conn:
        row = _external_account(conn, name, OIDC_HASH, found, "oidc", {"sub": found.subject[:255]}, ip, t)
        taken = row is not None and row["password_hash"] != OIDC_HASH
        if taken:
            audit(conn, name, "login.refused", None, {"reason": "another account has this name", "via": "oidc"}, ip)
        elif row["disabled"]:
            audit(conn, name, "login.failed", None, {"via": "oidc", "reason": "account disabled"}, ip)
    if taken:
        raise forbidden("name_taken", "a local account has your single sign-on user name; an administrator must "
                        "rename or delete one of them")
    if row["disabled"]:
        raise unauthorized("bad_credentials", "this account is disabled")
    if ip and policy.rate_per_client:
        CLIENT_RATE.refund(ip)
    with db.write_tx(engine) as conn:
        _sync_external(conn, row, found, "oidc", ip)
        return _new_session(conn, row["id"], name, found.role, name, ip, policy, t, ttl, via="oidc")


def unlock_login(engine, username, actor="cli", ip=None, *, scope):
    """Clear the failed-login count and lock of ``username``; return whether there was one.
    A scoped admin unlocks only users inside their subtrees (404 for anyone else)."""
    if not check(scope).is_global:
        user_in_scope(engine, username, scope)
    key = _throttle_keys(username, None)[0][0]
    with db.write_tx(engine) as conn:
        done = conn.execute(delete(db.login_throttle).where(db.login_throttle.c.key == key)).rowcount
        audit(conn, actor, "login.unlock", username, {"cleared": bool(done)}, ip,
              org=None if scope.is_global else scope.root())
    return bool(done)


def login_locks(engine, t=None):
    """{lower-case user name: locked_until} of the names locked now."""
    t = now() if t is None else t
    lt = db.login_throttle
    with engine.connect() as conn:
        rows = conn.execute(select(lt.c.key, lt.c.locked_until).where(lt.c.key.like("user:%"),
                                                                       lt.c.locked_until > t)).all()
    return {row.key[5:]: row.locked_until for row in rows}


TOUCH_EVERY = 60  # seconds between last_used updates of one session


def session_user(engine, token, idle=None):
    """The user behind a session token, or None (unknown, expired, idle too long, user disabled)."""
    if not token or len(token) > 128:
        return None
    from scanner.server.store.queries import read_only
    s = db.sessions
    # one connection without a transaction of its own for both reads (PostgreSQL: no BEGIN/ROLLBACK
    # round trips; every API request asks this first)
    with engine.connect() as conn:
        read_only(conn)
        row = conn.execute(
            select(db.users.c.id, db.users.c.username, db.users.c.role, db.users.c.disabled,
                   s.c.csrf, s.c.expires_at, s.c.last_used, s.c.created_at)
            .select_from(s.join(db.users, db.users.c.id == s.c.user_id))
            .where(s.c.token_hash == sha256_hex(token))).mappings().first()
        orgs = user_orgs(conn, [row["id"]]).get(row["id"], []) if row is not None else []
    t = now()
    if row is None or row["disabled"] or row["expires_at"] < t:
        return None
    last = row["last_used"] or row["created_at"]
    if idle and t - last > idle:
        return None
    if t - last >= TOUCH_EVERY:
        with db.write_tx(engine) as conn:
            conn.execute(update(s).where(s.c.token_hash == sha256_hex(token)).values(last_used=t))
    return dict(row, token_hash=sha256_hex(token), orgs=sorted(orgs), scope=Scope(orgs))


def logout(engine, user):
    with db.write_tx(engine) as conn:
        conn.execute(delete(db.sessions).where(db.sessions.c.token_hash == user["token_hash"]))
        audit(conn, user["username"], "logout")


def csrf_ok(user, presented):
    # as bytes: compare_digest refuses str with non-ASCII characters (a 500 for a forged form field)
    return bool(presented) and hmac.compare_digest(str(user["csrf"]).encode("utf-8"), str(presented).encode("utf-8"))


# --- enrollment tokens -----------------------------------------------------------------------------
def create_token(engine, org, uses=1, expires_in=7 * 86400, actor="cli", note=None, ip=None, *, scope):
    """An enrollment token for ``org``, which must be inside the creator's ``scope``."""
    org_path = normalise_org(org)
    if org_path is None:
        raise bad_request("bad_org", "org must be a path like /gov/finance (segments of 1-64 characters)")
    if not check(scope).covers(org_path):
        raise forbidden("org_outside_scope", "you may only make enrollment tokens for org subtrees inside your own "
                        "(%s)" % ", ".join(scope.orgs))
    if not isinstance(uses, int) or not 1 <= uses <= 1000000:
        raise bad_request("bad_uses", "uses must be between 1 and 1000000")
    if not isinstance(expires_in, int) or not 60 <= expires_in <= 366 * 86400:
        raise bad_request("bad_expiry", "expiry must be between 1 minute and 366 days")
    token = "xct_" + secrets.token_urlsafe(32)
    t = now()
    with db.write_tx(engine) as conn:
        tid = conn.execute(insert(db.enroll_tokens).values(
            token_hash=sha256_hex(token), org_path=org_path, max_uses=uses, uses=0, expires_at=t + expires_in,
            created_at=t, created_by=actor, note=clean_text(note, 255))).inserted_primary_key[0]
        audit(conn, actor, "token.create", org_path, {"id": tid, "uses": uses, "expires_at": t + expires_in}, ip,
              org=org_path)
    return {"id": tid, "token": token, "org": org_path, "uses": uses, "expires_at": t + expires_in}


def _TOKEN_COLUMNS():  # noqa: N802 - everything of a token but its hash
    t = db.enroll_tokens
    return (t.c.id, t.c.org_path, t.c.max_uses, t.c.uses, t.c.expires_at, t.c.created_at, t.c.created_by, t.c.note,
            t.c.revoked_at, t.c.revoked_by)


def list_tokens(engine, *, scope):
    t = db.enroll_tokens
    q = select(*_TOKEN_COLUMNS()).order_by(t.c.id.desc())
    cond = check(scope).where(t.c.org_path)
    if cond is not None:
        q = q.where(cond)
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    return [dict(r) for r in rows]


def get_token(engine, token_id, *, scope):
    """One enrollment token (never its secret) if its org unit is inside ``scope``; else 404."""
    t = db.enroll_tokens
    with engine.connect() as conn:
        row = conn.execute(select(*_TOKEN_COLUMNS()).where(t.c.id == token_id)).mappings().first()
    if row is None or not check(scope).covers(row["org_path"]):
        raise not_found("no enrollment token %s" % token_id)
    return dict(row)


def consume_token(conn, token):
    """Use one enrollment of ``token`` inside the caller's transaction; return its row."""
    t = db.enroll_tokens
    if not isinstance(token, str) or not token or len(token) > 256:
        raise unauthorized("unknown_token", "unknown enrollment token")
    row = conn.execute(select(t).where(t.c.token_hash == sha256_hex(token))).mappings().first()
    if row is None:
        raise unauthorized("unknown_token", "unknown enrollment token")
    if row["revoked_at"] is not None:
        raise forbidden("token_revoked", "enrollment token was revoked by an administrator; ask for a new one")
    if row["expires_at"] < now():
        raise forbidden("token_expired", "enrollment token expired; ask for a new one "
                        "(xcscan server token create)")
    done = conn.execute(update(t).where(and_(t.c.id == row["id"], t.c.uses < t.c.max_uses))
                        .values(uses=t.c.uses + 1))
    if done.rowcount != 1:
        raise forbidden("token_used_up", "enrollment token has been used its %d time(s); ask for a new one"
                        % row["max_uses"])
    return row


# --- account life cycle (admins; effective at once: sessions end with the change) ------------------
def _managed_user(conn, username, scope):
    """The user row, when it is inside ``scope`` (404 otherwise, as if it did not exist)."""
    row = conn.execute(select(db.users).where(db.users.c.username == str(username)[:64])).mappings().first()
    mine = user_orgs(conn, [row["id"]]).get(row["id"], []) if row else []
    if row is None or not (scope.is_global or (mine and scope.covers_scope(Scope(mine)))):
        raise not_found("no user %s" % username)
    return row, mine


def _keep_an_admin(conn, user):
    """Refuse to disable or delete the last enabled admin of the whole fleet (nobody could undo it)."""
    if user["role"] != "admin" or user["disabled"]:
        return
    others = conn.execute(select(db.users.c.id).where(db.users.c.role == "admin", db.users.c.disabled == 0,
                                                      db.users.c.id != user["id"])).all()
    global_others = [uid for (uid,) in others if "/" in user_orgs(conn, [uid]).get(uid, ["/"])]
    if not global_others:
        raise ApiError(409, "last_admin", "%s is the last enabled fleet-wide admin; add another admin first"
                       % user["username"])


def _end_sessions(conn, user_id):
    return conn.execute(delete(db.sessions).where(db.sessions.c.user_id == user_id)).rowcount


def set_disabled(engine, username, disabled, actor="cli", ip=None, *, scope):
    """Disable (every session ends at once, logins refused) or enable a user."""
    check(scope)
    with db.write_tx(engine) as conn:
        user, orgs = _managed_user(conn, username, scope)
        if disabled:
            _keep_an_admin(conn, user)
        conn.execute(update(db.users).where(db.users.c.id == user["id"]).values(disabled=1 if disabled else 0))
        ended = _end_sessions(conn, user["id"]) if disabled else 0
        audit(conn, actor, "user.disable" if disabled else "user.enable", user["username"], {"sessions_ended": ended},
              ip, org=Scope(orgs).root() if orgs else None)
    return {"username": user["username"], "disabled": bool(disabled), "sessions_ended": ended}


def delete_user(engine, username, actor="cli", ip=None, *, scope):
    """Delete a user and their sessions (their past actions stay in the audit log by name)."""
    check(scope)
    with db.write_tx(engine) as conn:
        user, orgs = _managed_user(conn, username, scope)
        _keep_an_admin(conn, user)
        ended = _end_sessions(conn, user["id"])
        conn.execute(delete(db.user_orgs).where(db.user_orgs.c.user_id == user["id"]))
        conn.execute(delete(db.users).where(db.users.c.id == user["id"]))
        conn.execute(delete(db.login_throttle).where(db.login_throttle.c.key == "user:" + user["username"].lower()))
        audit(conn, actor, "user.delete", user["username"], {"role": user["role"], "sessions_ended": ended}, ip,
              org=Scope(orgs).root() if orgs else None)
    return {"username": user["username"], "deleted": True, "sessions_ended": ended}


def reset_password(engine, username, password, actor="cli", ip=None, *, scope):
    """Set a new password (the password policy applies); the user's sessions end."""
    check(scope)
    problem = password_problem(password or "", username)
    if problem:
        raise bad_request("weak_password", problem)
    pw_hash = hash_password(password)
    with db.write_tx(engine) as conn:
        user, orgs = _managed_user(conn, username, scope)
        if user["password_hash"] == LOCAL_HASH:
            raise ApiError(409, "directory_user", "%s logs in through the directory (LDAP); change the password "
                           "there" % user["username"])
        if user["password_hash"] == "!oidc":  # access.oidc.LOCAL_HASH
            raise ApiError(409, "directory_user", "%s logs in with single sign-on (OpenID Connect); change the "
                           "password at the identity provider" % user["username"])
        conn.execute(update(db.users).where(db.users.c.id == user["id"]).values(password_hash=pw_hash))
        ended = _end_sessions(conn, user["id"])
        conn.execute(delete(db.login_throttle).where(db.login_throttle.c.key == "user:" + user["username"].lower()))
        audit(conn, actor, "user.password_reset", user["username"], {"sessions_ended": ended}, ip,
              org=Scope(orgs).root() if orgs else None)
    return {"username": user["username"], "sessions_ended": ended}


def end_sessions(engine, username, actor="cli", ip=None, *, scope):
    """Log a user out everywhere, now."""
    check(scope)
    with db.write_tx(engine) as conn:
        user, orgs = _managed_user(conn, username, scope)
        ended = _end_sessions(conn, user["id"])
        audit(conn, actor, "user.sessions_ended", user["username"], {"sessions_ended": ended}, ip,
              org=Scope(orgs).root() if orgs else None)
    return {"username": user["username"], "sessions_ended": ended}


def revoke_token(engine, token_id, actor="cli", ip=None, *, scope):
    """Revoke an enrollment token at once: it enrolls nothing more (hosts it enrolled stay).
    Revoking a revoked token changes nothing and answers when and by whom it was revoked."""
    t = db.enroll_tokens
    with db.write_tx(engine) as conn:
        row = conn.execute(select(t).where(t.c.id == token_id).with_for_update()).mappings().first()
        if row is None or not check(scope).covers(row["org_path"]):
            raise not_found("no enrollment token %s" % token_id)
        if row["revoked_at"] is not None:
            return {"id": token_id, "org": row["org_path"], "revoked": True, "revoked_at": row["revoked_at"],
                    "revoked_by": row["revoked_by"], "already": True}
        at = now()
        conn.execute(update(t).where(t.c.id == token_id).values(revoked_at=at, revoked_by=clean_text(actor, 64) or "-"))
        audit(conn, actor, "token.revoke", row["org_path"], {"id": token_id, "uses": row["uses"]}, ip,
              org=row["org_path"])
    return {"id": token_id, "org": row["org_path"], "revoked": True, "revoked_at": at,
            "revoked_by": clean_text(actor, 64) or "-", "already": False}
