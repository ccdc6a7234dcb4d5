"""Pure IMAP command parser (RFC 3501 §9 grammar, the subset pli serves).

Bytes in, a :class:`Command` or a :class:`ParseError` naming what is wrong
out; literals arrive inline (``{n}`` CRLF n octets) because the server has
already read and bounded them. Nothing here does I/O or knows about users.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Command",
    "ParseError",
    "Token",
    "literal_announced",
    "parse_command",
    "parse_sequence_set",
]

Token = str | bytes | list["Token"] | None  # atom/quoted → str, literal → bytes, NIL → None

# RFC 3501 §9: tag = 1*<any ASTRING-CHAR except "+">; bounded so replies stay short.
_TAG_RE = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]{1,64}')
_LITERAL_AT_END = re.compile(rb"\{(\d{1,10})(\+?)\}\r\n$")
_ATOM_SPECIALS = b'(){ "\\]\r\n'  # '*' and '%' stay: sequence sets, LIST patterns
_LITERAL = re.compile(rb"\{(\d{1,10})\+?\}\r\n")
_SEQ_NUMBER = re.compile(r"[1-9][0-9]{0,9}", re.ASCII)  # RFC 3501 §9 nz-number
_MAX_NUMBER = 4294967295


class ParseError(ValueError):
    """A malformed command; ``tag`` is set when it could be read (for a tagged BAD)."""

    def __init__(self, reason: str, tag: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tag = tag


@dataclass(frozen=True, slots=True)
class Command:
    tag: str
    name: str  # upper case; "UID FETCH" for UID commands
    args: tuple[Token, ...]


def literal_announced(line: bytes) -> tuple[int, bool] | None:
    """If a command line ends by announcing a literal, its size and whether it is LITERAL+."""
    m = _LITERAL_AT_END.search(line)
    if m is None:
        return None
    return int(m.group(1)), m.group(2) == b"+"


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def peek(self) -> int | None:
        return self.data[self.pos] if self.pos < len(self.data) else None

    def expect_space(self) -> None:
        if self.peek() != 0x20:
            raise ParseError(f"expected a space at offset {self.pos}")
        self.pos += 1

    def at_end(self) -> bool:
        return self.data[self.pos :] in (b"", b"\r\n")

    def token(self, depth: int = 0) -> Token:
        c = self.peek()
        if c is None:
            raise ParseError("unexpected end of command")
        if c == 0x28:  # (
            if depth > 8:
                raise ParseError("lists nested too deeply")
            self.pos += 1
            items: list[Token] = []
            while self.peek() != 0x29:
                if items:
                    self.expect_space()
                items.append(self.token(depth + 1))
            self.pos += 1
            return items
        if c == 0x22:  # "
            return self._quoted()
        if c == 0x7B:  # {
            return self._literal()
        return self._atom()

    def _quoted(self) -> str:
        self.pos += 1
        out = bytearray()
        while True:
            c = self.peek()
            if c is None or c in (0x0D, 0x0A, 0x00):
                raise ParseError("unterminated quoted string")
            self.pos += 1
            if c == 0x22:
                break
            if c == 0x5C:
                nxt = self.peek()
                if nxt not in (0x22, 0x5C):
                    raise ParseError("bad escape in quoted string")
                out.append(nxt)
                self.pos += 1
            else:
                out.append(c)
        try:
            return out.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("quoted string is not UTF-8") from None

    def _literal(self) -> bytes:
        m = _LITERAL.match(self.data, self.pos)
        if m is None:
            raise ParseError("malformed literal")
        size = int(m.group(1))
        start = m.end()
        if start + size > len(self.data):
            raise ParseError("literal shorter than announced")
        self.pos = start + size
        return self.data[start : start + size]

    def _atom(self) -> str | None:
        start = self.pos
        depth = 0
        if self.peek() == 0x5C:  # RFC 3501 §9 flag: "\" atom (\Seen, \Deleted, ...)
            self.pos += 1
        while (c := self.peek()) is not None:
            if c == 0x5B:  # [ ... ] may hold spaces and parentheses (BODY[HEADER.FIELDS (A)])
                depth += 1
            elif c == 0x5D:
                if depth == 0:
                    raise ParseError("unbalanced ']'")
                depth -= 1
            elif depth == 0 and c in _ATOM_SPECIALS:
                break
            elif c < 0x20 or c == 0x7F:
                raise ParseError("control character in command")
            self.pos += 1
        if depth:
            raise ParseError("unbalanced '['")
        if self.pos == start or self.data[start : self.pos] == b"\\":
            raise ParseError(f"unexpected character at offset {start}")
        atom = (
            self.data[start : self.pos].decode("ascii", "strict")
            if self.data[start : self.pos].isascii()
            else None
        )
        if atom is None:
            raise ParseError("non-ASCII atom")
        return None if atom.upper() == "NIL" else atom


def parse_command(data: bytes) -> Command:
    """Parse one complete command (line and inline literals, ending with CRLF)."""
    if not data.endswith(b"\r\n"):
        raise ParseError("command must end with CRLF")
    if b"\x00" in data.split(b"\r\n", 1)[0]:
        raise ParseError("NUL in command")
    sp = data.find(b" ")
    if sp <= 0:
        lone = data[:-2]
        raise ParseError("missing command name", lone.decode() if _TAG_RE.fullmatch(lone) else None)
    raw_tag = data[:sp]
    if not _TAG_RE.fullmatch(raw_tag):
        raise ParseError("invalid tag")
    tag = raw_tag.decode("ascii")
    r = _Reader(data)
    r.pos = sp + 1
    try:
        name = r.token()
        if not isinstance(name, str):
            raise ParseError("command name must be an atom")
        name = name.upper()
        if name == "UID":
            r.expect_space()
            sub = r.token()
            if not isinstance(sub, str):
                raise ParseError("UID must be followed by a command name")
            name = f"UID {sub.upper()}"
        args: list[Token] = []
        while not r.at_end():
            r.expect_space()
            args.append(r.token())
    except ParseError as exc:
        raise ParseError(exc.reason, tag) from None
    return Command(tag, name, tuple(args))


def parse_sequence_set(text: str, largest: int) -> list[tuple[int, int]]:
    """``1:3,5,7:*`` → inclusive ranges; ``*`` is ``largest`` (RFC 3501 §9 sequence-set)."""
    ranges: list[tuple[int, int]] = []
    if not text or len(text) > 4096:
        raise ParseError("invalid sequence set")

    def num(part: str) -> int:
        if part == "*":
            return largest
        if not _SEQ_NUMBER.fullmatch(part) or int(part) > _MAX_NUMBER:
            raise ParseError(f"invalid sequence number {part[:12]!r}")
        return int(part)

    for piece in text.split(","):
        lo, sep, hi = piece.partition(":")
        a = num(lo)
        b = num(hi) if sep else a
        ranges.append((min(a, b), max(a, b)))
    return ranges
