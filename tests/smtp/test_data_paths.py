"""DATA on both paths: pli's bulk reader and aiosmtpd's own (``[tuning] smtp_bulk_data``).

Transcripts over a real socket to :class:`gateway.smtp.server.PliSMTP`, whose
handler records what reaches ``handle_DATA``. Each threat (smuggled end
markers, oversized messages, overlong lines) and each piece of framing
(dot-stuffing, an empty message, commands pipelined behind the final dot, a
marker split across packets) must give the same replies and the same content
whichever path reads the data: the bulk reader is a fenced internal, and the
stock path is what an operator falls back to.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.smtp.server import start_smtp

SIZE_LIMIT = 20_000


class Recorder:
    """A handler that keeps each message's content as handle_DATA receives it."""

    def __init__(self) -> None:
        self.contents: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content
        assert isinstance(content, bytes)
        self.contents.append(content)
        return "250 2.0.0 stored"


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def reply(self) -> str:
        """The status and enhanced code of the next reply ("250 2.0.0"), its last line's."""
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 10)
            assert line, "the server closed the connection"
            if line[3:4] != b"-":
                return line[:9].decode()

    async def command(self, text: str) -> str:
        self.writer.write(text.encode() + b"\r\n")
        return await self.reply()

    async def data(self, *packets: bytes) -> None:
        """MAIL, RCPT and DATA, then the body as ``packets``, each a separate write."""
        assert (await self.command("MAIL FROM:<a@ch-arras.mssante.fr>"))[:3] == "250"
        assert (await self.command("RCPT TO:<b@ch-arras.mssante.fr>"))[:3] == "250"
        assert (await self.command("DATA"))[:3] == "354"
        for packet in packets:
            self.writer.write(packet)
            await self.writer.drain()
            await asyncio.sleep(0.001)  # let the server read what came so far


@pytest.fixture(params=[True, False], ids=["bulk", "stock"])
async def smtp(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Client, Recorder]]:
    recorder = Recorder()
    handler: Any = recorder  # the recorder has the one hook these transcripts reach
    server = await start_smtp(
        handler,
        host="127.0.0.1",
        port=0,
        hostname="mx.test",
        tls_context=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER),
        require_tls=False,
        data_size_limit=SIZE_LIMIT,
        bulk_data=request.param,
    )
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = Client(reader, writer)
    assert (await client.reply())[:3] == "220"
    assert (await client.command("EHLO client.test"))[:3] == "250"
    yield client, recorder
    writer.close()
    server.close()
    await server.wait_closed()


async def test_a_message_dot_stuffed_and_an_empty_one(smtp: tuple[Client, Recorder]) -> None:
    client, recorder = smtp
    await client.data(b"Subject: x\r\n\r\n..leading dot\r\n.\r\n")
    assert await client.reply() == "250 2.0.0"
    await client.data(b".\r\n")
    assert await client.reply() == "250 2.0.0"
    assert recorder.contents == [b"Subject: x\r\n\r\n.leading dot\r\n", b""]


@pytest.mark.parametrize("cut", [1, 5, 17, 18, 19, 20, 21])
async def test_the_end_marker_split_across_packets(smtp: tuple[Client, Recorder], cut: int) -> None:
    client, recorder = smtp
    wire = b"Subject: x\r\n\r\nbody\r\n.\r\n"
    await client.data(wire[:cut], wire[cut:])
    assert await client.reply() == "250 2.0.0"
    assert recorder.contents == [b"Subject: x\r\n\r\nbody\r\n"]


async def test_commands_pipelined_behind_the_final_dot(smtp: tuple[Client, Recorder]) -> None:
    client, recorder = smtp
    await client.data(b"one\r\n.\r\nRSET\r\nNOOP\r\n")
    assert [await client.reply() for _ in range(3)] == ["250 2.0.0", "250 2.0.0", "250 2.0.0"]
    assert recorder.contents == [b"one\r\n"]


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r"])
async def test_smuggled_end_markers_do_not_end_the_data(
    smtp: tuple[Client, Recorder], fake_end: bytes
) -> None:
    client, recorder = smtp
    smuggled = b"MAIL FROM:<x@y.fr>\r\nRCPT TO:<b@ch-arras.mssante.fr>\r\nDATA\r\nevil\r\n"
    await client.data(b"Subject: a\r\n\r\nfirst" + fake_end + smuggled + b".\r\n")
    assert await client.reply() == "250 2.0.0"
    assert await client.command("NOOP") == "250 2.0.0"  # no reply of a smuggled command
    # One message, the would-be second one inside it (a dot after CRLF unstuffed), with
    # the bare CR or LF that pli's handler refuses (gateway/smtp/handler.py).
    sent = b"Subject: a\r\n\r\nfirst" + fake_end + smuggled
    assert recorder.contents == [sent.replace(b"\r\n.", b"\r\n")]


async def test_too_much_data_is_refused_after_the_final_dot(smtp: tuple[Client, Recorder]) -> None:
    client, recorder = smtp
    line = b"x" * 498 + b"\r\n"
    await client.data(*[line] * (SIZE_LIMIT // len(line) + 5), b".\r\n")
    assert await client.reply() == "552 5.3.4"
    assert await client.command("NOOP") == "250 2.0.0"  # the session goes on
    await client.data(b"small\r\n.\r\n")
    assert await client.reply() == "250 2.0.0"
    assert recorder.contents == [b"small\r\n"]


async def test_a_line_over_1000_octets_is_refused_after_the_final_dot(
    smtp: tuple[Client, Recorder],
) -> None:
    client, recorder = smtp
    await client.data(b"ok\r\n", b"y" * 1200 + b"\r\n", b"after\r\n.\r\n")
    assert await client.reply() == "500 5.5.2"
    assert await client.command("NOOP") == "250 2.0.0"
    await client.data(b"y" * 998 + b"\r\n.\r\n")  # 1,000 octets with the CRLF: allowed
    assert await client.reply() == "250 2.0.0"
    assert recorder.contents == [b"y" * 998 + b"\r\n"]
