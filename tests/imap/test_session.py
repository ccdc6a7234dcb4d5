"""Session behaviour over raw sockets: failures, logging, timeouts and limits."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from gateway.base import events
from gateway.base.errors import TemporaryFailure
from gateway.core.ports import MailboxView, Principal
from gateway.imap.server import ImapLimits
from tests.imap.conftest import TEST_LIMITS, Listener, listening
from tests.imap.memory_backend import PASSWORD, USER, MemoryBackend
from tests.imap.wire import Conn


class BrokenBackend(MemoryBackend):
    """SELECT of "Broken" raises a bug with a secret in it; "Down" a temporary failure."""

    async def select(self, principal: Principal, mailbox: str) -> MailboxView:
        if mailbox == "Broken":
            raise RuntimeError("/var/lib/pli/db.sqlite password=hunter2")
        if mailbox == "Down":
            raise TemporaryFailure("Mailstore unavailable", reason="db-down")
        return await super().select(principal, mailbox)


async def _logged_in(listener: Listener) -> Conn:
    c = await Conn.open(listener.port)
    await c.starttls(listener.client_ctx)
    await c.login()
    return c


async def test_unexpected_exception_is_serverbug_and_session_survives(tmp_path: Path) -> None:
    async with listening(tmp_path, BrokenBackend()) as imap:
        c = await _logged_in(imap)
        await c.send(b"a SELECT Broken\r\n")
        reply = (await c.until_tagged(b"a"))[-1]
        assert reply.startswith(b"a NO [SERVERBUG] Internal error (session ")
        assert b"hunter2" not in reply and b"sqlite" not in reply
        await c.send(b"b SELECT Down\r\n")
        reply = (await c.until_tagged(b"b"))[-1]
        assert reply.startswith(b"b NO [UNAVAILABLE] Mailstore unavailable, try again later")
        await c.send(b"c SELECT INBOX\r\n")
        assert (await c.until_tagged(b"c"))[-1] == b"c OK [READ-WRITE] SELECT completed\r\n"
        c.close()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    events.configure_logging("debug", stream=stream)
    try:
        yield stream
    finally:
        structlog.reset_defaults()


async def test_events_carry_session_id_and_never_credentials(
    imap: Listener, log_stream: io.StringIO
) -> None:
    c = await Conn.open(imap.port)
    await c.starttls(imap.client_ctx)
    await c.send(f'a LOGIN "{USER}" "wrong-{PASSWORD}"\r\n'.encode())
    await c.until_tagged(b"a")
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    await c.send(f"b AUTHENTICATE PLAIN {plain}\r\n".encode())
    assert (await c.until_tagged(b"b"))[-1].startswith(b"b OK")
    await c.send(b"l LOGOUT\r\n")
    await c.until_tagged(b"l")
    c.close()
    await imap_idle_until(log_stream, events.IMAP_DISCONNECT)
    text = log_stream.getvalue()
    assert PASSWORD not in text and plain not in text
    lines: list[dict[str, Any]] = [json.loads(ln) for ln in text.splitlines()]
    imap_lines = [ln for ln in lines if ln["event"].startswith("imap.")]
    assert len({ln["session_id"] for ln in imap_lines}) == 1
    logins = [(ln["result"], ln["user"]) for ln in imap_lines if ln["event"] == events.IMAP_LOGIN]
    assert logins == [("fail", USER), ("ok", USER)]
    names = [ln["event"] for ln in imap_lines]
    assert names[0] == events.IMAP_CONNECT and names[-1] == events.IMAP_DISCONNECT


async def imap_idle_until(stream: io.StringIO, event: str) -> None:
    """The disconnect is logged by the server task just after the client closes."""
    for _ in range(100):
        if event in stream.getvalue():
            return
        await asyncio.sleep(0.02)


async def test_preauth_idle_timeout(tmp_path: Path) -> None:
    limits = ImapLimits(preauth_timeout=0.3, max_connections=5)
    async with listening(tmp_path, limits=limits) as imap:
        c = await Conn.open(imap.port)
        assert (await c.line()).startswith(b"* BYE Autologout")
        assert await c.line() == b""  # and the server closed the connection
        c.close()


async def test_too_many_failed_logins_closes(imap: Listener) -> None:
    c = await Conn.open(imap.port)
    await c.starttls(imap.client_ctx)
    for n in range(TEST_LIMITS.login_failures):
        await c.send(f'{n} LOGIN "{USER}" "nope"\r\n'.encode())
        assert (await c.until_tagged(str(n).encode()))[-1].startswith(
            f"{n} NO [AUTHENTICATIONFAILED]".encode()
        )
    assert (await c.line()).startswith(b"* BYE")
    assert await c.line() == b""
    c.close()


async def test_authenticate_plain_sasl_ir_and_authz(imap: Listener) -> None:
    c = await Conn.open(imap.port)
    await c.starttls(imap.client_ctx)
    as_other = base64.b64encode(f"someone@else.fr\0{USER}\0{PASSWORD}".encode()).decode()
    await c.send(f"a AUTHENTICATE PLAIN {as_other}\r\n".encode())
    assert (await c.until_tagged(b"a"))[-1].startswith(b"a NO [AUTHORIZATIONFAILED]")
    await c.send(b"b AUTHENTICATE PLAIN =\r\n")  # RFC 4959: empty initial response
    assert (await c.line()).startswith(b"+")
    await c.send(b"*\r\n")
    assert (await c.until_tagged(b"b"))[-1].startswith(b"b BAD Authentication cancelled")
    await c.send(b"c AUTHENTICATE CRAM-MD5\r\n")
    assert (await c.until_tagged(b"c"))[-1].startswith(b"c NO")
    same = base64.b64encode(f"{USER}\0{USER}\0{PASSWORD}".encode()).decode()
    await c.send(f"d AUTHENTICATE PLAIN {same}\r\n".encode())
    assert (await c.until_tagged(b"d"))[-1].startswith(b"d OK [CAPABILITY IMAP4rev1")
    await c.send(b"e STARTTLS\r\n")  # never twice, never after login
    assert (await c.until_tagged(b"e"))[-1].startswith(b"e BAD")
    c.close()


async def test_tag_that_would_break_framing_is_not_echoed(imap: Listener) -> None:
    c = await Conn.open(imap.port)
    await c.send(b"a\rb {99999}\r\n")
    assert (await c.line()).startswith(b"* BAD")
    await c.send(b"* NOOP\r\n")  # a tag of "*" would look untagged
    assert (await c.line()).startswith(b"* BAD invalid tag")
    c.close()


async def test_mailbox_names_with_line_breaks_refused(imap: Listener) -> None:
    c = await _logged_in(imap)
    await c.send(b"a SELECT {7}\r\n")
    assert (await c.line()).startswith(b"+")
    await c.send(b"IN\r\nBOX\r\n")
    assert (await c.until_tagged(b"a"))[-1].startswith(b"a NO [CANNOT]")
    await c.send(b'b SELECT "iNbOx"\r\n')
    assert (await c.until_tagged(b"b"))[-1].startswith(b"b OK")
    c.close()


async def test_store_flags_and_sequence_sets(imap: Listener) -> None:
    c = await _logged_in(imap)
    await c.send(b"s SELECT INBOX\r\n")
    await c.until_tagged(b"s")
    await c.send(b"a STORE 2,3 +FLAGS (\\Flagged)\r\n")
    lines = await c.until_tagged(b"a")
    assert lines == [
        b"* 2 FETCH (FLAGS (\\Flagged))\r\n",
        b"* 3 FETCH (FLAGS (\\Flagged))\r\n",
        b"a OK STORE completed\r\n",
    ]
    await c.send(b"b STORE 1 +FLAGS (mykeyword)\r\nc STORE 1 +FLAGS (\\Recent)\r\n")
    assert await c.until_tagged(b"b") == [
        b"* 1 FETCH (FLAGS (mykeyword))\r\n",
        b"b OK STORE completed\r\n",
    ]
    assert (await c.until_tagged(b"c"))[-1].startswith(b"c BAD")
    await c.send(b"d FETCH 2,4:* UID\r\n")  # 4:* in a 3-message mailbox is 3:4 → out of range
    assert (await c.until_tagged(b"d"))[-1].startswith(b"d BAD")
    await c.send(b"e FETCH 2,3:* UID\r\nf UID FETCH 3:* UID\r\ng FETCH * UID\r\n")
    assert await c.until_tagged(b"e") == [
        b"* 2 FETCH (UID 2)\r\n",
        b"* 3 FETCH (UID 3)\r\n",
        b"e OK FETCH completed\r\n",
    ]
    assert (await c.until_tagged(b"f"))[0] == b"* 3 FETCH (UID 3)\r\n"
    assert (await c.until_tagged(b"g"))[0] == b"* 3 FETCH (UID 3)\r\n"
    await c.send(b"h UID FETCH 99:* UID\r\n")  # RFC 3501 §6.4.8: n:* always names the last
    assert (await c.until_tagged(b"h"))[0] == b"* 3 FETCH (UID 3)\r\n"
    await c.send(b"i FETCH 0 UID\r\nj FETCH \xc2\xb2 UID\r\n")
    assert (await c.until_tagged(b"i"))[-1].startswith(b"i BAD")
    assert (await c.until_tagged(b"j"))[-1].startswith(b"j BAD")
    c.close()


async def test_noop_announces_new_messages_and_empty_mailbox(imap: Listener) -> None:
    c = await _logged_in(imap)
    await c.send(b"s SELECT INBOX\r\n")
    await c.until_tagged(b"s")
    box = imap.backend.boxes[USER]
    imap.backend.users[USER]["INBOX"].add(
        b"Subject: new\r\n\r\nhello\r\n", set(), dt.datetime.now(dt.UTC)
    )
    await c.send(b"n NOOP\r\n")
    assert await c.until_tagged(b"n") == [
        b"* 4 EXISTS\r\n",
        b"* 0 RECENT\r\n",
        b"n OK NOOP completed\r\n",
    ]
    box.clear()
    await c.send(b"n2 NOOP\r\n")  # vanished messages are announced, highest number first
    assert await c.until_tagged(b"n2") == [b"* %d EXPUNGE\r\n" % n for n in (4, 3, 2, 1)] + [
        b"n2 OK NOOP completed\r\n"
    ]
    await c.send(b"s2 SELECT INBOX\r\nf FETCH 1:* FLAGS\r\n")
    assert b"* 0 EXISTS\r\n" in await c.until_tagged(b"s2")
    assert await c.until_tagged(b"f") == [b"f OK FETCH completed\r\n"]
    c.close()
