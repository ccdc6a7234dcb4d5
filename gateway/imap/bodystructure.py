"""MIME structure for IMAP: BODY/BODYSTRUCTURE (RFC 3501 §7.4.2) and numbered sections
(§6.4.5 ``BODY[1.2.MIME]``), from a message's raw bytes.

Pure: the message is split along its boundaries without decoding anything, so
a section is exactly the bytes the sender wrote and sizes are octet-exact.
Nesting and part counts are bounded (a MIME bomb yields a flat, truncated
tree, never a deep recursion); every string goes out through ``quote`` so no
byte of a message can break the response framing. It never logs content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from gateway.imap.envelope import envelope
from gateway.imap.responses import quote

__all__ = ["Part", "body_structure", "parse_mime", "section_bytes", "structure"]

_MAX_DEPTH = 16
_MAX_PARTS = 500
_NIL = b"NIL"


@dataclass
class Part:
    header: bytes  # the header block, with its blank line
    body: bytes
    main: str
    sub: str
    head: Message
    children: list[Part] = field(default_factory=list)
    message: Part | None = None  # the encapsulated message of a message/rfc822 part


def _split_head(raw: bytes) -> tuple[bytes, bytes]:
    if raw.startswith(b"\r\n"):
        return b"\r\n", raw[2:]
    idx = raw.find(b"\r\n\r\n")
    return (raw, b"") if idx < 0 else (raw[: idx + 4], raw[idx + 4 :])


def parse_mime(
    raw: bytes,
    default: tuple[str, str] = ("text", "plain"),
    depth: int = 0,
    budget: list[int] | None = None,
) -> Part:
    """The part tree of ``raw`` (a message or a body part)."""
    budget = budget if budget is not None else [_MAX_PARTS]
    header, body = _split_head(raw)
    head = BytesHeaderParser(policy=compat32).parsebytes(header)
    ctype = head.get("Content-Type")
    main, sub = default
    if ctype is not None:
        full = head.get_content_type()  # falls back to text/plain when malformed
        main, _, sub = full.partition("/")
    part = Part(header, body, main.lower(), sub.lower(), head)
    if depth >= _MAX_DEPTH or budget[0] <= 0:
        return part
    budget[0] -= 1
    boundary = head.get_boundary() if part.main == "multipart" else None
    if boundary:
        child_default = ("message", "rfc822") if part.sub == "digest" else ("text", "plain")
        for chunk in _split_multipart(body, boundary.encode("latin-1", "replace")):
            if budget[0] <= 0:
                break
            part.children.append(parse_mime(chunk, child_default, depth + 1, budget))
    elif part.main == "message" and part.sub == "rfc822":
        part.message = parse_mime(body, ("text", "plain"), depth + 1, budget)
    return part


def _split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    # RFC 2046 §5.1.1: the CRLF before a delimiter belongs to the delimiter.
    delim = re.compile(rb"(?:\A|\r\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r\n|\Z)")
    parts: list[bytes] = []
    start: int | None = None
    for m in delim.finditer(body):
        if start is not None:
            parts.append(body[start : m.start()])
        if m.group(1):
            return parts
        start = m.end()
        if len(parts) >= _MAX_PARTS:
            break
    if start is not None and start < len(body):  # no close delimiter: keep what is there
        parts.append(body[start:])
    return parts


def _s(value: str | None) -> bytes:
    return _NIL if value is None else quote(value.encode("latin-1", "replace"))


def _params(head: Message, name: str) -> bytes:
    params = head.get_params(header=name)
    if not params or len(params) < 2:
        return _NIL
    out: list[bytes] = []
    for key, value in params[1:]:
        text = value if isinstance(value, str) else str(value[2])
        out += [_s(key.upper()), _s(text)]
    return b"(" + b" ".join(out) + b")"


def _disposition(head: Message) -> bytes:
    value = head.get("Content-Disposition")
    if value is None:
        return _NIL
    kind = str(value).split(";", 1)[0].strip()
    return (
        b"(" + _s(kind.upper() or "ATTACHMENT") + b" " + _params(head, "content-disposition") + b")"
    )


def _field(head: Message, name: str) -> bytes:
    value = head.get(name)
    return _s(" ".join(str(value).split())) if value is not None else _NIL


def body_structure(part: Part, extensible: bool = True) -> bytes:
    """``BODYSTRUCTURE`` (or, with ``extensible`` False, ``BODY``) of a part tree."""
    h = part.head
    if part.children:
        inner = b"".join(body_structure(c, extensible) for c in part.children)
        out = inner + b" " + _s(part.sub.upper())
        if extensible:
            out += b" " + b" ".join(
                [
                    _params(h, "content-type"),
                    _disposition(h),
                    _field(h, "Content-Language"),
                    _field(h, "Content-Location"),
                ]
            )
        return b"(" + out + b")"
    if part.main == "multipart":  # a multipart without parts: show it as empty text
        return b'("TEXT" "PLAIN" NIL NIL NIL "7BIT" 0 0)'
    params = _params(h, "content-type")
    if params == _NIL and part.main == "text":
        params = b'("CHARSET" "US-ASCII")'
    encoding = str(h.get("Content-Transfer-Encoding", "7BIT")).strip().upper() or "7BIT"
    fields = [
        _s(part.main.upper()),
        _s(part.sub.upper()),
        params,
        _field(h, "Content-ID"),
        _field(h, "Content-Description"),
        _s(encoding),
        b"%d" % len(part.body),
    ]
    lines = b"%d" % (
        part.body.count(b"\n") + (0 if part.body.endswith(b"\n") or not part.body else 1)
    )
    if part.message is not None:
        fields += [envelope(part.message.header), body_structure(part.message, extensible), lines]
    elif part.main == "text":
        fields.append(lines)
    if extensible:
        fields += [
            _field(h, "Content-MD5"),
            _disposition(h),
            _field(h, "Content-Language"),
            _field(h, "Content-Location"),
        ]
    return b"(" + b" ".join(fields) + b")"


def _header_fields(header: bytes, names: tuple[str, ...], negate: bool) -> bytes:
    wanted = {n.encode().lower() for n in names}
    out: list[bytes] = []
    keep = False
    for line in header.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):  # folded continuation of the previous field
            if keep:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        keep = (name in wanted) != negate
        if keep:
            out.append(line)
    return b"\r\n".join(out) + (b"\r\n" if out else b"") + b"\r\n"


def section_bytes(
    message: bytes, path: tuple[int, ...], spec: str, fields: tuple[str, ...] = ()
) -> bytes:
    """The octets of ``BODY[<path>.<spec>]`` (RFC 3501 §6.4.5); missing parts are empty."""
    if not path and spec in ("", "HEADER", "TEXT") and not fields:
        header, text = _split_head(message)
        return message if spec == "" else header if spec == "HEADER" else text
    part: Part | None = parse_mime(message)
    for n in path:
        if part is None:
            return b""
        if part.children:
            part = part.children[n - 1] if n <= len(part.children) else None
        elif part.message is not None:
            inner = part.message
            part = (
                (inner.children[n - 1] if n <= len(inner.children) else None)
                if inner.children
                else (inner if n == 1 else None)
            )
        elif n != 1:
            part = None
    if part is None:
        return b""
    if spec == "MIME":
        return part.header if path else b""
    if spec == "" and path:
        return part.body
    target = part if not path else part.message
    if target is None:
        return b""
    if spec == "TEXT":
        return target.body
    if spec == "HEADER":
        return target.header
    if spec.startswith("HEADER.FIELDS"):
        return _header_fields(target.header, fields, spec.endswith(".NOT"))
    return target.header + target.body


def structure(message: bytes) -> tuple[bytes, bytes]:
    """(ENVELOPE, BODYSTRUCTURE) of a message: what the mailstore computes once and keeps."""
    return envelope(_split_head(message)[0]), body_structure(parse_mime(message))
