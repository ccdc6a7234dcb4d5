"""pli's IMAP listener: sockets, STARTTLS, limits and timeouts around the session.

Every command is read under hard bounds before it is parsed: a line limit, a
literal limit checked before the continuation is sent (so a huge literal is
refused without reading it), a total command size, an idle timeout, a cap on
connections and on consecutive bad commands. After STARTTLS, any plaintext
the client pipelined is discarded, never executed (CVE-2011-0411 class).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass

import structlog

from gateway import events
from gateway.imap.backend import ImapBackend
from gateway.imap.parser import ParseError, literal_announced, parse_command
from gateway.imap.session import Session, State

__all__ = ["ImapLimits", "start_imap"]

log = structlog.get_logger("pli.imap")


@dataclass(frozen=True, slots=True)
class ImapLimits:
    line: int = 8192
    literal: int = 64 * 1024  # no APPEND yet: commands never need more
    command: int = 128 * 1024
    bad_commands: int = 20
    preauth_timeout: float = 60.0
    idle_timeout: float = 1800.0  # RFC 3501 §5.4: at least 30 minutes once logged in
    max_connections: int = 1000


class _Fatal(Exception):
    """Close the connection after sending this text as ``* BYE``."""


class _LiteralRefused(Exception):
    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag


async def _read_command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        limits: ImapLimits) -> bytes:
    try:
        data = await reader.readuntil(b"\r\n")
    except asyncio.LimitOverrunError:
        raise _Fatal("Line too long") from None
    while (announced := literal_announced(data)) is not None:
        size, non_sync = announced
        if size > limits.literal or len(data) + size > limits.command:
            if non_sync:  # LITERAL+: the bytes are already on their way; we cannot resync
                raise _Fatal("Literal too large")
            tag = data.split(b" ", 1)[0].decode("ascii", "replace")
            raise _LiteralRefused(tag)
        if not non_sync:
            writer.write(b"+ Ready for literal data\r\n")
            await writer.drain()
        data += await reader.readexactly(size)
        try:
            data += await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError:
            raise _Fatal("Line too long") from None
        if len(data) > limits.command:
            raise _Fatal("Command too long")
    return data


async def start_imap(
    backend: ImapBackend,
    *,
    host: str,
    port: int,
    tls_context: ssl.SSLContext,
    max_connections: int = 1000,
    idle_timeout: float = 1800.0,
    limits: ImapLimits | None = None,
) -> asyncio.Server:
    """Listen with STARTTLS; the bound port is ``server.sockets[0].getsockname()[1]``."""
    lim = limits or ImapLimits(max_connections=max_connections, idle_timeout=idle_timeout)
    active = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal active
        sid = events.new_session_id()
        peer = writer.get_extra_info("peername")
        remote = str(peer[0]) if peer else ""
        structlog.contextvars.bind_contextvars(session_id=sid)
        if active >= lim.max_connections:
            with contextlib.suppress(ConnectionError):
                writer.write(b"* BYE Too many connections, try later\r\n")
                await writer.drain()
            writer.close()
            return
        active += 1
        log.info(events.IMAP_CONNECT, remote=remote)
        try:
            await _conversation(reader, writer, backend, tls_context, lim, sid, remote)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except Exception as exc:  # the last resort: log, tell the client, never crash
            log.error("imap.exception", error=type(exc).__name__, exc_info=exc)
            with contextlib.suppress(Exception):
                writer.write(f"* BYE [SERVERBUG] Internal error (session {sid})\r\n".encode())
                await writer.drain()
        finally:
            active -= 1
            log.info(events.IMAP_DISCONNECT)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout=5)

    return await asyncio.start_server(serve, host, port, limit=lim.line)


async def _conversation(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        backend: ImapBackend, tls: ssl.SSLContext, lim: ImapLimits,
                        sid: str, remote: str) -> None:
    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    async def ask(prompt: bytes) -> bytes:
        await send(prompt)
        return await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout=lim.preauth_timeout)

    session = Session(backend, remote=remote, tls_active=False, starttls_available=True,
                      ask=ask)
    await send(f"* OK [CAPABILITY {session.capabilities()}] pli IMAP ready [{sid}]\r\n".encode())
    bad = 0
    while True:
        timeout = (lim.preauth_timeout if session.state is State.NOT_AUTHENTICATED
                   else lim.idle_timeout)
        try:
            raw = await asyncio.wait_for(_read_command(reader, writer, lim), timeout=timeout)
        except TimeoutError:
            await send(b"* BYE Autologout; idle for too long\r\n")
            return
        except _Fatal as exc:
            log.info(events.IMAP_PROTOCOL_ERROR, reason=str(exc))
            await send(f"* BYE {exc}\r\n".encode())
            return
        except _LiteralRefused as exc:
            log.info(events.IMAP_PROTOCOL_ERROR, reason="literal-too-large")
            await send(f"{exc.tag} BAD [TOOBIG] Literal too large\r\n".encode())
            continue
        try:
            cmd = parse_command(raw)
        except ParseError as exc:
            bad += 1
            log.info(events.IMAP_PROTOCOL_ERROR, reason=exc.reason)
            await send(f"{exc.tag or '*'} BAD {exc.reason}\r\n".encode())
            if bad >= lim.bad_commands:
                await send(b"* BYE Too many bad commands\r\n")
                return
            continue
        bad = 0
        outcome = await session.handle(cmd, send)
        if outcome.close:
            return
        if outcome.starttls:
            # RFC 3501 §6.2.1 / RFC 2595 §3.1: discard anything sent before the handshake.
            reader._buffer.clear()  # type: ignore[attr-defined]  # asyncio has no public API
            await writer.start_tls(tls, ssl_handshake_timeout=30)
            session.tls_active = True
