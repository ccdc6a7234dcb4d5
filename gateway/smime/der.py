"""A minimal, bounded DER walker over a buffer, so large CMS payloads are located, not copied.

asn1crypto slices (copies) every enclosing structure of a value it parses: a
1.4 MB encrypted content inside ContentInfo → AuthEnvelopedData →
EncryptedContentInfo is copied four or five times before it is decrypted. This
module only reads identifier and length octets and returns offsets, so the
caller can hand a ``memoryview`` of the big OCTET STRING to the cipher and give
asn1crypto just the small structures (recipient infos, algorithms, attributes).

It is deliberately strict and small: single-octet tags, definite minimal
lengths, every element inside its parent. Anything else (BER indefinite
lengths as ``openssl cms`` streams them, constructed strings, truncation,
garbage) raises ``DerError``, a ``MalformedCms``; callers that also accept BER
fall back to asn1crypto on it. It never allocates in proportion to the input
beyond a bounded list of children, and never logs content.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.smime.cms import MalformedCms

__all__ = ["DerError", "Tlv", "children", "oid_der", "oid_dotted", "read_tlv", "take"]

# Lengths beyond 4 octets (4 GiB) are never legitimate here (inputs are bounded far lower).
_MAX_LENGTH_OCTETS = 4


class DerError(MalformedCms):
    """Not plain, well-formed DER of the shape the walker accepts (BER, truncation, …)."""


@dataclass(frozen=True, slots=True)
class Tlv:
    """One element: its identifier octet and offsets into the buffer it was read from."""

    tag: int  # the identifier octet: class, constructed bit and tag number
    start: int  # offset of the identifier octet
    body: int  # offset of the first contents octet
    end: int  # offset just after the contents

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)


def read_tlv(data: bytes | memoryview, pos: int, limit: int) -> Tlv:
    """The element at ``pos``, which must end at or before ``limit`` (X.690 §8.1, §10.1)."""
    if not 0 <= pos < limit <= len(data):
        raise DerError("DER truncated: element expected")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DerError("DER tag numbers above 30 are not expected here")
    if pos + 1 >= limit:
        raise DerError("DER truncated: length expected")
    first = data[pos + 1]
    if first < 0x80:
        length, body = first, pos + 2
    elif first == 0x80:
        raise DerError("indefinite length (BER) is not DER")
    else:
        count = first & 0x7F
        if count > _MAX_LENGTH_OCTETS:
            raise DerError("DER length too long")
        body = pos + 2 + count
        if body > limit:
            raise DerError("DER truncated in a length")
        length = int.from_bytes(data[pos + 2 : body], "big")
        if data[pos + 2] == 0 or length < 0x80:  # X.690 §10.1: the shortest form only
            raise DerError("DER length not in its minimal form")
    end = body + length
    if end > limit:
        raise DerError("DER length beyond the enclosing structure")
    return Tlv(tag, pos, body, end)


def children(data: bytes | memoryview, parent: Tlv, max_count: int) -> list[Tlv]:
    """The elements inside a constructed ``parent``; more than ``max_count`` is malformed."""
    if not parent.constructed:
        raise DerError("DER primitive element where a constructed one is expected")
    out: list[Tlv] = []
    pos = parent.body
    while pos < parent.end:
        if len(out) == max_count:
            raise DerError("DER structure with too many elements")
        child = read_tlv(data, pos, parent.end)
        out.append(child)
        pos = child.end
    return out


def take(fields: list[Tlv], i: int, tag: int, optional: bool = False) -> tuple[Tlv | None, int]:
    """(fields[i], i + 1) when its identifier is ``tag``; (None, i) when it is absent and
    ``optional``: reading a SEQUENCE's components in order (X.680 §25)."""
    if i < len(fields) and fields[i].tag == tag:
        return fields[i], i + 1
    if optional:
        return None, i
    raise DerError("unexpected element in a DER SEQUENCE")


def oid_der(dotted: str) -> bytes:
    """The contents octets of an OBJECT IDENTIFIER (X.690 §8.19), to compare with raw bytes."""
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39):
        raise ValueError(f"not an OID: {dotted}")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def oid_dotted(contents: bytes | memoryview) -> str:
    """The dotted form of OBJECT IDENTIFIER contents octets (X.690 §8.19), strictly:
    no empty value, no leading 0x80 octet in an arc, no unterminated last arc."""
    if not contents:
        raise DerError("empty OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    fresh = True
    for octet in contents:
        if fresh and octet == 0x80:
            raise DerError("OBJECT IDENTIFIER arc not in its minimal form")
        value = (value << 7) | (octet & 0x7F)
        fresh = not octet & 0x80
        if fresh:
            arcs.append(value)
            value = 0
    if not fresh:
        raise DerError("OBJECT IDENTIFIER truncated")
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))
