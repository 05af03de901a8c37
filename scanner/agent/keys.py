"""The agent's Ed25519 identity: make, store (PKCS#8 PEM, mode 0600), load, sign.

Signing uses ``cryptography`` when it can be imported and falls back to the
pure-Python RFC 8032 code in :mod:`scanner.agent.ed25519` (the offline
bundle on a system Python without ``cryptography``). Both produce identical
signatures (Ed25519 is deterministic); the tests check that.

The key file is written so that it is never readable by anyone else, not
even for a moment: it is created under umask 077 with O_EXCL|O_NOFOLLOW and
mode 0600, filled and fsynced under a temporary name, then hard-linked into
place (which fails if a key already exists, so a key is never overwritten).
"""
from __future__ import absolute_import

import base64
import errno
import os
import stat

from scanner.errors import XcscanError

from scanner.fsutil import fsync_dir

# DER prefix of an unencrypted PKCS#8 Ed25519 private key (RFC 8410); the 32-byte seed follows.
_PKCS8_PREFIX = bytes(bytearray([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65,
                                 0x70, 0x04, 0x22, 0x04, 0x20]))
_PEM_BEGIN = "-----BEGIN PRIVATE KEY-----"
_PEM_END = "-----END PRIVATE KEY-----"
SIGNATURE_CONTEXT = b"xcscan-report/1\n"


_BACKEND = []


def backend():
    """'cryptography' or 'pure-python': which Ed25519 implementation signs.

    cryptography is used only when it can really do Ed25519: an old system package
    (before 2.6) lacks the module, and one linked against OpenSSL < 1.1.1 imports but
    raises UnsupportedAlgorithm on first use.
    """
    if not _BACKEND:
        try:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            Ed25519PrivateKey.from_private_bytes(b"\x01" * 32).sign(b"probe")
            _BACKEND.append("cryptography")
        except Exception:  # ImportError, UnsupportedAlgorithm, a broken binary build
            _BACKEND.append("pure-python")
    return _BACKEND[0]


def new_seed():
    return os.urandom(32)


def public_key(seed):
    if backend() == "cryptography":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives import serialization
        key = Ed25519PrivateKey.from_private_bytes(seed)
        return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    from scanner.agent import ed25519
    return ed25519.public_key(seed)


def sign(seed, message):
    if backend() == "cryptography":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        return Ed25519PrivateKey.from_private_bytes(seed).sign(message)
    from scanner.agent import ed25519
    return ed25519.sign(seed, message)


def signed_message(host_id, timestamp, body):
    """The exact bytes signed for a report submission (docs/api.md)."""
    return b"".join([SIGNATURE_CONTEXT, host_id.encode("utf-8"), b"\n",
                     str(int(timestamp)).encode("ascii"), b"\n", body])


def sign_report(seed, host_id, timestamp, body):
    """Base64 signature header value for ``body`` (the uncompressed bytes)."""
    return base64.b64encode(sign(seed, signed_message(host_id, timestamp, body))).decode("ascii")


def to_pem(seed):
    der = _PKCS8_PREFIX + seed
    b64 = base64.b64encode(der).decode("ascii")
    return ("%s\n%s\n%s\n" % (_PEM_BEGIN, b64, _PEM_END)).encode("ascii")


def from_pem(data, path=None):
    text = data.decode("ascii", "replace").strip()
    if not (text.startswith(_PEM_BEGIN) and text.endswith(_PEM_END)):
        raise XcscanError("not a PEM private key", path=path,
                          hint="the agent key is made by `xcscan agent enroll`; re-enroll to make a new one")
    body = "".join(text[len(_PEM_BEGIN):-len(_PEM_END)].split())
    try:
        der = base64.b64decode(body.encode("ascii"))
    except (ValueError, TypeError):
        raise XcscanError("private key is not valid base64", path=path)
    if len(der) != len(_PKCS8_PREFIX) + 32 or not der.startswith(_PKCS8_PREFIX):
        raise XcscanError("not an unencrypted PKCS#8 Ed25519 private key", path=path,
                          hint="the agent only uses Ed25519 keys; re-enroll to make one")
    return der[len(_PKCS8_PREFIX):]



def write_private_file(path, data, mode=0o600):
    """Create ``path`` with ``data`` exclusively: never overwrites, never briefly readable by others."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, ".%s.new.%d" % (os.path.basename(path), os.getpid()))
    old_umask = os.umask(0o077)
    try:
        try:
            os.unlink(tmp)  # a leftover of a killed enroll with our pid
        except OSError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    finally:
        os.umask(old_umask)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)  # EEXIST when a key is already there: never clobber one
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    fsync_dir(directory)


def create_key(path):
    """Make a new key at ``path`` (which must not exist); return the seed."""
    seed = new_seed()
    try:
        write_private_file(path, to_pem(seed))
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise XcscanError("a key already exists", path=path,
                              hint="`xcscan agent enroll` reuses it; delete it only to change the host identity")
        raise XcscanError("cannot write the private key: %s" % (exc.strerror or exc), path=path,
                          hint="run as root or choose a writable --config directory")
    return seed


def load_key(path):
    """Read the seed from ``path``; refuse a key file others can read (like ssh)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise XcscanError("the agent key is missing", path=path,
                              hint="run `xcscan agent enroll` first")
        raise XcscanError("cannot read the agent key: %s" % (exc.strerror or exc), path=path,
                          hint="run the agent as root (or the user that enrolled it)")
    try:
        st = os.fstat(fd)
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise XcscanError("the agent key is accessible by group or others (mode %04o)"
                              % stat.S_IMODE(st.st_mode), path=path,
                              hint="run `chmod 600 %s`" % path)
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    return from_pem(data, path=path)


def load_or_create_key(path):
    """(seed, created): reuse an existing key, else make one."""
    if os.path.lexists(path):
        return load_key(path), False
    return create_key(path), True
