"""/etc/login.defs: password aging, UID ranges, UMASK, ENCRYPT_METHOD.

Keys keep their login.defs spelling. Numeric keys are ints. The aging keys,
UMASK and ENCRYPT_METHOD are filled with shadow-utils' built-in behaviour when
the file does not set them (listed in ``defaulted``), because an unset
PASS_MAX_DAYS means "never expires" and an unset PASS_WARN_AGE "no warning" --
findings, not unknowns.
"""
from __future__ import absolute_import

from scanner.collect.baseline_util import logical_lines, where

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


def shadow_number(text):
    """A login.defs number as shadow-utils reads it (lib/getdef.c getdef_num/getdef_long -> getlong():
    strtol(value, &end, 0) and the whole value must be consumed): "90" decimal, "060" OCTAL (48), "0x5a" hex;
    "090" or "90days" do not parse. Returns an int or None."""
    body = str(text).strip()
    sign = 1
    if body[:1] in "+-":
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    try:
        if body[:2].lower() == "0x" and len(body) > 2:
            return sign * int(body[2:], 16)
        if len(body) > 1 and body[0] == "0":
            return sign * int(body[1:], 8)
        if body.isdigit():
            return sign * int(body)
    except ValueError:
        return None
    return None


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
    unparsable = set()  # keys whose LAST line does not parse: shadow-utils then uses its built-in default
    for number, line in logical_lines(text, continuation=False):
        # shadow-utils lib/getdef.c def_load(): a line with one field is skipped; the value starts after spaces,
        # tabs and double quotes and ends at the next double quote; nothing else is stripped (an inline
        # "# comment" stays part of the value)
        parts = line.split(None, 1)
        if len(parts) < 2:
            continue
        key = parts[0]
        value = parts[1].lstrip(' \t"').split('"', 1)[0]
        if key in NUMERIC:
            # the last line of a key wins (def_load() overwrites the item), parsed when a program asks for it;
            # one that does not parse gives the program's own default ("configuration error - cannot parse")
            number_value = shadow_number(value)
            if number_value is None:
                ctx.error(where(PATH, number), "%s: %r does not parse as shadow-utils reads numbers (decimal, 0octal, "
                                               "0xhex); it uses its built-in default instead" % (key, value))
                facts[key] = None
                facts["sources"][key] = where(PATH, number)
                unparsable.add(key)
                continue
            unparsable.discard(key)
            value = number_value
        facts[key] = value
        facts["sources"][key] = where(PATH, number)
    for key, default in DEFAULTS.items():
        if key not in facts or key in unparsable:
            facts[key] = default
            facts["defaulted"].append(key)
    if unparsable:
        facts["unparsable"] = sorted(unparsable)
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
