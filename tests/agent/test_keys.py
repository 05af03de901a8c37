import base64
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from scanner.agent import ed25519, keys
from scanner.errors import XcscanError

# RFC 8032 section 7.1, tests 1-3: (secret, public, message, signature)
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


@pytest.mark.parametrize("secret,public,message,signature", RFC8032)
def test_pure_ed25519_matches_rfc8032_vectors(secret, public, message, signature):
    seed, msg = bytes.fromhex(secret), bytes.fromhex(message)
    assert ed25519.public_key(seed).hex() == public
    assert ed25519.sign(seed, msg).hex() == signature
    assert ed25519.verify(bytes.fromhex(public), msg, bytes.fromhex(signature))


def test_pure_ed25519_matches_cryptography_on_random_keys():
    for i in range(12):
        seed = os.urandom(32)
        msg = os.urandom(i * 37) + b"xcscan-report/1\n"
        ref = Ed25519PrivateKey.from_private_bytes(seed)
        pub = ref.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert ed25519.public_key(seed) == pub
        sig = ed25519.sign(seed, msg)
        assert sig == ref.sign(msg)
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)  # raises if invalid


def test_pure_verify_rejects_tampering():
    seed = os.urandom(32)
    sig = ed25519.sign(seed, b"report body")
    pub = ed25519.public_key(seed)
    assert not ed25519.verify(pub, b"report bodY", sig)
    bad = bytearray(sig)
    bad[5] ^= 1
    assert not ed25519.verify(pub, b"report body", bytes(bad))


def test_signed_message_layout_follows_api_doc():
    msg = keys.signed_message("host-1", 1700000000, b'{"a":1}')
    assert msg == b'xcscan-report/1\nhost-1\n1700000000\n{"a":1}'


def test_key_file_is_0600_even_with_permissive_umask(tmp_path):
    path = str(tmp_path / "agent.key")
    old = os.umask(0)
    try:
        seed = keys.create_key(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert keys.load_key(path) == seed
    # No temporary file is left beside it.
    assert os.listdir(str(tmp_path)) == ["agent.key"]


def test_key_pem_interoperates_with_cryptography(tmp_path):
    path = str(tmp_path / "agent.key")
    seed = keys.create_key(path)
    with open(path, "rb") as fh:
        loaded = serialization.load_pem_private_key(fh.read(), password=None)
    raw = loaded.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                               serialization.NoEncryption())
    assert raw == seed
    # and the other way round
    pem = Ed25519PrivateKey.from_private_bytes(seed).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert keys.from_pem(pem) == seed


def test_existing_key_is_never_overwritten(tmp_path):
    path = str(tmp_path / "agent.key")
    seed = keys.create_key(path)
    with pytest.raises(XcscanError) as err:
        keys.create_key(path)
    assert "already exists" in str(err.value)
    assert keys.load_key(path) == seed
    again, created = keys.load_or_create_key(path)
    assert again == seed and not created


def test_group_readable_key_is_refused_with_a_fix(tmp_path):
    path = str(tmp_path / "agent.key")
    keys.create_key(path)
    os.chmod(path, 0o640)
    with pytest.raises(XcscanError) as err:
        keys.load_key(path)
    assert "chmod 600" in str(err.value)


def test_symlinked_key_is_refused(tmp_path):
    real = str(tmp_path / "real.key")
    keys.create_key(real)
    link = str(tmp_path / "agent.key")
    os.symlink(real, link)
    with pytest.raises(XcscanError):
        keys.load_key(link)


def test_garbage_key_file_gives_clear_error(tmp_path):
    path = tmp_path / "agent.key"
    path.write_bytes(b"hello")
    os.chmod(str(path), 0o600)
    with pytest.raises(XcscanError) as err:
        keys.load_key(str(path))
    assert "PEM" in str(err.value)


def test_both_backends_produce_the_same_header(monkeypatch):
    seed = os.urandom(32)
    body = b'{"schema":"xcscan.report/1"}'
    via_cryptography = keys.sign_report(seed, "h", 1, body)
    monkeypatch.setattr(keys, "backend", lambda: "pure-python")
    assert keys.sign_report(seed, "h", 1, body) == via_cryptography
    assert len(base64.b64decode(via_cryptography)) == 64


def test_cryptography_without_ed25519_support_falls_back_to_pure_python(tmp_path):
    """An old system cryptography linked to OpenSSL < 1.1.1 imports but raises on first Ed25519 use."""
    import subprocess
    import sys
    pkg = tmp_path / "cryptography" / "hazmat" / "primitives" / "asymmetric"
    pkg.mkdir(parents=True)
    for d in (tmp_path / "cryptography", tmp_path / "cryptography" / "hazmat",
              tmp_path / "cryptography" / "hazmat" / "primitives", pkg):
        (d / "__init__.py").write_text("")
    (pkg / "ed25519.py").write_text(
        "class UnsupportedAlgorithm(Exception):\n    pass\n\n"
        "class Ed25519PrivateKey(object):\n    @classmethod\n    def from_private_bytes(cls, data):\n"
        "        raise UnsupportedAlgorithm('ed25519 is not supported by this version of OpenSSL.')\n")
    code = ("import base64, sys\nfrom scanner.agent import keys, ed25519\nprint(keys.backend())\n"
            "seed = bytes(range(32))\nsig = base64.b64decode(keys.sign_report(seed, 'h', 1, b'{}'))\n"
            "print(ed25519.verify(keys.public_key(seed), keys.signed_message('h', 1, b'{}'), sig))\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path) + os.pathsep + os.getcwd())
    res = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["pure-python", "True"]
