"""FETCH data items: parsing the request and rendering the response (RFC 3501 §6.4.5, §7.4.2).

Pure functions over a message's metadata and, when a body section or the
ENVELOPE is asked for, its bytes (the session fetches them through the audited
backend read). BODYSTRUCTURE, BODY and the FULL macro are not served yet: they
are refused with a clear BAD instead of a wrong answer. Nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.imap.backend import MessageInfo
from gateway.imap.envelope import envelope
from gateway.imap.parser import ParseError, Token

__all__ = ["FetchItem", "format_flags", "internal_date", "parse_fetch_items", "render_fetch"]

_SIMPLE = {"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "RFC822", "RFC822.HEADER",
           "RFC822.TEXT", "ENVELOPE"}
# RFC 3501 §6.4.5 macros; FULL also needs BODY, which is not served yet.
_MACROS = {"FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
           "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]}
_NOT_YET = {"BODYSTRUCTURE", "FULL", "BODY"}
_SECTION_RE = re.compile(
    r"^(BODY|BODY\.PEEK)\[([A-Z0-9.]*)(?: \(([^()]*)\))?\](?:<(\d{1,10})\.(\d{1,10})>)?$",
    re.IGNORECASE | re.ASCII)
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass(frozen=True, slots=True)
class FetchItem:
    name: str  # UID, FLAGS, ..., or BODY for a section
    section: str = ""  # "", HEADER, TEXT, HEADER.FIELDS, HEADER.FIELDS.NOT
    fields: tuple[str, ...] = ()
    peek: bool = False
    partial: tuple[int, int] | None = None

    @property
    def needs_body(self) -> bool:
        return self.name in ("BODY", "RFC822", "RFC822.HEADER", "RFC822.TEXT", "ENVELOPE")

    @property
    def sets_seen(self) -> bool:
        return (self.name == "BODY" and not self.peek) or self.name in ("RFC822",
                                                                        "RFC822.TEXT")

    def label(self) -> str:
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
    if upper in _NOT_YET:
        raise ParseError(f"FETCH {upper} is not supported yet (try BODY.PEEK[HEADER] or ALL)")
    m = _SECTION_RE.match(text)
    if m is None:
        raise ParseError(f"unknown FETCH item {text[:40]!r}")
    section = m.group(2).upper()
    if section not in ("", "HEADER", "TEXT", "HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        raise ParseError(f"FETCH section {section[:20]!r} is not supported yet")
    fields = tuple(f.upper() for f in (m.group(3) or "").split() if f)
    if section.startswith("HEADER.FIELDS") and not fields:
        raise ParseError("HEADER.FIELDS needs a list of field names")
    partial = (int(m.group(4)), int(m.group(5))) if m.group(4) else None
    return [FetchItem("BODY", section, fields, m.group(1).upper() == "BODY.PEEK", partial)]


def parse_fetch_items(token: Token) -> list[FetchItem]:
    if isinstance(token, str):
        return _one(token)
    if isinstance(token, list) and token and all(isinstance(t, str) for t in token):
        return [item for t in token for item in _one(str(t))]
    raise ParseError("FETCH needs an item or a parenthesised list of items")


def internal_date(when: dt.datetime) -> str:
    """RFC 3501 date-time: ``"17-Jul-1996 02:44:25 -0700"``."""
    when = when.astimezone(dt.UTC)
    return f'"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year:04d} ' \
           f'{when:%H:%M:%S} +0000"'


def format_flags(flags: frozenset[str]) -> str:
    return "(" + " ".join(sorted(flags)) + ")"


def _split(body: bytes) -> tuple[bytes, bytes]:
    idx = body.find(b"\r\n\r\n")
    if idx < 0:
        return body, b""
    return body[: idx + 4], body[idx + 4 :]


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


def _section(item: FetchItem, body: bytes) -> bytes:
    header, text = _split(body)
    if item.name == "RFC822.HEADER" or item.section == "HEADER":
        data = header
    elif item.name == "RFC822.TEXT" or item.section == "TEXT":
        data = text
    elif item.section.startswith("HEADER.FIELDS"):
        data = _header_fields(header, item.fields, item.section.endswith(".NOT"))
    else:
        data = body
    if item.partial:
        start, length = item.partial
        data = data[start : start + length]
    return data


def render_fetch(
    seq: int,
    info: MessageInfo,
    items: Sequence[FetchItem],
    body: bytes | None,
    flags: frozenset[str],
) -> bytes:
    """One untagged ``* n FETCH (...)`` response, literals included."""
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
        elif item.name == "ENVELOPE":
            assert body is not None
            parts.append(b"ENVELOPE " + envelope(_split(body)[0]))
        else:
            assert body is not None
            data = _section(item, body)
            parts.append(label + b" {%d}\r\n" % len(data) + data)
    return b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"
