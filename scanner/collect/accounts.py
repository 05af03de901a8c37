"""Local accounts from /etc/passwd, /etc/shadow and /etc/group.

Per account: UID/GID, shell (interactive or not), the state of the password
field -- ``empty`` (the empty string: login without a password), ``locked``
(``!``, ``!!``, ``*``, ``!<hash>``...), ``hash`` (usable) -- the hash scheme,
aging fields and whether the password or the account has expired on the scan
date. Unreadable shadow (unprivileged run) leaves those fields null and says so.
"""
from __future__ import absolute_import

import datetime
import time

from scanner.collect._lastlog import last_logins

NAME = "accounts"
LIVE_ONLY = False

NON_INTERACTIVE_SHELLS = ("/sbin/nologin", "/usr/sbin/nologin", "/bin/false", "/usr/bin/false", "/bin/sync",
                          "/sbin/shutdown", "/sbin/halt", "/usr/bin/nologin", "")
DEFAULT_ACCOUNTS = ("adm", "lp", "sync", "shutdown", "halt", "mail", "uucp", "operator", "games", "gopher",
                    "ftp", "news")


def hash_scheme(field):
    """Scheme of a crypt(3) hash string (without any leading '!')."""
    if field.startswith("$"):
        ident = field.split("$")[1] if field.count("$") >= 2 else ""
        return {"1": "md5", "2a": "bcrypt", "2b": "bcrypt", "2y": "bcrypt", "5": "sha256", "6": "sha512",
                "y": "yescrypt", "gy": "gost-yescrypt", "7": "scrypt", "sm3": "sm3"}.get(ident, "unknown")
    if len(field) == 13:
        return "des"
    if field.startswith("_") and len(field) == 20:
        return "bsdi-des"
    return "unknown"


def password_state(field):
    if field is None:
        return None, None
    if field == "":
        return "empty", None
    if field.startswith("!") or field.startswith("*") or field in ("x", "LK", "NP"):
        inner = field.lstrip("!")
        return "locked", (hash_scheme(inner) if inner.startswith("$") or len(inner) == 13 else None)
    return "hash", hash_scheme(field)


def int_field(value):
    value = (value or "").strip()
    return int(value) if value.lstrip("-").isdigit() else None


def read_table(ctx, path, min_fields):
    text = ctx.fs.read_text(path)
    if text is None:
        return None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if line[0] in "+-":
            rows.append({"nis": True, "line": number, "fields": line.split(":")})
            continue
        fields = line.split(":")
        if len(fields) < min_fields:
            ctx.error("%s:%d" % (path, number), "expected %d ':'-separated fields, found %d" % (min_fields, len(fields)))
            continue
        rows.append({"line": number, "fields": fields})
    return rows


def day_string(days):
    """'YYYY-MM-DD' for a shadow day number (days since 1970-01-01)."""
    try:
        return (datetime.date(1970, 1, 1) + datetime.timedelta(days=days)).isoformat()
    except (OverflowError, ValueError):
        return None


def duplicates(values):
    seen, dup = set(), []
    for value in values:
        if value in seen and value not in dup:
            dup.append(value)
        seen.add(value)
    return dup


def collect(ctx, today=None):
    fs = ctx.fs
    passwd = read_table(ctx, "/etc/passwd", 7)
    if passwd is None:
        ctx.error("/etc/passwd", "not found or unreadable: accounts cannot be established")
        return None
    shadow_rows = read_table(ctx, "/etc/shadow", 2)
    group_rows = read_table(ctx, "/etc/group", 3) or []
    shadow = {}
    for row in shadow_rows or []:
        if not row.get("nis"):
            shadow[row["fields"][0]] = row["fields"]
    login_defs = fs.read_text("/etc/login.defs", report=False) or ""
    uid_min = 1000
    for line in login_defs.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "UID_MIN" and parts[1].isdigit():
            uid_min = int(parts[1])
    today = int(time.time() // 86400) if today is None else today
    users = []
    for row in passwd:
        if row.get("nis"):
            continue
        f = row["fields"]
        uid, gid = int_field(f[2]), int_field(f[3])
        if uid is None or gid is None:
            ctx.error("/etc/passwd:%d" % row["line"], "UID or GID of %r is not a number" % f[0])
            continue
        shell = f[6].strip()
        user = {"name": f[0], "uid": uid, "gid": gid, "home": f[5], "shell": shell,
                "interactive": shell not in NON_INTERACTIVE_SHELLS and not shell.endswith("/nologin"),
                "system": uid < uid_min and uid != 0, "source": "/etc/passwd:%d" % row["line"]}
        sh = shadow.get(f[0])
        if shadow_rows is None:
            state, scheme = None, None
        elif sh is None:
            # no shadow entry: passwd field decides ("x" without a shadow line = no usable password)
            state, scheme = password_state(f[1] if f[1] != "x" else "!")
        else:
            state, scheme = password_state(sh[1])
        user["password"] = state
        user["hash_scheme"] = scheme
        aging = {}
        if sh is not None:
            names = ("last_change", "min_days", "max_days", "warn_days", "inactive_days", "expire_day")
            for index, key in enumerate(names, 2):
                aging[key] = int_field(sh[index]) if len(sh) > index else None
        user.update(aging)
        max_days = aging.get("max_days")
        user["password_expires"] = bool(max_days is not None and 0 <= max_days < 99999)
        last = aging.get("last_change")
        user["password_overdue"] = bool(user["password_expires"] and last is not None and last > 0
                                        and today - last > max_days)
        expire = aging.get("expire_day")
        user["account_expired"] = bool(expire is not None and 0 <= expire <= today)
        # dates, so rules can compare with the scan time ({now: 0}) instead of the collection day
        user["password_expires_on"] = day_string(last + max_days) if user["password_expires"] and last else None
        user["account_expires_on"] = day_string(expire) if expire is not None and expire >= 0 else None
        user["usable_login"] = bool(state == "hash" and user["interactive"] and not user["account_expired"])
        users.append(user)
    logins, login_source = last_logins(fs, users)
    for user in users:
        when = logins.get(user["name"]) if logins is not None else None
        # last_login_on: day of the last login, "never", or null when the system keeps no records;
        # last_active_on: the later of that login and the last password change (an account just
        # created has a fresh password date and no login yet)
        user["last_login_on"] = None if when is None else (day_string(when // 86400) if when > 0 else "never")
        days = [d for d in ((when // 86400) if when else None, user.get("last_change") or None) if d]
        if logins is None:  # no login records: activity unknown (a password set long ago says nothing)
            user["last_active_on"] = None
        else:
            user["last_active_on"] = day_string(max(days)) if days else "1970-01-01"  # no activity on record
    groups = []
    for row in group_rows:
        if row.get("nis"):
            continue
        f = row["fields"]
        gid = int_field(f[2])
        groups.append({"name": f[0], "gid": gid, "members": [m for m in f[3].split(",") if m] if len(f) > 3 else []})
    uid0 = [u["name"] for u in users if u["uid"] == 0]
    return {
        # null (unknown) when /etc/shadow could not be read: password states and aging are then unknown
        "shadow_readable": True if shadow_rows is not None else None,
        "login_records": login_source,
        "uid_min": uid_min,
        "today": today,
        "users": users,
        "groups": groups,
        "uid0": uid0,
        "uid0_non_root": [n for n in uid0 if n != "root"],
        "empty_password": [u["name"] for u in users if u["password"] == "empty"] if shadow_rows is not None else None,
        "duplicate_uids": duplicates([u["uid"] for u in users]),
        "duplicate_names": duplicates([u["name"] for u in users]),
        "duplicate_gids": duplicates([g["gid"] for g in groups]),
        "duplicate_group_names": duplicates([g["name"] for g in groups]),
        "default_accounts_present": [u["name"] for u in users if u["name"] in DEFAULT_ACCOUNTS],
        "weak_hashes": [u["name"] for u in users if u["password"] == "hash" and u["hash_scheme"] in ("md5", "des", "bsdi-des")]
        if shadow_rows is not None else None,
    }
