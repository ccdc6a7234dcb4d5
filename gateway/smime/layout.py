"""Where the parts of an (Auth)EnvelopedData or a SignedData are, without copying the big one.

Decryption and verification need a handful of small structures (recipient
infos, algorithm identifiers, attributes, signer infos, certificates) and one
big value (the ciphertext, or the encapsulated content). asn1crypto copies the
big value once per enclosing structure; for a megabyte attachment that was
most of pli's parsing time. This module reads the outer layers with the DER
walker of ``gateway.smime.der``, hands asn1crypto only the small structures,
and returns the ciphertext as a ``memoryview`` of the input.

The walker accepts plain DER of the expected shape only. Everything else —
BER as ``openssl cms`` streams it (indefinite lengths, constructed OCTET
STRINGs), unusual content types, malformed or truncated input — goes through
asn1crypto exactly as before this fast path existed, so asn1crypto's verdict
(and error text) stays the reference for anything unusual. Neither path lets
a third-party exception escape: failures are ``MalformedCms`` (or subclasses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asn1crypto import cms, core

from gateway.smime.cms import (
    CmsTooLarge,
    MalformedCms,
    content_bytes,
    malformed_on_error,
    parse_content_info,
    signed_attrs_der,
)
from gateway.smime.der import DerError, Tlv, children, oid_der, oid_dotted, read_tlv, take

__all__ = ["Attribute", "Sealed", "SignedLayout", "attributes", "locate_enveloped", "locate_signed"]

_OID_DATA = oid_der("1.2.840.113549.1.7.1")  # RFC 5652 §4 id-data
_OID_SIGNED = oid_der("1.2.840.113549.1.7.2")  # RFC 5652 §5.1 id-signedData
_OID_ENVELOPED = oid_der("1.2.840.113549.1.7.3")  # RFC 5652 §6.1 id-envelopedData
_OID_AUTH_ENVELOPED = oid_der("1.2.840.113549.1.9.16.1.23")  # RFC 5083 §1 authEnvelopedData
# More certificates or signer infos than this: not a mail signature; asn1crypto decides.
_MAX_ITEMS = 64
_CERTIFICATE_CHOICES = (0x30, 0xA0, 0xA1, 0xA2, 0xA3)  # RFC 5652 §10.2.2
_MAX_ATTRIBUTES = 64  # and values per attribute


@dataclass(frozen=True, slots=True)
class Sealed:
    """What decryption needs from an (Auth)EnvelopedData; the small parts as asn1crypto
    values, the big ciphertext as a view of the input (None when absent: detached)."""

    recipient_infos: Any
    algorithm: Any
    ciphertext: bytes | memoryview | None
    mac: bytes | None
    aad: bytes | None


@dataclass(frozen=True, slots=True)
class SignedLayout:
    """What verification needs from a SignedData (RFC 5652 §5.1)."""

    content_type: str  # eContentType as asn1crypto names it: "data", …
    content: bytes | None  # the encapsulated content; None when detached
    certificates: list[bytes]  # the DER of each CertificateChoices that is a Certificate
    signer_infos: list[Any]  # cms.SignerInfo values


@dataclass(frozen=True, slots=True)
class Attribute:
    """One Attribute (RFC 5652 §5.3) as the DER it arrived in."""

    oid: str  # attrType, dotted
    der: bytes  # the whole Attribute SEQUENCE
    values_der: bytes  # attrValues, the SET OF
    values: list[bytes]  # each AttributeValue


def _check_input(data: bytes, max_size: int) -> None:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedCms("CMS input must be bytes")
    if len(data) > max_size:
        raise CmsTooLarge(f"CMS structure larger than {max_size} bytes")


def _content_info(mv: memoryview, oids: tuple[bytes, ...]) -> tuple[bytes, Tlv]:
    """(content type OID, the one SEQUENCE inside [0]) of a DER ContentInfo (RFC 5652 §3)
    whose type is one of ``oids``."""
    info = children(mv, read_tlv(mv, 0, len(mv)), 2)
    if len(info) != 2 or info[0].tag != 0x06 or info[1].tag != 0xA0:
        raise DerError("not a ContentInfo")
    oid = bytes(mv[info[0].body : info[0].end])
    if oid not in oids:
        raise DerError("another content type")  # asn1crypto's path names it
    inner = children(mv, info[1], 1)
    if len(inner) != 1 or inner[0].tag != 0x30:
        raise DerError("[0] content is not one SEQUENCE")
    return oid, inner[0]


# ---------------------------------------------------------------- (Auth)EnvelopedData


def _aad(attrs: Any) -> bytes | None:
    # RFC 5083 §2.2: the AAD is the DER of authAttrs with the SET OF tag.
    return signed_attrs_der([a.dump() for a in attrs]) if attrs.contents else None


def _enveloped_der(data: bytes) -> Sealed:
    mv = memoryview(data)
    oid, body = _content_info(mv, (_OID_ENVELOPED, _OID_AUTH_ENVELOPED))
    auth = oid == _OID_AUTH_ENVELOPED
    fields = children(mv, body, 7)  # RFC 5652 §6.1, RFC 5083 §2.1
    _, i = take(fields, 0, 0x02)  # version
    _, i = take(fields, i, 0xA0, optional=True)  # originatorInfo [0]
    ris, i = take(fields, i, 0x31)  # recipientInfos SET
    eci, i = take(fields, i, 0x30)  # (auth)EncryptedContentInfo
    attrs, i = take(fields, i, 0xA1, optional=True)  # authAttrs / unprotectedAttrs [1]
    mac = None
    if auth:
        mac, i = take(fields, i, 0x04)
        _, i = take(fields, i, 0xA2, optional=True)  # unauthAttrs [2]
    if i != len(fields) or ris is None or eci is None:
        raise DerError("unexpected trailing element in enveloped data")
    parts = children(mv, eci, 3)  # RFC 5652 §6.1 EncryptedContentInfo
    _, j = take(parts, 0, 0x06)
    alg, j = take(parts, j, 0x30)
    ciphertext, j = take(parts, j, 0x80, optional=True)  # primitive [0]: constructed is BER
    if j != len(parts) or alg is None:
        raise DerError("EncryptedContentInfo not in the expected DER form")
    with malformed_on_error("enveloped data"):
        aad = None
        if auth and attrs is not None:
            # [1] IMPLICIT SET OF: parsed with the universal SET tag put back.
            aad = _aad(cms.CMSAttributes.load(b"\x31" + bytes(mv[attrs.start + 1 : attrs.end])))
        return Sealed(
            cms.RecipientInfos.load(bytes(mv[ris.start : ris.end])),
            cms.EncryptionAlgorithm.load(bytes(mv[alg.start : alg.end])),
            None if ciphertext is None else mv[ciphertext.body : ciphertext.end],
            None if mac is None else bytes(mv[mac.body : mac.end]),
            aad,
        )


def _enveloped_ber(data: bytes, max_size: int) -> Sealed:
    info = parse_content_info(data, max_size=max_size)
    with malformed_on_error("enveloped data"):
        kind = info["content_type"].native
        body = info["content"]
        if kind == "enveloped_data":
            enc_info, mac, aad = body["encrypted_content_info"], None, None
        elif kind == "authenticated_enveloped_data":
            enc_info, mac = body["auth_encrypted_content_info"], body["mac"].native
            aad = _aad(body["auth_attrs"])
        else:
            raise MalformedCms(f"not enveloped data but {kind}")
        content = enc_info["encrypted_content"]
        return Sealed(
            body["recipient_infos"],
            enc_info["content_encryption_algorithm"],
            None if isinstance(content, core.Void) else content_bytes(content),
            mac,
            aad,
        )


def locate_enveloped(data: bytes, max_size: int) -> Sealed:
    """The parts of an EnvelopedData or AuthEnvelopedData ContentInfo; ``MalformedCms``
    (``CmsTooLarge``) when it is none, or is unparsable."""
    _check_input(data, max_size)
    try:
        return _enveloped_der(data)
    except DerError:
        return _enveloped_ber(data, max_size)


# ---------------------------------------------------------------- SignedData


def _signed_der(der: bytes) -> SignedLayout:
    mv = memoryview(der)
    _, body = _content_info(mv, (_OID_SIGNED,))
    fields = children(mv, body, 6)  # RFC 5652 §5.1
    _, i = take(fields, 0, 0x02)  # version
    _, i = take(fields, i, 0x31)  # digestAlgorithms
    eci, i = take(fields, i, 0x30)  # encapContentInfo
    certs, i = take(fields, i, 0xA0, optional=True)  # certificates [0]
    _, i = take(fields, i, 0xA1, optional=True)  # crls [1]
    sis, i = take(fields, i, 0x31)  # signerInfos
    if i != len(fields) or eci is None or sis is None:
        raise DerError("unexpected element in SignedData")
    parts = children(mv, eci, 2)  # RFC 5652 §5.2 EncapsulatedContentInfo
    ctype, j = take(parts, 0, 0x06)
    wrapped, j = take(parts, j, 0xA0, optional=True)  # eContent [0] EXPLICIT
    if j != len(parts) or ctype is None:
        raise DerError("EncapsulatedContentInfo not in the expected DER form")
    content = None
    if wrapped is not None:
        octets = children(mv, wrapped, 1)  # id-data as one primitive OCTET STRING, or asn1crypto
        if (
            bytes(mv[ctype.body : ctype.end]) != _OID_DATA
            or len(octets) != 1
            or octets[0].tag != 0x04
        ):
            raise DerError("encapsulated content not a DER id-data OCTET STRING")
        content = bytes(mv[octets[0].body : octets[0].end])
    found = children(mv, certs, _MAX_ITEMS) if certs is not None else []
    if any(c.tag not in _CERTIFICATE_CHOICES for c in found):
        raise DerError("unexpected CertificateChoices")
    infos = children(mv, sis, _MAX_ITEMS)
    if any(s.tag != 0x30 for s in infos):
        raise DerError("a SignerInfo is not a SEQUENCE")
    with malformed_on_error("SignedData"):
        return SignedLayout(
            cms.ContentType.load(bytes(mv[ctype.start : ctype.end])).native,
            content,
            [bytes(mv[c.start : c.end]) for c in found if c.tag == 0x30],
            [cms.SignerInfo.load(bytes(mv[s.start : s.end])) for s in infos],
        )


def _signed_ber(der: bytes, max_size: int) -> SignedLayout | None:
    info = parse_content_info(der, max_size=max_size)
    with malformed_on_error("SignedData"):
        if info["content_type"].native != "signed_data":
            return None
        sd = info["content"]
        eci = sd["encap_content_info"]
        wrapped = eci["content"]  # RFC 5652 §5.2: absent when detached
        content = None if isinstance(wrapped, core.Void) else content_bytes(wrapped)
        certs = [c.chosen.dump() for c in sd["certificates"] or [] if c.name == "certificate"]
        return SignedLayout(eci["content_type"].native, content, certs, list(sd["signer_infos"]))


def locate_signed(der: bytes, max_size: int) -> SignedLayout | None:
    """The parts of a SignedData ContentInfo; None when the ContentInfo holds another
    type, ``MalformedCms`` (``CmsTooLarge``) when it is unparsable."""
    _check_input(der, max_size)
    try:
        return _signed_der(der)
    except DerError:
        return _signed_ber(der, max_size)


# ---------------------------------------------------------------- attributes


def _attributes_der(encoded: bytes) -> list[Attribute]:
    mv = memoryview(encoded)
    out = []
    for attr in children(mv, read_tlv(mv, 0, len(mv)), _MAX_ATTRIBUTES):
        parts = children(mv, attr, 2) if attr.tag == 0x30 else []
        if len(parts) != 2 or parts[0].tag != 0x06 or parts[1].tag != 0x31:
            raise DerError("an Attribute is not SEQUENCE { OID, SET }")
        values = children(mv, parts[1], _MAX_ATTRIBUTES)
        out.append(
            Attribute(
                oid_dotted(mv[parts[0].body : parts[0].end]),
                bytes(mv[attr.start : attr.end]),
                bytes(mv[parts[1].start : parts[1].end]),
                [bytes(mv[v.start : v.end]) for v in values],
            )
        )
    return out


def attributes(encoded: bytes) -> list[Attribute]:
    """The attributes of an encoded SET OF Attribute, whatever its outer tag (signed
    attributes travel as ``[0] IMPLICIT``); asn1crypto reads what the walker does not."""
    try:
        return _attributes_der(encoded)
    except DerError:
        pass
    with malformed_on_error("attributes"):
        parsed = cms.CMSAttributes.load(b"\x31" + encoded[1:])
        return [
            Attribute(
                a["type"].dotted, a.dump(), a["values"].dump(), [v.dump() for v in a["values"]]
            )
            for a in parsed
        ]
