"""IMAP threat transcripts over raw sockets: the server must answer exactly, never crash."""

from __future__ import annotations

import asyncio
import base64
import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.imap.envelope import envelope
from gateway.imap.fetch import parse_fetch_items
from gateway.imap.parser import Command, ParseError, Token, parse_command, parse_sequence_set
from tests.imap.conftest import Listener
from tests.imap.memory_backend import OTHER, PASSWORD, USER
from tests.imap.wire import Conn
from tests.support.profiles import examples


async def test_login_before_starttls_refused(imap: Listener) -> None:
    c = await Conn.open(imap.port)
    await c.send(f"a LOGIN {USER} {PASSWORD.replace(' ', '_')}\r\n".encode())
    assert (await c.until_tagged(b"a"))[-1].startswith(b"a NO [PRIVACYREQUIRED]")
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    await c.send(f"b AUTHENTICATE PLAIN {plain}\r\n".encode())
    assert (await c.until_tagged(b"b"))[-1].startswith(b"b NO [PRIVACYREQUIRED]")
    c.close()


async def test_pipelined_plaintext_after_starttls_is_discarded(imap: Listener) -> None:
    c = await Conn.open(imap.port)
    # The injected LOGIN travels in clear right behind STARTTLS: it must never run.
    await c.send(b"s STARTTLS\r\ninj LOGIN x y\r\n")
    assert (await c.until_tagged(b"s"))[-1].startswith(b"s OK")
    await c.w.start_tls(imap.client_ctx)
    await c.send(b"c CAPABILITY\r\n")
    lines = await c.until_tagged(b"c")
    assert not any(ln.startswith(b"inj") for ln in lines)
    assert b"AUTH=PLAIN" in lines[0] and lines[-1].startswith(b"c OK")
    c.close()


async def test_authenticate_plain_with_continuation(imap: Listener) -> None:
    c = await Conn.open(imap.port)
    await c.starttls(imap.client_ctx)
    await c.send(b"a AUTHENTICATE PLAIN\r\n")
    assert (await c.line()).startswith(b"+")
    await c.send(base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()) + b"\r\n")
    assert (await c.until_tagged(b"a"))[-1].startswith(b"a OK")
    c.close()


async def test_wrong_password(imap: Listener) -> None:
    c = await Conn.open(imap.port)
    await c.starttls(imap.client_ctx)
    await c.send(f'a LOGIN "{USER}" "nope"\r\n'.encode())
    assert (await c.until_tagged(b"a"))[-1].startswith(b"a NO [AUTHENTICATIONFAILED]")
    c.close()


async def test_huge_literal_refused_before_reading(imap: Listener) -> None:
    c = await Conn.open(imap.port)
    await c.send(b"a LOGIN {999999999}\r\n")
    reply = await c.line()
    assert reply.startswith(b"a BAD [TOOBIG]")  # no "+" continuation was ever sent
    await c.send(b"b NOOP\r\n")
    assert (await c.until_tagged(b"b"))[-1].startswith(b"b OK")
    await c.send(b"c LOGIN {999999+}\r\n")  # non-synchronising: cannot resync, so BYE
    assert (await c.line()).startswith(b"* BYE")
    c.close()


async def test_small_literal_accepted(imap: Listener) -> None:
    c = await Conn.open(imap.port)
    await c.starttls(imap.client_ctx)
    user = USER.encode()
    await c.send(b"a LOGIN {%d}\r\n" % len(user))
    assert (await c.line()).startswith(b"+")
    await c.send(user + f' "{PASSWORD}"\r\n'.encode())
    assert (await c.until_tagged(b"a"))[-1].startswith(b"a OK")
    c.close()


async def test_overlong_line_closes(imap: Listener) -> None:
    c = await Conn.open(imap.port)
    await c.send(b"a NOOP " + b"x" * 20000 + b"\r\n")
    assert (await c.line()).startswith(b"* BYE")
    c.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x01\x02\r\n",
        b"a\r\n",
        b"a SELECT\x00 INBOX\r\n",
        b"a FETCH (\r\n",
        b'a LOGIN "unterminated\r\n',
        b"\xff\xfe NOOP\r\n",
        b"a UID\r\n",
        b"a SELECT ((((((((((((x))))))))))))\r\n",
    ],
)
async def test_garbage_gets_bad_and_session_survives(imap: Listener, garbage: bytes) -> None:
    c = await Conn.open(imap.port)
    await c.send(garbage)
    assert b"BAD" in await c.line()
    await c.send(b"z NOOP\r\n")
    assert (await c.until_tagged(b"z"))[-1].startswith(b"z OK")
    c.close()


async def test_commands_in_wrong_state(imap: Listener) -> None:
    c = await Conn.open(imap.port)
    await c.send(b"a SELECT INBOX\r\nb FETCH 1 RFC822\r\n")
    assert (await c.until_tagged(b"a"))[-1].startswith(b"a BAD")
    assert (await c.until_tagged(b"b"))[-1].startswith(b"b BAD")
    await c.starttls(imap.client_ctx)
    await c.login()
    await c.send(b"c FETCH 1 RFC822\r\n")
    assert (await c.until_tagged(b"c"))[-1].startswith(b"c BAD")
    c.close()


async def test_no_path_to_another_users_mailbox(imap: Listener) -> None:
    c = await Conn.open(imap.port)
    await c.starttls(imap.client_ctx)
    await c.login()
    for name in (OTHER, f"../{OTHER}/INBOX", "*", "%", "INBOX/../..", "#shared/x"):
        await c.send(f'x SELECT "{name}"\r\n'.encode())
        reply = (await c.until_tagged(b"x"))[-1]
        assert reply.startswith(b"x NO"), reply
    await c.send(b'y SELECT "INBOX\\"\r\n')
    assert b"y BAD" in (await c.until_tagged(b"y"))[-1]
    await c.send(b"s SELECT INBOX\r\nf FETCH 1:* BODY.PEEK[]\r\n")
    lines = await c.until_tagged(b"f")
    assert not any(b"secret of another user" in ln for ln in lines)
    c.close()


async def test_connection_limit(imap: Listener) -> None:
    conns = [await Conn.open(imap.port) for _ in range(5)]
    r, w = await asyncio.open_connection("127.0.0.1", imap.port)
    assert (await asyncio.wait_for(r.readline(), 10)).startswith(b"* BYE")
    w.close()
    for c in conns:
        c.close()


def test_parser_examples() -> None:
    cmd = parse_command(b"a1 UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>)\r\n")
    assert cmd == Command(
        "a1", "UID FETCH", ("1:*", ["UID", "BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>"])
    )
    assert parse_command(b'b LOGIN {3}\r\nabc "p\\"w"\r\n').args == (b"abc", 'p"w')
    assert parse_sequence_set("2,4:*", 9) == [(2, 2), (4, 9)]
    with pytest.raises(ParseError):
        parse_sequence_set("0:3", 5)


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=300))
def test_parser_only_raises_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_command(data + b"\r\n")


@settings(max_examples=examples(300), deadline=None)
@given(st.text(max_size=60), st.integers(min_value=0, max_value=2**32))
def test_sequence_set_only_raises_parse_error(text: str, largest: int) -> None:
    with contextlib.suppress(ParseError):
        for lo, hi in parse_sequence_set(text, largest):
            assert 0 <= lo <= hi <= max(largest, 4294967295)


_tokens = st.recursive(
    st.none() | st.text(max_size=40) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=examples(300), deadline=None)
@given(_tokens)
def test_fetch_items_only_raise_parse_error(token: Token) -> None:
    with contextlib.suppress(ParseError):
        parse_fetch_items(token)


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=400))
def test_envelope_of_any_header_is_framed(header: bytes) -> None:
    out = envelope(header)
    assert out.startswith(b"(") and out.endswith(b")")
    # Every CR/LF in the output belongs to a literal announcement "{n}\r\n".
    rest = out
    while (i := rest.find(b"\r\n")) >= 0:
        assert rest[:i].endswith(b"}")
        size = int(rest[rest.rfind(b"{", 0, i) + 1 : i - 1])
        rest = rest[i + 2 + size :]


_NAMES = [b"FETCH", b"UID FETCH", b"LOGIN", b"SELECT", b"STORE", b"LIST", b"AUTHENTICATE"]
_PIECES = [
    b" ",
    b"(",
    b")",
    b"[",
    b"]",
    b"{3}\r\nabc",
    b"{5+}\r\n",
    b'"',
    b"\\",
    b"*",
    b"1:*",
    b"BODY.PEEK[HEADER.FIELDS (A)]<0.9>",
    b"NIL",
    b"\r\n",
    b"\x00",
    b"\xc3\xa9",
]


@settings(max_examples=examples(300), deadline=None)
@given(
    st.sampled_from(_NAMES), st.lists(st.sampled_from(_PIECES) | st.binary(max_size=4), max_size=12)
)
def test_parser_on_command_shaped_input(name: bytes, pieces: list[bytes]) -> None:
    with contextlib.suppress(ParseError):
        cmd = parse_command(b"a1 " + name + b" " + b"".join(pieces) + b"\r\n")
        assert cmd.tag == "a1" and cmd.name == name.decode()
