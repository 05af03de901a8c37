"""/etc/login.defs: password aging, UID ranges, UMASK, ENCRYPT_METHOD.

Keys keep their login.defs spelling. Numeric keys are ints. The aging keys,
UMASK and ENCRYPT_METHOD are filled with shadow-utils' built-in behaviour when
the file does not set them (listed in ``defaulted``), because an unset
PASS_MAX_DAYS means "never expires" and an unset PASS_WARN_AGE "no warning" --
findings, not unknowns.
"""
from __future__ import absolute_import

from scanner.collect.baseline_util import logical_lines, to_int, where

NAME = "login_defs"
LIVE_ONLY = False
PATH = "/etc/login.defs"

NUMERIC = ("PASS_MAX_DAYS", "PASS_MIN_DAYS", "PASS_WARN_AGE", "PASS_MIN_LEN", "UID_MIN", "UID_MAX",
           "SYS_UID_MIN", "SYS_UID_MAX", "GID_MIN", "GID_MAX", "LOGIN_RETRIES", "LOGIN_TIMEOUT",
           "FAIL_DELAY", "SHA_CRYPT_MIN_ROUNDS", "SHA_CRYPT_MAX_ROUNDS", "YESCRYPT_COST_FACTOR")
# shadow-utils behaviour when a key is absent. useradd (src/useradd.c) fills a new shadow entry with
# getdef_num("PASS_MAX_DAYS"/"PASS_MIN_DAYS"/"PASS_WARN_AGE", -1): -1 writes an EMPTY field, which means
# no expiry (shown as 99999), no minimum age (0) and NO warning (0) -- a missing PASS_WARN_AGE is not 7.
# UID_MIN: getdef_ulong("UID_MIN", 1000). UMASK: login(1)/useradd use 022 (GETDEF_DEFAULT_UMASK).
# ENCRYPT_METHOD unset: MD5 when MD5_CRYPT_ENAB is yes, else DES (lib/salt.c); filled in collect().
DEFAULTS = {"PASS_MAX_DAYS": 99999, "PASS_MIN_DAYS": 0, "PASS_WARN_AGE": 0, "UID_MIN": 1000,
            "UMASK": "022"}


def umask_info(raw):
    """{"value": "027", "group": 2, "other": 7} from an octal string, or None when invalid."""
    text = (raw or "").strip()
    if not text or any(c not in "01234567" for c in text) or len(text) > 4:
        return None
    value = int(text, 8)
    return {"value": "%03o" % value, "group": (value >> 3) & 7, "other": value & 7}


def collect(ctx):
    text = ctx.fs.read_text(PATH)
    if text is None:
        if not ctx.fs.exists(PATH):
            ctx.error(PATH, "not found: password aging defaults cannot be established")
        return None
    facts = {"path": PATH, "sources": {}, "defaulted": []}
    for number, line in logical_lines(text, continuation=False):
        parts = line.split(None, 1)
        key = parts[0]
        value = parts[1].strip() if len(parts) > 1 else ""
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if key in NUMERIC:
            number_value = to_int(value)
            if number_value is None:
                ctx.error(where(PATH, number), "%s: %r is not a whole number; shadow-utils ignores it" % (key, value))
                facts[key] = None
                facts["sources"][key] = where(PATH, number)
                continue
            value = number_value
        facts[key] = value
        facts["sources"][key] = where(PATH, number)
    for key, default in DEFAULTS.items():
        if key not in facts:
            facts[key] = default
            facts["defaulted"].append(key)
    if "ENCRYPT_METHOD" not in facts:
        md5 = str(facts.get("MD5_CRYPT_ENAB", "")).lower() == "yes"
        facts["ENCRYPT_METHOD"] = "MD5" if md5 else "DES"
        facts["defaulted"].append("ENCRYPT_METHOD")
    if facts.get("PASS_MAX_DAYS") is not None and facts["PASS_MAX_DAYS"] < 0:
        facts["PASS_MAX_DAYS"] = 99999
    facts["umask"] = umask_info(facts.get("UMASK"))
    if facts["umask"] is None:
        ctx.error(facts["sources"].get("UMASK", PATH), "UMASK %r is not an octal mask" % (facts.get("UMASK"),))
    if isinstance(facts.get("ENCRYPT_METHOD"), str):
        facts["ENCRYPT_METHOD"] = facts["ENCRYPT_METHOD"].upper()
    return facts
