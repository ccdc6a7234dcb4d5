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
from asn1crypto import x509 as asn1_x509
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


def _signature_algorithm(
    key: PrivateKey, digest: str, pss: bool
) -> tuple[Any, padding.AsymmetricPadding | None]:
    """(SignatureAlgorithmIdentifier, RSA padding) for the key type."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return algos.SignedDigestAlgorithm({"algorithm": f"{digest}_ecdsa"}), None
    if pss:
        # RFC 4056 §3 / RFC 8551 §2.2: PSS with MGF1 of the same hash, salt = hash length.
        h = hash_by_name(digest)
        params = algos.RSASSAPSSParams({
            "hash_algorithm": {"algorithm": digest},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": digest}},
            "salt_length": h.digest_size,
        })
        pad: padding.AsymmetricPadding = padding.PSS(padding.MGF1(h), h.digest_size)
        return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss",
                                            "parameters": params}), pad
    # RFC 5754 §3.2: rsaEncryption with the digest named in digestAlgorithm (what OpenSSL writes).
    return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}), padding.PKCS1v15()


def _capabilities() -> bytes:
    # RFC 8551 §2.5.2: what we can decrypt, preferred first.
    caps = cms.SMIMECapabilites([
        {"capability_id": "2.16.840.1.101.3.4.1.46"},  # aes256-GCM
        {"capability_id": "2.16.840.1.101.3.4.1.42"},  # aes256-CBC
        {"capability_id": "1.2.840.113549.1.1.7"},  # RSAES-OAEP
    ])
    return attribute_der("1.2.840.113549.1.9.15", caps.dump())


def signed_data(content: bytes, cert: x509.Certificate, key: PrivateKey,
                chain: Sequence[x509.Certificate] = (), *, detached: bool = True,
                signing_time: dt.datetime | None = None, extra_attrs: Sequence[bytes] = (),
                digest: str = "sha256", pss: bool = False, capabilities: bool = True) -> bytes:
    """A DER ContentInfo holding SignedData over ``content`` exactly as given.

    Signed attributes: contentType id-data, messageDigest, signingTime (now, or
    ``signing_time``), SMIMECapabilities, and ``extra_attrs`` (DER Attributes,
    see ``attribute_der``). ``detached`` leaves eContent out (RFC 5652 §5.2), the
    form of multipart/signed and of notarisation receipts.
    """
    h = hash_by_name(digest)
    hasher = hashes.Hash(h)
    hasher.update(content)
    message_digest = hasher.finalize()
    when = signing_time or dt.datetime.now(dt.UTC)
    attrs = [
        attribute_der("1.2.840.113549.1.9.3", cms.ContentType("data").dump()),  # RFC 5652 §11.1
        attribute_der("1.2.840.113549.1.9.5", _time(when).dump()),  # RFC 5652 §11.3
        attribute_der("1.2.840.113549.1.9.4", core.OctetString(message_digest).dump()),  # §11.2
        *(_capabilities(),) * capabilities,
        *extra_attrs,
    ]
    to_sign = signed_attrs_der(attrs)  # RFC 5652 §5.4: the signature covers the SET OF's DER
    sig_alg, pad = _signature_algorithm(key, digest, pss)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(to_sign, ec.ECDSA(h))
    elif isinstance(key, rsa.RSAPrivateKey) and pad is not None:
        signature = key.sign(to_sign, pad, h)
    else:  # pragma: no cover - PrivateKey is RSA | EC
        raise TypeError("unsupported key type")
    signer = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": cms.IssuerAndSerialNumber({
            "issuer": signer.issuer, "serial_number": signer.serial_number})}),
        "digest_algorithm": digest_algorithm(digest),
        "signed_attrs": cms.CMSAttributes.load(to_sign),
        "signature_algorithm": sig_alg,
        "signature": signature,
    })
    certs = [signer] + [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
                        for c in chain]
    sd = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [digest_algorithm(digest)],
        "encap_content_info": {"content_type": "data",
                               "content": None if detached else content},
        "certificates": certs,
        "signer_infos": [signer_info],
    })
    der: bytes = cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()
    return der


def _boundary(content: bytes) -> str:
    while True:  # 128 random bits: a collision with the content is astronomically unlikely
        b = f"----=_pli_{secrets.token_hex(16)}"
        if b.encode() not in content:
            return b


def sign(content: bytes, cert: x509.Certificate, key: PrivateKey,
         chain: Sequence[x509.Certificate] = (), *, digest: str = "sha256", pss: bool = False,
         signing_time: dt.datetime | None = None) -> bytes:
    """A ``multipart/signed`` MIME entity (RFC 8551 §3.5.3; RFC 1847) over ``content``.

    ``content`` is a MIME entity (its own headers, a blank line, its body). It
    is put in canonical form (CRLF) first, and those exact bytes are both
    digested and written as the first part, so no later re-encoding can break
    the signature. The caller adds the message header fields (From, To,
    Subject, MIME-Version…) above the returned entity's Content-Type.
    """
    body = canonicalize(content)
    der = signed_data(body, cert, key, chain, detached=True, digest=digest, pss=pss,
                      signing_time=signing_time)
    boundary = _boundary(body)
    head = (f'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
            f'micalg={MICALG[digest]}; boundary="{boundary}"\r\n\r\n'
            f"This is an S/MIME signed message\r\n\r\n--{boundary}\r\n").encode()
    sig_part = (f"\r\n--{boundary}\r\n"
                'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
                "Content-Transfer-Encoding: base64\r\n"
                'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n').encode()
    return b"".join((head, body, sig_part, base64_lines(der).rstrip(b"\r\n"),
                     f"\r\n--{boundary}--\r\n".encode()))
