"""A raw IMAP connection for transcript tests: send exact bytes, read exact lines."""

from __future__ import annotations

import asyncio
import ssl

from tests.imap.memory_backend import PASSWORD, USER


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
        out: list[bytes] = []
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

    async def run(self, tag: str, command: str | bytes) -> list[bytes]:
        """Send ``<tag> <command>`` CRLF and return every line up to the tagged reply."""
        raw = command.encode() if isinstance(command, str) else command
        await self.send(tag.encode() + b" " + raw + b"\r\n")
        return await self.until_tagged(tag.encode())

    @classmethod
    async def logged_in(cls, port: int, ctx: ssl.SSLContext) -> Conn:
        c = await cls.open(port)
        await c.starttls(ctx)
        await c.login()
        return c
