"""The aggregator's own CA and TLS server certificate (made with cryptography at ``server init``).

Agents pin ``ca.pem``. Private keys are written 0600.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import socket

CA_DAYS = 3650
SERVER_DAYS = 825


def _write(path, data, private=False):
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def default_names():
    names = {"localhost", "127.0.0.1"}
    try:
        names.add(socket.gethostname())
    except OSError:
        pass
    return sorted(names)


def _san(names):
    from cryptography import x509
    entries = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def make_pki(directory, names=None):
    """Write ca.pem, ca.key, server.pem, server.key into ``directory``; return their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names = list(names or default_names())
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xcscan"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "xcscan aggregator CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=CA_DAYS))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xcscan"),
                          x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "localhost")])
    srv_cert = (x509.CertificateBuilder().subject_name(srv_name).issuer_name(ca_name)
                .public_key(srv_key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(_san(names), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    nokey = serialization.NoEncryption()
    pkcs8 = serialization.PrivateFormat.PKCS8
    paths = {k: os.path.join(directory, k) for k in ("ca.pem", "ca.key", "server.pem", "server.key")}
    _write(paths["ca.key"], ca_key.private_bytes(pem, pkcs8, nokey), private=True)
    _write(paths["ca.pem"], ca_cert.public_bytes(pem))
    _write(paths["server.key"], srv_key.private_bytes(pem, pkcs8, nokey), private=True)
    _write(paths["server.pem"], srv_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    return paths
