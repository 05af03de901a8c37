"""X.509 certificate facts: key type/size, curve OID (SM2), signature algorithm OID, validity, subject.

``cryptography`` (imported lazily) parses names, dates and extensions. The
public key is read from the SubjectPublicKeyInfo with a small DER walker, because
``cryptography`` refuses SM2 keys ("Curve 1.2.156.10197.1.301 is not supported")
and the agent may run with an old ``cryptography`` on Python 3.7.
"""
from __future__ import absolute_import

import datetime
import re
import warnings

OID_SM2_CURVE = "1.2.156.10197.1.301"
OID_SM2_WITH_SM3 = "1.2.156.10197.1.501"

KEY_ALGORITHMS = {
    "1.2.840.113549.1.1.1": "rsa",
    "1.2.840.113549.1.1.10": "rsa-pss",
    "1.2.840.10045.2.1": "ec",
    "1.2.840.10040.4.1": "dsa",
    "1.3.101.112": "ed25519",
    "1.3.101.113": "ed448",
    OID_SM2_CURVE: "sm2",  # some tools put the SM2 OID as the algorithm itself
}
CURVES = {
    "1.2.840.10045.3.1.7": ("secp256r1", 256),
    "1.3.132.0.34": ("secp384r1", 384),
    "1.3.132.0.35": ("secp521r1", 521),
    "1.3.132.0.10": ("secp256k1", 256),
    "1.2.840.10045.3.1.1": ("secp192r1", 192),
    "1.3.132.0.33": ("secp224r1", 224),
    "1.3.36.3.3.2.8.1.1.7": ("brainpoolP256r1", 256),
    "1.3.36.3.3.2.8.1.1.11": ("brainpoolP384r1", 384),
    OID_SM2_CURVE: ("SM2", 256),
}
SIGNATURES = {
    "1.2.840.113549.1.1.4": ("md5WithRSAEncryption", "md5"),
    "1.2.840.113549.1.1.5": ("sha1WithRSAEncryption", "sha1"),
    "1.2.840.113549.1.1.11": ("sha256WithRSAEncryption", "sha256"),
    "1.2.840.113549.1.1.12": ("sha384WithRSAEncryption", "sha384"),
    "1.2.840.113549.1.1.13": ("sha512WithRSAEncryption", "sha512"),
    "1.2.840.113549.1.1.14": ("sha224WithRSAEncryption", "sha224"),
    "1.2.840.113549.1.1.10": ("RSASSA-PSS", None),
    "1.2.840.10045.4.1": ("ecdsa-with-SHA1", "sha1"),
    "1.2.840.10045.4.3.1": ("ecdsa-with-SHA224", "sha224"),
    "1.2.840.10045.4.3.2": ("ecdsa-with-SHA256", "sha256"),
    "1.2.840.10045.4.3.3": ("ecdsa-with-SHA384", "sha384"),
    "1.2.840.10045.4.3.4": ("ecdsa-with-SHA512", "sha512"),
    "1.2.840.10040.4.3": ("dsa-with-SHA1", "sha1"),
    "2.16.840.1.101.3.4.3.2": ("dsa-with-SHA256", "sha256"),
    "1.3.101.112": ("Ed25519", None),
    "1.3.101.113": ("Ed448", None),
    OID_SM2_WITH_SM3: ("SM2-with-SM3", "sm3"),
    "1.2.156.10197.1.504": ("RSA-with-SM3", "sm3"),
}
PEM_RE = re.compile(b"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----(.+?)-----END (?:X509 |TRUSTED )?CERTIFICATE-----",
                    re.DOTALL)
MAX_CERTS_PER_FILE = 10


class DERError(ValueError):
    pass


def _tlv(data, pos):
    """(tag, content_start, content_end) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise DERError("truncated DER")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise DERError("bad DER length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise DERError("DER element overruns its container")
    return tag, pos, pos + length


def _children(data, start, end):
    out = []
    pos = start
    while pos < end:
        tag, s, e = _tlv(data, pos)
        out.append((tag, s, e))
        pos = e
    return out


def _oid(raw):
    if not raw:
        raise DERError("empty OID")
    first = raw[0]
    parts = [str(min(first // 40, 2)), str(first - 40 * min(first // 40, 2))]
    value = 0
    for b in raw[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(str(value))
            value = 0
    return ".".join(parts)


def spki_info(der):
    """Key facts from a DER certificate: {key_type, key_bits, curve, curve_oid, key_oid}."""
    _, s, e = _tlv(der, 0)                      # Certificate
    tbs_tag, ts, te = _children(der, s, e)[0]  # TBSCertificate
    fields = _children(der, ts, te)
    idx = 1 if fields and fields[0][0] == 0xA0 else 0   # optional [0] version
    # serial, signature, issuer, validity, subject, subjectPublicKeyInfo
    tag, ps, pe = fields[idx + 5]
    alg, bits = _children(der, ps, pe)[:2]
    alg_children = _children(der, alg[1], alg[2])
    key_oid = _oid(der[alg_children[0][1]:alg_children[0][2]])
    param_oid = None
    if len(alg_children) > 1 and alg_children[1][0] == 0x06:
        param_oid = _oid(der[alg_children[1][1]:alg_children[1][2]])
    info = {"key_oid": key_oid, "key_type": KEY_ALGORITHMS.get(key_oid, key_oid), "key_bits": None,
            "curve": None, "curve_oid": param_oid}
    if info["key_type"] in ("rsa", "rsa-pss"):
        key = der[bits[1] + 1:bits[2]]          # skip the unused-bits byte
        _, ks, ke = _tlv(key, 0)
        modulus = _children(key, ks, ke)[0]
        n = key[modulus[1]:modulus[2]].lstrip(b"\x00")
        info["key_bits"] = len(n) * 8 - (8 - n[0].bit_length()) if n else 0
    elif info["key_type"] in ("ec", "sm2"):
        curve = CURVES.get(param_oid or (OID_SM2_CURVE if info["key_type"] == "sm2" else ""))
        if curve:
            info["curve"], info["key_bits"] = curve
        if param_oid == OID_SM2_CURVE or info["key_type"] == "sm2":
            info["key_type"] = "sm2"
            info["curve_oid"] = OID_SM2_CURVE
    elif info["key_type"] == "ed25519":
        info["key_bits"] = 256
    elif info["key_type"] == "ed448":
        info["key_bits"] = 456
    elif info["key_type"] == "dsa":
        info["key_bits"] = None
    return info


def der_is_ca(der):
    """True when the certificate's BasicConstraints says CA (DER walk, no cryptography import)."""
    try:
        _, s, e = _tlv(der, 0)
        _, ts, te = _children(der, s, e)[0]
        for tag, cs, ce in _children(der, ts, te):
            if tag != 0xA3:
                continue
            _, xs, xe = _tlv(der, cs)
            for _, es, ee in _children(der, xs, xe):
                parts = _children(der, es, ee)
                if _oid(der[parts[0][1]:parts[0][2]]) != "2.5.29.19":
                    continue
                octet = parts[-1]
                _, bs, be = _tlv(der, octet[1])
                inner = _children(der, bs, be)
                return bool(inner and inner[0][0] == 0x01 and der[inner[0][1]] != 0)
        return False
    except (DERError, IndexError, ValueError):
        return False


def pem_blocks(data, limit=MAX_CERTS_PER_FILE + 1):
    """DER bytes of the PEM certificates in ``data`` (a DER file is one block); bad base64 is skipped."""
    import base64
    import binascii
    blocks = PEM_RE.findall(data)
    if not blocks:
        return [data] if data[:1] == b"\x30" else []
    out = []
    for block in blocks[:limit]:
        try:
            out.append(base64.b64decode(b"".join(block.split())))
        except (binascii.Error, ValueError):
            out.append(b"")
    return out


def _iso(dt):
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _validity(cert):
    after = getattr(cert, "not_valid_after_utc", None)
    before = getattr(cert, "not_valid_before_utc", None)
    if after is None:
        after, before = cert.not_valid_after, cert.not_valid_before
    return _iso(before), _iso(after)


def parse_der(der):
    """Facts for one DER certificate (never raises: problems go into ``error``)."""
    with warnings.catch_warnings():
        # e.g. "Python 3.7 is no longer supported" on the agent's system Python: not the scan's business
        warnings.simplefilter("ignore")
        from cryptography import x509
    out = {"subject": None, "issuer": None, "self_signed": None, "is_ca": None, "key_type": None,
           "key_bits": None, "curve": None, "curve_oid": None, "sm2": None, "signature_algorithm": None,
           "signature_oid": None, "signature_hash": None, "not_before": None, "not_after": None,
           "serial": None, "error": None}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                cert = x509.load_der_x509_certificate(der)
            except TypeError:  # cryptography < 3.1 needs a backend
                from cryptography.hazmat.backends import default_backend
                cert = x509.load_der_x509_certificate(der, default_backend())
            out["subject"] = cert.subject.rfc4514_string()
            out["issuer"] = cert.issuer.rfc4514_string()
            out["self_signed"] = cert.subject == cert.issuer
            out["serial"] = format(cert.serial_number, "x")
            out["not_before"], out["not_after"] = _validity(cert)
            sig_oid = cert.signature_algorithm_oid.dotted_string
            out["signature_oid"] = sig_oid
            name, digest = SIGNATURES.get(sig_oid, (getattr(cert.signature_algorithm_oid, "_name", None) or sig_oid,
                                                    None))
            out["signature_algorithm"], out["signature_hash"] = name, digest
            try:
                bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
                out["is_ca"] = bool(bc.value.ca)
            except x509.ExtensionNotFound:
                out["is_ca"] = False
            except Exception:
                out["is_ca"] = None
    except Exception as exc:
        out["error"] = "cannot parse certificate: %s" % (exc,)
        return out
    try:
        out.update(dict((k, v) for k, v in spki_info(der).items() if k != "key_oid"))
        out["sm2"] = out["key_type"] == "sm2"
    except (DERError, IndexError, ValueError) as exc:
        out["error"] = "cannot read the public key: %s" % (exc,)
    return out


def parse_pem_bundle(data, limit=MAX_CERTS_PER_FILE):
    """[(index, facts)] for each PEM certificate in ``data`` (or a single DER certificate)."""
    import base64
    import binascii
    blocks = PEM_RE.findall(data)
    if not blocks:
        if data[:1] == b"\x30":
            return [(0, parse_der(data))]
        return []
    out = []
    for i, block in enumerate(blocks[:limit]):
        try:
            der = base64.b64decode(b"".join(block.split()))
        except (binascii.Error, ValueError) as exc:
            out.append((i, {"error": "bad PEM base64: %s" % exc}))
            continue
        out.append((i, parse_der(der)))
    return out
