"""Producing signatures: CMS SignedData (RFC 5652 §5) and S/MIME multipart/signed (RFC 8551 §3.5).

This module owns how pli signs: which signed attributes it puts in (contentType,
messageDigest, signingTime, SMIMECapabilities, plus any the caller adds such as
the notarisation receipt time), the DER of those attributes, the signature
algorithms (RSA PKCS#1 v1.5 by default, RSA-PSS on request, ECDSA for EC keys)
and the byte-exact multipart/signed framing with CRLF line ends. It must never
sign anything but the canonical bytes it is given (no re-encoding after the
digest), never use a digest weaker than SHA-256, and never log content.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from typing import Any

from asn1crypto import algos, cms, core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from gateway.smime.cms import (
    MICALG,
    base64_lines,
    canonicalize,
    der_length,
    digest_algorithm,
    hash_by_name,
    signed_attrs_der,
)
from gateway.smime.der import children, read_tlv
from gateway.smime.pki import PrivateKey

__all__ = ["attribute_der", "sign", "signed_data"]


def attribute_der(oid: str, *values_der: bytes) -> bytes:
    """One Attribute (RFC 5652 §5.3: SEQUENCE { attrType OID, attrValues SET OF ANY }) as DER."""
    oid_der: bytes = core.ObjectIdentifier(oid).dump()
    body = oid_der + signed_attrs_der(list(values_der))
    return b"\x30" + der_length(len(body)) + body


def _time(when: dt.datetime) -> Any:
    # RFC 5652 §11.3: UTCTime for 1950-2049, GeneralizedTime otherwise.
    when = when.astimezone(dt.UTC).replace(microsecond=0)
    if 1950 <= when.year < 2050:
        return cms.Time({"utc_time": when})
    return cms.Time({"generalized_time": when})


def _signature_algorithm_der(digest: str, kind: str) -> bytes:
    """SignatureAlgorithmIdentifier DER for ``kind`` in ecdsa / pss / pkcs1v15."""
    if kind == "ecdsa":
        alg = algos.SignedDigestAlgorithm({"algorithm": f"{digest}_ecdsa"})
    elif kind == "pss":
        # RFC 4056 §3 / RFC 8551 §2.2: PSS with MGF1 of the same hash, salt = hash length.
        alg = algos.SignedDigestAlgorithm(
            {
                "algorithm": "rsassa_pss",
                "parameters": algos.RSASSAPSSParams(
                    {
                        "hash_algorithm": {"algorithm": digest},
                        "mask_gen_algorithm": {
                            "algorithm": "mgf1",
                            "parameters": {"algorithm": digest},
                        },
                        "salt_length": hash_by_name(digest).digest_size,
                    }
                ),
            }
        )
    else:
        # RFC 5754 §3.2: rsaEncryption with the digest named in digestAlgorithm (as OpenSSL).
        alg = algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"})
    der: bytes = alg.dump()
    return der


def _capabilities() -> bytes:
    # RFC 8551 §2.5.2: what we can decrypt, preferred first.
    caps = cms.SMIMECapabilites(
        [
            {"capability_id": "2.16.840.1.101.3.4.1.46"},  # aes256-GCM
            {"capability_id": "2.16.840.1.101.3.4.1.42"},  # aes256-CBC
            {"capability_id": "1.2.840.113549.1.1.7"},  # RSAES-OAEP
        ]
    )
    return attribute_der("1.2.840.113549.1.9.15", caps.dump())


# The constant parts of every SignedData pli writes, encoded once at import: building them
# with asn1crypto on each call cost more than the RSA signature (notarisation signs every
# ingested message and each attachment).
_DIGESTS = ("sha256", "sha384", "sha512")
_SIG_ALGS = {
    (d, k): _signature_algorithm_der(d, k) for d in _DIGESTS for k in ("ecdsa", "pss", "pkcs1v15")
}
_DIGEST_ALGS = {d: digest_algorithm(d).dump() for d in _DIGESTS}
_CAPABILITIES = _capabilities()
_CONTENT_TYPE_DATA = attribute_der("1.2.840.113549.1.9.3", cms.ContentType("data").dump())
_OID_DATA = core.ObjectIdentifier("1.2.840.113549.1.7.1").dump()  # RFC 5652 §4
_OID_SIGNED_DATA = core.ObjectIdentifier("1.2.840.113549.1.7.2").dump()  # RFC 5652 §5.1
_V1 = b"\x02\x01\x01"  # CMSVersion v1: issuerAndSerialNumber, id-data (RFC 5652 §5.1, §5.3)


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + der_length(len(body)) + body


def _issuer_and_serial(cert_der: bytes) -> bytes:
    """IssuerAndSerialNumber (RFC 5652 §10.2.4) with the issuer Name and the serial INTEGER
    exactly as the certificate encodes them (X.509 TBSCertificate, RFC 5280 §4.1)."""
    tbs = children(cert_der, read_tlv(cert_der, 0, len(cert_der)), 3)[0]
    fields = children(cert_der, tbs, 10)
    i = 1 if fields[0].tag == 0xA0 else 0  # [0] EXPLICIT version, absent for v1
    serial, issuer = fields[i], fields[i + 2]
    return _tlv(0x30, cert_der[issuer.start : issuer.end] + cert_der[serial.start : serial.end])


def signed_data(
    content: bytes,
    cert: x509.Certificate,
    key: PrivateKey,
    chain: Sequence[x509.Certificate] = (),
    *,
    detached: bool = True,
    signing_time: dt.datetime | None = None,
    extra_attrs: Sequence[bytes] = (),
    digest: str = "sha256",
    pss: bool = False,
    capabilities: bool = True,
) -> bytes:
    """A DER ContentInfo holding SignedData over ``content`` exactly as given.

    Signed attributes: contentType id-data, messageDigest, signingTime (now, or
    ``signing_time``), SMIMECapabilities, and ``extra_attrs`` (DER Attributes,
    see ``attribute_der``). ``detached`` leaves eContent out (RFC 5652 §5.2), the
    form of multipart/signed and of notarisation receipts. The DER is assembled
    from pre-encoded constant parts, byte for byte what asn1crypto would write
    (SET OF sorted, X.690 §11.6; tested against it).
    """
    h = hash_by_name(digest)
    hasher = hashes.Hash(h)
    hasher.update(content)
    message_digest = hasher.finalize()
    when = signing_time or dt.datetime.now(dt.UTC)
    attrs = [
        _CONTENT_TYPE_DATA,  # RFC 5652 §11.1
        attribute_der("1.2.840.113549.1.9.5", _time(when).dump()),  # RFC 5652 §11.3
        attribute_der("1.2.840.113549.1.9.4", _tlv(0x04, message_digest)),  # §11.2
        *(_CAPABILITIES,) * capabilities,
        *extra_attrs,
    ]
    to_sign = signed_attrs_der(attrs)  # RFC 5652 §5.4: the signature covers the SET OF's DER
    if isinstance(key, ec.EllipticCurvePrivateKey):
        kind = "ecdsa"
        signature = key.sign(to_sign, ec.ECDSA(h))
    elif isinstance(key, rsa.RSAPrivateKey):
        kind = "pss" if pss else "pkcs1v15"
        pad: padding.AsymmetricPadding = (
            padding.PSS(padding.MGF1(h), h.digest_size) if pss else padding.PKCS1v15()
        )
        signature = key.sign(to_sign, pad, h)
    else:  # pragma: no cover - PrivateKey is RSA | EC
        raise TypeError("unsupported key type")
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    signer_info = _tlv(
        0x30,
        b"".join(
            (  # RFC 5652 §5.3
                _V1,
                _issuer_and_serial(cert_der),
                _DIGEST_ALGS[digest],
                b"\xa0" + to_sign[1:],  # signedAttrs [0] IMPLICIT
                _SIG_ALGS[digest, kind],
                _tlv(0x04, signature),
            )
        ),
    )
    certs = [cert_der, *(c.public_bytes(serialization.Encoding.DER) for c in chain)]
    encap = _OID_DATA if detached else _OID_DATA + _tlv(0xA0, _tlv(0x04, content))
    sd = _tlv(
        0x30,
        b"".join(
            (  # RFC 5652 §5.1
                _V1,
                _tlv(0x31, _DIGEST_ALGS[digest]),
                _tlv(0x30, encap),
                _tlv(0xA0, b"".join(sorted(certs))),  # certificates [0] IMPLICIT SET OF
                _tlv(0x31, signer_info),
            )
        ),
    )
    return _tlv(0x30, _OID_SIGNED_DATA + _tlv(0xA0, sd))


def _boundary(content: bytes) -> str:
    while True:  # 128 random bits: a collision with the content is astronomically unlikely
        b = f"----=_pli_{secrets.token_hex(16)}"
        if b.encode() not in content:
            return b


def sign(
    content: bytes,
    cert: x509.Certificate,
    key: PrivateKey,
    chain: Sequence[x509.Certificate] = (),
    *,
    digest: str = "sha256",
    pss: bool = False,
    signing_time: dt.datetime | None = None,
) -> bytes:
    """A ``multipart/signed`` MIME entity (RFC 8551 §3.5.3; RFC 1847) over ``content``.

    ``content`` is a MIME entity (its own headers, a blank line, its body). It
    is put in canonical form (CRLF) first, and those exact bytes are both
    digested and written as the first part, so no later re-encoding can break
    the signature. The caller adds the message header fields (From, To,
    Subject, MIME-Version…) above the returned entity's Content-Type.
    """
    body = canonicalize(content)
    der = signed_data(
        body, cert, key, chain, detached=True, digest=digest, pss=pss, signing_time=signing_time
    )
    boundary = _boundary(body)
    head = (
        f'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
        f'micalg={MICALG[digest]}; boundary="{boundary}"\r\n\r\n'
        f"This is an S/MIME signed message\r\n\r\n--{boundary}\r\n"
    ).encode()
    sig_part = (
        f"\r\n--{boundary}\r\n"
        'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n'
    ).encode()
    return b"".join(
        (
            head,
            body,
            sig_part,
            base64_lines(der).rstrip(b"\r\n"),
            f"\r\n--{boundary}--\r\n".encode(),
        )
    )
