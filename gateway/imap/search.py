"""SEARCH keys (RFC 3501 §6.4.4, RFC 7162 §3.1.5 MODSEQ): parsing into a tree, and matching.

Pure: tokens in, a :class:`Key` tree or a :class:`ParseError` out; matching a
message takes its metadata and, only when a key looks at content, its bytes
(the session fetches them through the audited backend read). String keys
match case-insensitively on the raw and the RFC 2047-decoded header value.
Nothing here does I/O or logs what it compares.
"""

from __future__ import annotations

import datetime as dt
import email.header
import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.core.ports import MessageInfo
from gateway.imap.parser import ParseError, Token, parse_sequence_set

__all__ = ["Key", "Target", "matches", "needs_content", "parse_search"]

_MONTHS = {
    m: i
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
    )
}
_DATE = re.compile(r"^(\d{1,2})-([A-Za-z]{3})-(\d{4})$", re.ASCII)
_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
    "OLD": ("\\Recent", False),
}
_HEADER_KEYS = {"BCC", "CC", "FROM", "SUBJECT", "TO"}
_DATE_KEYS = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}
_MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class Key:
    """One search key; ``op`` is its name, ``args`` its operands (sub-keys for AND/OR/NOT)."""

    op: str
    args: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True)
class Target:
    """What a key is matched against: one message of the session's view."""

    seq: int
    info: MessageInfo
    largest_seq: int
    largest_uid: int


def _date(tok: Token) -> dt.date:
    text = tok.decode("ascii", "replace") if isinstance(tok, bytes) else tok
    m = _DATE.match(text) if isinstance(text, str) else None
    if m is None or m.group(2).upper() not in _MONTHS:
        raise ParseError("SEARCH date must look like 1-Feb-1994")
    try:
        return dt.date(int(m.group(3)), _MONTHS[m.group(2).upper()], int(m.group(1)))
    except ValueError:
        raise ParseError("SEARCH date does not exist") from None


def _text(tok: Token, what: str) -> str:
    if isinstance(tok, bytes):
        return tok.decode("utf-8", "replace")
    if isinstance(tok, str):
        return tok
    raise ParseError(f"SEARCH {what} needs a string")


def _number(tok: Token, what: str) -> int:
    if not isinstance(tok, str) or not tok.isdigit() or len(tok) > 20:
        raise ParseError(f"SEARCH {what} needs a number")
    return int(tok)


def parse_search(tokens: Sequence[Token]) -> tuple[Key, str | None]:
    """The key tree (an implicit AND of the top-level keys) and the CHARSET if given."""
    toks = list(tokens)
    charset = None
    if toks and isinstance(toks[0], str) and toks[0].upper() == "CHARSET":
        if len(toks) < 2:
            raise ParseError("SEARCH CHARSET needs a name")
        charset = _text(toks[1], "CHARSET").upper()
        toks = toks[2:]
    if not toks:
        raise ParseError("SEARCH needs at least one key")
    pos = 0
    keys: list[Key] = []
    while pos < len(toks):
        key, pos = _key(toks, pos, 0)
        keys.append(key)
    return (keys[0] if len(keys) == 1 else Key("AND", tuple(keys))), charset


def _key(toks: list[Token], pos: int, depth: int) -> tuple[Key, int]:
    if depth > _MAX_DEPTH:
        raise ParseError("SEARCH keys nested too deeply")
    tok = toks[pos]

    def arg(n: int = 1) -> Token:
        if pos + n >= len(toks):
            raise ParseError(f"SEARCH {str(tok)[:20]} is missing an argument")
        return toks[pos + n]

    if isinstance(tok, list):
        if not tok:
            raise ParseError("empty SEARCH parenthesis")
        inner, sub = [], 0
        while sub < len(tok):
            k, sub = _key(tok, sub, depth + 1)
            inner.append(k)
        return Key("AND", tuple(inner)), pos + 1
    if not isinstance(tok, str):
        raise ParseError("SEARCH key must be an atom")
    name = tok.upper()
    if name == "ALL" or name in ("NEW", "RECENT"):
        return Key("NONE" if name != "ALL" else "ALL"), pos + 1  # pli keeps no \Recent
    if name in _FLAG_KEYS:
        flag, present = _FLAG_KEYS[name]
        return Key("FLAG", (flag, present)), pos + 1
    if name in ("KEYWORD", "UNKEYWORD"):
        return Key("FLAG", (_text(arg(), name), name == "KEYWORD")), pos + 2
    if name in _HEADER_KEYS:
        return Key("HEADER", (name, _text(arg(), name))), pos + 2
    if name == "HEADER":
        return Key("HEADER", (_text(arg(1), "HEADER").upper(), _text(arg(2), "HEADER"))), pos + 3
    if name in ("BODY", "TEXT"):
        return Key(name, (_text(arg(), name),)), pos + 2
    if name in _DATE_KEYS:
        return Key(name, (_date(arg()),)), pos + 2
    if name in ("LARGER", "SMALLER"):
        return Key(name, (_number(arg(), name),)), pos + 2
    if name == "MODSEQ":  # RFC 7162 §3.1.5: optional entry name and type, then the value
        nxt = arg()
        if isinstance(nxt, str) and nxt.isdigit():
            return Key("MODSEQ", (_number(nxt, name),)), pos + 2
        arg(2)
        return Key("MODSEQ", (_number(arg(3), name),)), pos + 4
    if name == "UID":
        set_text = _text(arg(), "UID")
        parse_sequence_set(set_text, 1)  # syntax check now; '*' is resolved per message
        return Key("UID", (set_text,)), pos + 2
    if name == "NOT":
        if pos + 1 >= len(toks):
            raise ParseError("SEARCH NOT needs a key")
        negated, end = _key(toks, pos + 1, depth + 1)
        return Key("NOT", (negated,)), end
    if name == "OR":
        if pos + 1 >= len(toks):
            raise ParseError("SEARCH OR needs two keys")
        a, end = _key(toks, pos + 1, depth + 1)
        if end >= len(toks):
            raise ParseError("SEARCH OR needs two keys")
        b, end = _key(toks, end, depth + 1)
        return Key("OR", (a, b)), end
    if name[:1].isdigit() or name[:1] == "*":
        parse_sequence_set(name, 1)
        return Key("SEQ", (name,)), pos + 1
    raise ParseError(f"unknown SEARCH key {name[:20]!r}")


def needs_content(key: Key) -> bool:
    """Whether matching ``key`` reads the message itself (an audited body read)."""
    if key.op in ("HEADER", "BODY", "TEXT", "SENTBEFORE", "SENTON", "SENTSINCE"):
        return True
    return any(isinstance(a, Key) and needs_content(a) for a in key.args)


def _in_set(text: str, value: int, largest: int) -> bool:
    return any(lo <= value <= hi for lo, hi in parse_sequence_set(text, largest))


def _unfold_all(head: str, name: str) -> list[str]:
    values: list[str] = []
    for chunk in re.split(r"\r\n(?![ \t])", head):
        field, colon, value = chunk.partition(":")
        if colon and field.strip().upper() == name:
            values.append(" ".join(part.strip() for part in value.split("\r\n")))
    return values


def _decoded(value: str) -> str:
    try:
        return value + "\0" + str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def _sent_date(head: bytes) -> dt.date | None:
    values = _unfold_all(head.decode("latin-1"), "DATE")
    if not values:
        return None
    try:
        return email.utils.parsedate_to_datetime(values[0]).date()
    except (TypeError, ValueError, IndexError):
        return None


def matches(key: Key, t: Target, content: bytes | None) -> bool:
    """Whether the message matches; ``content`` is given when :func:`needs_content`."""
    op, a = key.op, key.args
    if op == "ALL":
        return True
    if op == "NONE":
        return False
    if op == "AND":
        return all(matches(k, t, content) for k in a if isinstance(k, Key))
    if op == "OR":
        return any(matches(k, t, content) for k in a if isinstance(k, Key))
    if op == "NOT":
        return not matches(a[0], t, content) if isinstance(a[0], Key) else False
    if op == "FLAG":
        present = any(f.upper() == str(a[0]).upper() for f in t.info.flags)
        return present == a[1]
    if op == "SEQ":
        return _in_set(str(a[0]), t.seq, t.largest_seq)
    if op == "UID":
        return _in_set(str(a[0]), t.info.uid, t.largest_uid)
    if op == "LARGER":
        return t.info.size > int(str(a[0]))
    if op == "SMALLER":
        return t.info.size < int(str(a[0]))
    if op == "MODSEQ":
        return t.info.modseq >= int(str(a[0]))
    if op in ("BEFORE", "ON", "SINCE"):
        return _compare(op, t.info.internal_date.astimezone(dt.UTC).date(), a[0])
    body = content or b""
    end = body.find(b"\r\n\r\n")
    head, text = (body, b"") if end < 0 else (body[: end + 2], body[end + 4 :])
    if op in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        sent = _sent_date(head)
        return sent is not None and _compare(op[4:], sent, a[0])
    if op == "HEADER":
        needle = str(a[1]).casefold()
        values = _unfold_all(head.decode("latin-1"), str(a[0]))
        return any(needle in _decoded(v).casefold() for v in values)
    needle_b = str(a[0]).casefold().encode("utf-8")
    hay = (text if op == "BODY" else body).decode("utf-8", "replace").casefold()
    return needle_b.decode("utf-8") in hay


def _compare(op: str, when: dt.date, ref: object) -> bool:
    if not isinstance(ref, dt.date):  # parse_search builds date keys with a dt.date
        raise TypeError(f"SEARCH {op} key built without a date")
    if op == "BEFORE":
        return when < ref
    if op == "ON":
        return when == ref
    return when >= ref  # SINCE
