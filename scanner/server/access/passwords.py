"""Password hashing with Argon2id (memory-hard), via argon2-cffi."""
from __future__ import annotations

_HASHER = None

MIN_LENGTH = 10


def hasher():
    global _HASHER
    if _HASHER is None:
        from argon2 import PasswordHasher
        # RFC 9106 "second recommended" profile: 64 MiB, 3 passes.
        _HASHER = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=2)
    return _HASHER


def hash_password(password):
    return hasher().hash(password)


def verify_password(stored, password):
    from argon2.exceptions import InvalidHashError, VerificationError
    try:
        return hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password, username=None):
    """None when acceptable, else a reason that says what to do."""
    if len(password) < MIN_LENGTH:
        return "password must have at least %d characters" % MIN_LENGTH
    low = password.lower()
    if len(set(low)) < 4:
        return "password repeats too few characters (%d different); use a passphrase of several words" % len(set(low))
    if _is_run(low):
        return "password is a run of neighbouring keys or a counting sequence; use a passphrase of several words"
    core = low.strip(_PADDING)
    if username:
        name = username.lower()
        if any(name in text and not text.replace(name, "").strip(_PADDING) for text in (low, low[::-1])):
            return "password must not be the user name (or the user name with digits added)"
    if low in common_passwords() or core in common_passwords() or not core:
        return "password is one of the most common passwords (or one with digits added); use a passphrase of several words"
    return None


_PADDING = "0123456789!@#$%^&*()_+-=.,;:?~`'\"[]{}<>/\\| "
_RUNS = ("abcdefghijklmnopqrstuvwxyz", "01234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm", "1qaz2wsx3edc4rfv5tgb")


def _is_run(low):
    """Every character the next one on a keyboard row or in counting order (either direction)."""
    for run in _RUNS:
        for seq in (run, run[::-1]):
            if low in seq or low in seq * 3:
                return True
    return False


_COMMON = None


def common_passwords():
    global _COMMON
    if _COMMON is None:
        import os
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "common_passwords.txt")
        with open(path, encoding="utf-8") as fh:
            _COMMON = frozenset(line.strip() for line in fh if line.strip() and not line.startswith("#"))
    return _COMMON


# A fixed hash to verify against when the user does not exist, so timing does not reveal names.
_DUMMY = None


def dummy_verify(password):
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = hash_password("xcscan-dummy-password")
    verify_password(_DUMMY, password)
