"""Recognising S/MIME in inbound MIME entities and taking them apart, byte-exact.

This module owns the detection of ``multipart/signed`` (RFC 1847, RFC 8551
§3.5.3) and ``application/pkcs7-mime`` (signed-data, enveloped-data,
authEnveloped-data; RFC 8551 §3.2) and the extraction of the signed first part
exactly as it was transmitted (the email package would re-serialise it and
break the signature) and of the base64 CMS payloads. It is a pure parser:
bytes in, a typed value or ``MalformedCms`` out. It must never decode a body
it was not asked for, never accept more than the size bound, and never log
content.
"""

from __future__ import annotations

import binascii
import email.parser
import email.policy
import email.utils
import enum
import re
from dataclasses import dataclass
from email.message import Message

from gateway.smime.cms import DEFAULT_MAX_SIZE, CmsTooLarge, MalformedCms, parse_content_info

__all__ = [
    "SignedParts",
    "SmimeKind",
    "classify",
    "open_signed",
    "pkcs7_mime_payload",
    "split_head",
    "split_signed",
]

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_PKCS7_MIME = ("application/pkcs7-mime", "application/x-pkcs7-mime")
_PKCS7_SIGNATURE = ("application/pkcs7-signature", "application/x-pkcs7-signature")
_MAX_HEADER = 64 * 1024


class SmimeKind(enum.Enum):
    """What an entity is, as far as S/MIME goes."""

    NONE = "none"  # not S/MIME at the top level
    MULTIPART_SIGNED = "multipart/signed"  # clear-signed: content + detached signature
    SIGNED_DATA = "signed-data"  # opaque signed: content inside the CMS
    ENVELOPED = "enveloped-data"
    AUTH_ENVELOPED = "authEnveloped-data"
    COMPRESSED = "compressed-data"  # RFC 3274; recognised, not supported


@dataclass(frozen=True, slots=True)
class SignedParts:
    """The two parts of a multipart/signed: the first exactly as transmitted, the
    signature as DER, and the micalg the sender announced (informative only)."""

    content: bytes
    signature: bytes
    micalg: str


def _head(entity: bytes) -> tuple[Message, int]:
    """The parsed header fields of a MIME entity and the offset where its body starts
    (an offset, not a slice: S/MIME bodies are megabytes and need not be copied)."""
    if entity.startswith((b"\r\n", b"\n")):
        head, at = b"", 2 if entity.startswith(b"\r\n") else 1
    else:
        m = _BLANK_LINE.search(entity, 0, _MAX_HEADER)
        if m is None:
            if len(entity) > _MAX_HEADER:
                raise MalformedCms("MIME header section too long")
            head, at = entity, len(entity)
        else:
            head, at = entity[: m.start()], m.end()
    return email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head), at


def split_head(entity: bytes) -> tuple[Message, bytes]:
    """The parsed header fields of a MIME entity and its raw body."""
    msg, at = _head(entity)
    return msg, entity[at:]


def _decode(msg: Message, body: bytes | memoryview, max_size: int) -> bytes:
    """The CMS bytes of a part body; base64 is decoded in one C call over a view of the
    entity (no per-line work, no copy of the encoded text)."""
    if len(body) > max_size * 4 // 3 + 4096:
        raise CmsTooLarge(f"S/MIME part larger than {max_size} bytes")
    cte = str(msg.get("Content-Transfer-Encoding", "")).strip().lower()
    if cte in ("binary", "8bit", "7bit"):
        return bytes(body)
    if cte not in ("base64", ""):
        raise MalformedCms(f"unexpected transfer encoding {cte!r} for CMS")
    if cte == "" and body[:1] == b"\x30":  # no header at all: some agents send raw DER
        return bytes(body)
    try:
        return binascii.a2b_base64(body)
    except (binascii.Error, ValueError) as exc:
        raise MalformedCms("invalid base64 in S/MIME part") from exc


def _params(msg: Message) -> dict[str, str]:
    """The Content-Type parameters by lower-case name, the first of a name winning as with
    ``Message.get_param``; parsed once per header, not once per parameter."""
    out: dict[str, str] = {}
    for name, value in msg.get_params([], header="content-type"):
        if isinstance(value, tuple):  # RFC 2231 encoded
            value = email.utils.collapse_rfc2231_value(value)
        out.setdefault(name.lower(), str(value))
    return out


def classify(entity: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> SmimeKind:
    """The S/MIME kind of a MIME entity (a whole message or a part).

    For ``application/pkcs7-mime`` the smime-type parameter decides (RFC 8551
    §3.2.2); when it is missing, the CMS content type inside does.
    """
    msg, at = _head(entity)
    return _classify(msg, _params(msg), entity, at, max_size)


def open_signed(
    entity: bytes,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
) -> tuple[SmimeKind, SignedParts | None]:
    """``classify`` and, for a multipart/signed, ``split_signed``, reading the header once."""
    msg, at = _head(entity)
    params = _params(msg)
    kind = _classify(msg, params, entity, at, max_size)
    if kind is not SmimeKind.MULTIPART_SIGNED:
        return kind, None
    return kind, _split_signed(msg, params, entity, at, max_size)


def _classify(
    msg: Message, params: dict[str, str], entity: bytes, at: int, max_size: int
) -> SmimeKind:
    ctype = msg.get_content_type()
    if ctype == "multipart/signed":
        protocol = params.get("protocol", "").lower()
        return SmimeKind.MULTIPART_SIGNED if protocol in _PKCS7_SIGNATURE else SmimeKind.NONE
    if ctype not in _PKCS7_MIME:
        return SmimeKind.NONE
    smime_type = params.get("smime-type", "").lower()
    for kind in (
        SmimeKind.SIGNED_DATA,
        SmimeKind.ENVELOPED,
        SmimeKind.AUTH_ENVELOPED,
        SmimeKind.COMPRESSED,
    ):
        if smime_type == kind.value.lower():
            return kind
    info = parse_content_info(_decode(msg, memoryview(entity)[at:], max_size), max_size=max_size)
    inner = {
        "signed_data": SmimeKind.SIGNED_DATA,
        "enveloped_data": SmimeKind.ENVELOPED,
        "authenticated_enveloped_data": SmimeKind.AUTH_ENVELOPED,
        "compressed_data": SmimeKind.COMPRESSED,
    }.get(info["content_type"].native)
    if inner is None:
        raise MalformedCms("application/pkcs7-mime with an unexpected CMS content type")
    return inner


def pkcs7_mime_payload(entity: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
    """The DER inside an ``application/pkcs7-mime`` entity (base64 or binary)."""
    msg, at = _head(entity)
    if msg.get_content_type() not in _PKCS7_MIME:
        raise MalformedCms("not an application/pkcs7-mime entity")
    return _decode(msg, memoryview(entity)[at:], max_size)


_DELIMITER_TAIL = re.compile(rb"(?:--)?[ \t]*(?:\r?\n|$)")


def _line_end(data: bytes, pos: int) -> int:
    end = data.find(b"\n", pos)
    if end < 0:
        raise MalformedCms("multipart/signed: unterminated boundary line")
    return end + 1


def _is_delimiter(data: bytes, delim: bytes, at: int) -> bool:
    """Whether the line at ``at`` is a delimiter: RFC 2046 §5.1.1 allows only ``--`` (the
    close delimiter) and transport padding after the boundary; a content line that
    merely starts with it (``--boundaryXYZ``) is content."""
    return data.startswith(delim, at) and _DELIMITER_TAIL.match(data, at + len(delim)) is not None


def _find_delimiter(data: bytes, delim: bytes, pos: int) -> int:
    """Offset of the newline before the next delimiter line at or after ``pos``, or -1."""
    while (at := data.find(b"\n" + delim, pos)) >= 0:
        if _is_delimiter(data, delim, at + 1):
            return at
        pos = at + 1
    return -1


def _next_delimiter(data: bytes, delim: bytes, start: int, base: int) -> tuple[int, int]:
    """(end of the preceding part, start of the delimiter line), searching from ``start``
    in a body that begins at ``base`` — RFC 2046 §5.1.1: the CRLF before ``--boundary``
    belongs to the delimiter, not to the part."""
    at = _find_delimiter(data, delim, start - 1 if start > base else base)
    if at < 0:
        raise MalformedCms("multipart/signed: missing boundary")
    end = at - 1 if at > start and data[at - 1 : at] == b"\r" else at
    return max(end, start), at + 1


def split_signed(entity: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> SignedParts:
    """The signed content (byte-exact), the DER signature and micalg of a multipart/signed.

    Offsets into ``entity`` throughout: the signed content is copied once, into the result.
    """
    msg, base = _head(entity)
    return _split_signed(msg, _params(msg), entity, base, max_size)


def _split_signed(
    msg: Message, params: dict[str, str], entity: bytes, base: int, max_size: int
) -> SignedParts:
    if msg.get_content_type() != "multipart/signed":
        raise MalformedCms("not a multipart/signed entity")
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 70:  # RFC 2046 §5.1.1: 1..70 characters
        raise MalformedCms("multipart/signed without a valid boundary")
    delim = b"--" + boundary.encode("ascii", "replace")
    if _is_delimiter(entity, delim, base):
        first = base
    else:
        first = _find_delimiter(entity, delim, base) + 1
        if first == 0:
            raise MalformedCms("multipart/signed: no first part")
    start = _line_end(entity, first)
    content_end, second = _next_delimiter(entity, delim, start, base)
    if entity[second + len(delim) : second + len(delim) + 2] == b"--":
        raise MalformedCms("multipart/signed: signature part missing")
    sig_start = _line_end(entity, second)
    sig_end, close = _next_delimiter(entity, delim, sig_start, base)
    if entity[close + len(delim) : close + len(delim) + 2] != b"--":
        raise MalformedCms("multipart/signed must have exactly two parts")
    sig_msg, sig_body = split_head(entity[sig_start:sig_end])
    if sig_msg.get_content_type() not in _PKCS7_SIGNATURE:
        raise MalformedCms("multipart/signed: second part is not application/pkcs7-signature")
    return SignedParts(
        content=entity[start:content_end],
        signature=_decode(sig_msg, sig_body, max_size),
        micalg=params.get("micalg", "").lower(),
    )
