"""CMS groundwork shared by signing, verifying and (de)enveloping: errors, bounded parsing,
algorithm tables and the DER rules of RFC 5652.

This module owns the S/MIME exception classes, the size bound on untrusted
input, the translation of every asn1crypto parsing failure into
``MalformedCms``, the digest/signature algorithm tables pli accepts, and the
canonical forms (CRLF text, DER SET OF) that signatures are computed over. It
must never let a third-party exception escape on untrusted bytes, never accept
a digest weaker than SHA-256, and never log or keep content or keys.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from typing import Any

from asn1crypto import algos, cms, core
from cryptography.hazmat.primitives import hashes

from gateway.base.errors import Refused

__all__ = [
    "DEFAULT_MAX_SIZE",
    "MICALG",
    "CmsTooLarge",
    "DecryptionFailed",
    "GcmParameters",
    "MalformedCms",
    "NotForUs",
    "SmimeError",
    "UnsupportedCms",
    "base64_lines",
    "canonicalize",
    "content_bytes",
    "der_length",
    "digest_algorithm",
    "hash_by_name",
    "hash_for",
    "malformed_on_error",
    "parse_content_info",
    "signed_attrs_der",
]

# Untrusted CMS bigger than this is refused before parsing (override per call).
DEFAULT_MAX_SIZE = 64 * 1024 * 1024

# RFC 8551 §2.1: SHA-256 MUST, SHA-512 SHOULD; SHA-1 and MD5 are refused (weak).
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
MICALG = {"sha256": "sha-256", "sha384": "sha-384", "sha512": "sha-512"}  # RFC 8551 §3.5.3.2

# What asn1crypto raises on malformed input, lazily, whenever a field is first read.
_PARSE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    UnicodeError,
    RecursionError,
    AttributeError,
    NotImplementedError,
)


class SmimeError(Refused):
    """Base of the S/MIME errors: permanent (SMTP answers 554 5.7.5, a cryptographic
    failure in RFC 3463 terms; see ``gateway.smtp.replies``)."""

    default_reason = "smime"

    def __init__(self, text: str) -> None:
        super().__init__(text)


class MalformedCms(SmimeError):
    """The bytes are not a well-formed CMS structure of the expected kind."""

    default_reason = "smime-malformed"


class UnsupportedCms(SmimeError):
    """Well-formed, but uses an algorithm or feature pli does not accept (weak or unknown)."""

    default_reason = "smime-unsupported"


class CmsTooLarge(MalformedCms):
    """Refused before parsing: bigger than the configured bound."""

    default_reason = "smime-too-large"


class NotForUs(SmimeError):
    """Enveloped, but no recipient info names the certificate we hold the key of."""

    default_reason = "smime-not-for-us"


class DecryptionFailed(SmimeError):
    """A recipient info is ours but the key, the tag or the padding does not check out.

    Deliberately one class with one text for every cause (RFC 3218: no padding oracle).
    """

    default_reason = "smime-decryption-failed"


class GcmParameters(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """RFC 5084 §3.2: GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING,
    aes-ICVlen INTEGER DEFAULT 12 } (asn1crypto has the CCM twin only)."""

    _fields = [  # noqa: RUF012  # asn1crypto's declarative class attribute
        ("aes_nonce", core.OctetString),
        ("aes_icvlen", core.Integer, {"default": 12}),
    ]


@contextlib.contextmanager
def malformed_on_error(what: str) -> Iterator[None]:
    """Turn whatever asn1crypto raises while reading ``what`` into ``MalformedCms``."""
    try:
        yield
    except SmimeError:
        raise
    except _PARSE_ERRORS as exc:
        raise MalformedCms(f"malformed {what}") from exc


def parse_content_info(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Any:
    """A ``cms.ContentInfo`` from DER/BER bytes, bounded and with its outer layer checked.

    RFC 5652 §3: ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content }.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedCms("CMS input must be bytes")
    if len(data) > max_size:
        raise CmsTooLarge(f"CMS structure larger than {max_size} bytes")
    if len(data) < 2 or data[0] != 0x30:
        raise MalformedCms("not a DER/BER CMS ContentInfo")
    with malformed_on_error("ContentInfo"):
        info = cms.ContentInfo.load(bytes(data))
        _ = info["content_type"].native
        _ = info["content"]
    return info


def content_bytes(value: Any) -> bytes:
    """An OCTET STRING's value, BER constructed chunks merged (``openssl cms`` streams)."""
    raw = value.native
    if not isinstance(raw, bytes):
        raise MalformedCms("expected an OCTET STRING")
    return raw


def _digest_ders() -> dict[bytes, str]:
    """The usual DER of each accepted DigestAlgorithm: parameters absent (RFC 5754 §2) or
    NULL (as some agents write), so the common case is a lookup, not a parse."""
    out = {}
    for name in _HASHES:
        oid = algos.DigestAlgorithmId(name).dump()
        for body in (oid, oid + b"\x05\x00"):
            out[b"\x30" + der_length(len(body)) + body] = name
    return out


def hash_for(algorithm: Any) -> hashes.HashAlgorithm:
    """The cryptography hash for a DigestAlgorithm; weak or unknown ones are refused."""
    with malformed_on_error("digest algorithm"):
        name = _DIGEST_DERS.get(algorithm.dump()) or algorithm["algorithm"].native
    return hash_by_name(name)


def hash_by_name(name: str) -> hashes.HashAlgorithm:
    """``sha256`` → SHA256(); weak or unknown names are refused (RFC 8551 §2.1)."""
    cls = _HASHES.get(name)
    if cls is None:
        raise UnsupportedCms(f"digest algorithm {name} is not accepted")
    return cls()


def digest_algorithm(name: str) -> Any:
    """A DigestAlgorithm value (``sha256`` …) with absent parameters (RFC 5754 §2)."""
    if name not in _HASHES:
        raise ValueError(f"unsupported digest {name}")
    return algos.DigestAlgorithm({"algorithm": name})


def der_length(n: int) -> bytes:
    """An X.690 §8.1.3 definite length."""
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


_DIGEST_DERS = _digest_ders()  # after der_length, which it uses


def signed_attrs_der(attrs: list[bytes]) -> bytes:
    """The bytes a signature over signed attributes covers, from each attribute's DER.

    RFC 5652 §5.4: the DER encoding of the SET OF Attributes: the universal SET
    tag 0x31 (not the ``[0] IMPLICIT`` tag it travels with) and, X.690 §11.6,
    the elements sorted by their encodings.
    """
    body = b"".join(sorted(attrs))
    return b"\x31" + der_length(len(body)) + body


def canonicalize(data: bytes) -> bytes:
    """Line ends as CRLF, the canonical form S/MIME signs and envelopes (RFC 8551 §3.1.1).

    Existing CRLF pairs stay; a lone LF becomes CRLF; a lone CR is left alone
    (it is not a line end in MIME, and changing it would break a binary part).
    """
    if b"\n" not in data:
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def base64_lines(data: bytes) -> bytes:
    """Base64 in 76-character CRLF lines (RFC 2045 §6.8)."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")
