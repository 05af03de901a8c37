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


def password_problem(password):
    """None when acceptable, else a reason."""
    if len(password) < MIN_LENGTH:
        return "password must have at least %d characters" % MIN_LENGTH
    return None


# A fixed hash to verify against when the user does not exist, so timing does not reveal names.
_DUMMY = None


def dummy_verify(password):
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = hash_password("xcscan-dummy-password")
    verify_password(_DUMMY, password)
