"""FETCH data items: parsing the request and rendering the response (RFC 3501 §6.4.5, §7.4.2).

Pure functions over a message's metadata and, when a body section, the
ENVELOPE or the MIME structure is asked for, its bytes (the session fetches
them through the audited backend read). Sections may be numbered
(``BODY[2.1.MIME]``, RFC 3501 §6.4.5); anything unknown is refused with a BAD
naming it, never answered wrongly. Nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from gateway.core.ports import MessageInfo
from gateway.imap.bodystructure import body_structure, parse_mime, section_bytes, structure
from gateway.imap.parser import ParseError, Token

__all__ = ["FetchItem", "format_flags", "internal_date", "parse_fetch_items", "render_fetch"]

_T = TypeVar("_T")

_SIMPLE = {
    "UID",
    "FLAGS",
    "INTERNALDATE",
    "RFC822.SIZE",
    "RFC822",
    "RFC822.HEADER",
    "RFC822.TEXT",
    "ENVELOPE",
    "MODSEQ",
    "BODYSTRUCTURE",
}
# RFC 3501 §6.4.5 macros.
_MACROS = {
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY.STRUCT"],
}
_SECTION_RE = re.compile(
    r"^(BODY|BODY\.PEEK)\[([A-Z0-9.]*)(?: \(([^()]*)\))?\](?:<(\d{1,10})\.(\d{1,10})>)?$",
    re.IGNORECASE | re.ASCII,
)
# section = [part-path] ["." spec] | spec (RFC 3501 §9 section-spec)
_PATH_RE = re.compile(
    r"^((?:[1-9][0-9]{0,4}\.){0,15}[1-9][0-9]{0,4})?\.?(|HEADER|TEXT|MIME|HEADER\.FIELDS|"
    r"HEADER\.FIELDS\.NOT)$",
    re.ASCII,
)
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass(frozen=True, slots=True)
class FetchItem:
    name: str  # UID, FLAGS, ..., or BODY for a section
    section: str = ""  # as written: "", "HEADER", "1.2.MIME", "HEADER.FIELDS"...
    fields: tuple[str, ...] = ()
    peek: bool = False
    partial: tuple[int, int] | None = None
    path: tuple[int, ...] = ()  # the part numbers of ``section``
    spec: str = ""  # its text part: "", HEADER, TEXT, MIME, HEADER.FIELDS[.NOT]

    @property
    def needs_body(self) -> bool:
        return self.name in ("BODY", "RFC822", "RFC822.HEADER", "RFC822.TEXT", "BODY.STRUCT")

    @property
    def needs_structure(self) -> bool:
        """ENVELOPE and BODYSTRUCTURE come from the stored structure, not the body."""
        return self.name in ("ENVELOPE", "BODYSTRUCTURE")

    @property
    def sets_seen(self) -> bool:
        return (self.name == "BODY" and not self.peek) or self.name in ("RFC822", "RFC822.TEXT")

    def label(self) -> str:
        if self.name == "BODY.STRUCT":
            return "BODY"
        if self.name != "BODY":
            return self.name
        fields = f" ({' '.join(self.fields)})" if self.fields else ""
        origin = f"<{self.partial[0]}>" if self.partial else ""
        return f"BODY[{self.section}{fields}]{origin}"


def _one(text: str) -> list[FetchItem]:
    upper = text.upper()
    if upper in _SIMPLE:
        return [FetchItem(upper)]
    if upper in _MACROS:
        return [FetchItem(n) for n in _MACROS[upper]]
    if upper == "BODY":  # RFC 3501 §6.4.5: BODYSTRUCTURE without extension data
        return [FetchItem("BODY.STRUCT")]
    m = _SECTION_RE.match(text)
    if m is None:
        raise ParseError(f"unknown FETCH item {text[:40]!r}")
    section = m.group(2).upper()
    parsed = _PATH_RE.match(section)
    if parsed is None or (parsed.group(2) == "MIME" and not parsed.group(1)):
        raise ParseError(f"invalid FETCH section {section[:20]!r}")
    path = tuple(int(n) for n in parsed.group(1).split(".")) if parsed.group(1) else ()
    spec = parsed.group(2)
    fields = tuple(f.upper() for f in (m.group(3) or "").split() if f)
    if spec.startswith("HEADER.FIELDS") != bool(fields):
        raise ParseError("HEADER.FIELDS needs a list of field names (and only it takes one)")
    partial = (int(m.group(4)), int(m.group(5))) if m.group(4) else None
    return [
        FetchItem("BODY", section, fields, m.group(1).upper() == "BODY.PEEK", partial, path, spec)
    ]


def parse_fetch_items(token: Token) -> list[FetchItem]:
    if isinstance(token, str):
        return _one(token)
    if isinstance(token, list) and token and all(isinstance(t, str) for t in token):
        return [item for t in token for item in _one(str(t))]
    raise ParseError("FETCH needs an item or a parenthesised list of items")


def internal_date(when: dt.datetime) -> str:
    """RFC 3501 date-time: ``"17-Jul-1996 02:44:25 -0700"``."""
    when = when.astimezone(dt.UTC)
    return f'"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year:04d} {when:%H:%M:%S} +0000"'


def format_flags(flags: frozenset[str]) -> str:
    return "(" + " ".join(sorted(flags)) + ")"


def _split(body: bytes) -> tuple[bytes, bytes]:
    idx = body.find(b"\r\n\r\n")
    if idx < 0:
        return body, b""
    return body[: idx + 4], body[idx + 4 :]


def _section(item: FetchItem, body: bytes) -> bytes:
    if item.name == "RFC822.HEADER":
        data = _split(body)[0]
    elif item.name == "RFC822.TEXT":
        data = _split(body)[1]
    elif item.name == "RFC822":
        data = body
    else:
        data = section_bytes(body, item.path, item.spec, item.fields)
    if item.partial:
        start, length = item.partial
        data = data[start : start + length]
    return data


def _fetched(value: _T | None, item: FetchItem) -> _T:
    # render_fetch's contract: the caller read what the items need (needs_body,
    # needs_structure). Missing means a bug in the caller, answered as one (SERVERBUG).
    if value is None:
        raise RuntimeError(f"FETCH {item.name} rendered without the data it needs")
    return value


def render_fetch(
    seq: int,
    info: MessageInfo,
    items: Sequence[FetchItem],
    body: bytes | None,
    flags: frozenset[str],
    stored: tuple[bytes, bytes] | None = None,
) -> bytes:
    """One untagged ``* n FETCH (...)`` response, literals included.

    ``stored`` is the (ENVELOPE, BODYSTRUCTURE) pair kept by the backend; without
    it they are computed from ``body``.
    """
    if stored is None and body is not None and any(i.needs_structure for i in items):
        stored = structure(body)
    parts: list[bytes] = []
    for item in items:
        label = item.label().encode()
        if item.name == "UID":
            parts.append(b"UID %d" % info.uid)
        elif item.name == "FLAGS":
            parts.append(b"FLAGS " + format_flags(flags).encode())
        elif item.name == "INTERNALDATE":
            parts.append(b"INTERNALDATE " + internal_date(info.internal_date).encode())
        elif item.name == "RFC822.SIZE":
            parts.append(b"RFC822.SIZE %d" % info.size)
        elif item.name == "MODSEQ":  # RFC 7162 §3.1.4.1
            parts.append(b"MODSEQ (%d)" % info.modseq)
        elif item.name == "ENVELOPE":
            parts.append(b"ENVELOPE " + _fetched(stored, item)[0])
        elif item.name == "BODYSTRUCTURE":
            parts.append(b"BODYSTRUCTURE " + _fetched(stored, item)[1])
        elif item.name == "BODY.STRUCT":
            parts.append(
                b"BODY " + body_structure(parse_mime(_fetched(body, item)), extensible=False)
            )
        else:
            data = _section(item, _fetched(body, item))
            parts.append(label + b" {%d}\r\n" % len(data) + data)
    return b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"
