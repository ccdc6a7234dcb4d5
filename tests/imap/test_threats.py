"""IMAP threat transcripts over raw sockets: the server must answer exactly, never crash."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.imap.parser import Command, ParseError, parse_command, parse_sequence_set
from tests.imap.conftest import Listener
from tests.imap.memory_backend import OTHER, PASSWORD, USER


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        c = cls(r, w)
        greeting = await c.line()
        assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev1")
        return c

    async def line(self) -> bytes:
        return await asyncio.wait_for(self.r.readline(), 10)

    async def send(self, data: bytes) -> None:
        self.w.write(data)
        await self.w.drain()

    async def until_tagged(self, tag: bytes) -> list[bytes]:
        out = []
        while True:
            ln = await self.line()
            if not ln:
                return out
            out.append(ln)
            if ln.startswith(tag + b" "):
                return out

    async def starttls(self, ctx: ssl.SSLContext) -> None:
        await self.send(b"s STARTTLS\r\n")
        assert (await self.until_tagged(b"s"))[-1].startswith(b"s OK")
        await self.w.start_tls(ctx)

    async def login(self) -> None:
        await self.send(f'l LOGIN "{USER}" "{PASSWORD}"\r\n'.encode())
        assert (await self.until_tagged(b"l"))[-1].startswith(b"l OK")

    def close(self) -> None:
        self.w.close()


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
    [b"\x00\x01\x02\r\n", b"a\r\n", b"a SELECT\x00 INBOX\r\n", b"a FETCH (\r\n",
     b'a LOGIN "unterminated\r\n', b"\xff\xfe NOOP\r\n", b"a UID\r\n", b"a SELECT ((((((((((((x"
     b"))))))))))))\r\n"],
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
    cmd = parse_command(b'a1 UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>)\r\n')
    assert cmd == Command("a1", "UID FETCH",
                          ("1:*", ["UID", "BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>"]))
    assert parse_command(b'b LOGIN {3}\r\nabc "p\\"w"\r\n').args == (b"abc", 'p"w')
    assert parse_sequence_set("2,4:*", 9) == [(2, 2), (4, 9)]
    with pytest.raises(ParseError):
        parse_sequence_set("0:3", 5)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_parser_only_raises_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_command(data + b"\r\n")
