"""Hypothesis properties of the pure parsers: only ParseError escapes, and every valid
command survives serialisation → parsing unchanged."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.imap.commands_mailbox import parse_date_time
from gateway.imap.parser import Command, ParseError, Token, parse_command
from gateway.imap.search import parse_search
from gateway.imap.session_base import No, mailbox_name, parse_flags
from tests.support.profiles import examples

_ATOM = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:$", min_size=1, max_size=12
).filter(lambda a: a.upper() != "NIL")
_QUOTED = st.text(
    st.characters(blacklist_characters="\r\n\x00", blacklist_categories=["Cs"]), max_size=20
)
_LITERAL = st.binary(max_size=30)
_VALUES: st.SearchStrategy[Token] = st.recursive(
    _ATOM | _QUOTED | _LITERAL | st.none(), lambda inner: st.lists(inner, max_size=4), max_leaves=10
)
_NAME = _ATOM.map(str.upper).filter(lambda n: n != "UID")


def _wire(tok: Token, quoted: bool) -> bytes:
    if tok is None:
        return b"NIL"
    if isinstance(tok, bytes):
        return b"{%d}\r\n" % len(tok) + tok
    if isinstance(tok, list):
        return b"(" + b" ".join(_wire(t, quoted) for t in tok) + b")"
    atom = tok.upper() != "NIL" and all((c.isalnum() and c.isascii()) or c in ".-_:$" for c in tok)
    if quoted or not tok or not atom:
        return b'"' + tok.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return tok.encode()


@settings(max_examples=examples(300), deadline=None)
@given(_ATOM, _NAME, st.lists(_VALUES, max_size=6), st.booleans())
def test_round_trip_of_valid_commands(tag: str, name: str, args: list[Token], quoted: bool) -> None:
    wire = (
        tag.encode()
        + b" "
        + name.encode()
        + b"".join(b" " + _wire(a, quoted) for a in args)
        + b"\r\n"
    )
    assert parse_command(wire) == Command(tag, name, tuple(args))


_SEARCH_WORDS = st.sampled_from(
    [
        "ALL",
        "OR",
        "NOT",
        "FROM",
        "x",
        "1:*",
        "UID",
        "BEFORE",
        "1-Jan-2026",
        "LARGER",
        "10",
        "HEADER",
        "MODSEQ",
        "*",
        "KEYWORD",
        "CHARSET",
        "UTF-8",
        "SEEN",
        "0",
        "32-Foo-1",
    ]
)


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(
        st.recursive(_SEARCH_WORDS | _LITERAL, lambda i: st.lists(i, max_size=3), max_leaves=8),
        max_size=8,
    )
)
def test_search_parser_only_raises_parse_error(tokens: list[Token]) -> None:
    with contextlib.suppress(ParseError):
        parse_search(tokens)


@settings(max_examples=examples(300), deadline=None)
@given(_VALUES)
def test_argument_checks_only_refuse_cleanly(tok: Token) -> None:
    for check in (mailbox_name, parse_flags, parse_date_time):
        with contextlib.suppress(ParseError, No):
            check(tok)


@settings(max_examples=examples(300), deadline=None)
@given(st.text(max_size=300))
def test_accepted_mailbox_names_are_never_traversal(name: str) -> None:
    with contextlib.suppress(ParseError, No):
        out = mailbox_name(name)
        assert 0 < len(out) <= 255 and ".." not in out.split("/") and "" not in out.split("/")
        assert not any(ord(c) < 32 or c in "%*" for c in out)
