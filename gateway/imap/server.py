"""pli's IMAP listeners: sockets, STARTTLS or implicit TLS, limits and timeouts around a session.

Every command is read under hard bounds before it is parsed: a line limit, a
literal limit checked before the continuation is sent (so a huge literal is
refused without reading it; a too large LITERAL+ closes the connection, since
its bytes are already on the way), a larger bound only for APPEND's message,
a total command size, an idle timeout, a cap on connections and on
consecutive bad commands. After STARTTLS, any plaintext the client pipelined
is discarded, never executed (CVE-2011-0411 class).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass

import structlog

from gateway.base import events
from gateway.core.ports import ImapBackend, Notifier
from gateway.imap.parser import ParseError, literal_announced, parse_command
from gateway.imap.responses import tagged
from gateway.imap.session import Session, State

__all__ = ["ImapLimits", "start_imap"]

log = structlog.get_logger("pli.imap")


@dataclass(frozen=True, slots=True)
class ImapLimits:
    """Every bound the listener enforces; sizes in octets, times in seconds."""

    line: int = 8192
    literal: int = 64 * 1024  # any literal but APPEND's message
    append: int = 50 * 1024 * 1024  # APPEND's message (the SMTP size limit is the same idea)
    command: int = 128 * 1024  # a whole command, literals included (APPEND: append + this)
    bad_commands: int = 20
    login_failures: int = 3  # then BYE; the backend throttles across connections
    preauth_timeout: float = 60.0
    idle_timeout: float = 1800.0  # RFC 3501 §5.4: at least 30 minutes once logged in
    send_timeout: float = 300.0  # a client that stops reading its responses is dropped
    tls_handshake_timeout: float = 30.0
    max_connections: int = 1000
    idle_poll: float = 30.0  # IDLE re-reads the mailbox this often (changes by other instances)


class _Fatal(Exception):
    """Close the connection after sending this text as ``* BYE``."""


class _LiteralRefused(Exception):
    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n")
    except asyncio.LimitOverrunError:  # the reader's limit is ImapLimits.line
        raise _Fatal("Line too long") from None


async def _read_command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: ImapLimits
) -> bytes:
    data = await _read_line(reader)
    words = data.split(b" ", 2)
    is_append = len(words) > 1 and words[1].upper() == b"APPEND"
    max_literal = limits.append if is_append else limits.literal
    max_command = limits.command + (limits.append if is_append else 0)
    while (announced := literal_announced(data)) is not None:
        size, non_sync = announced
        if size > max_literal or len(data) + size > max_command:
            if non_sync:  # LITERAL+: the bytes are already on their way; we cannot resync
                raise _Fatal("Literal too large")
            tag = data.split(b" ", 1)[0].decode("ascii", "replace")
            raise _LiteralRefused(tag)
        if not non_sync:
            writer.write(b"+ Ready for literal data\r\n")
            await writer.drain()
        data += await reader.readexactly(size)
        data += await _read_line(reader)
        if len(data) > max_command:
            raise _Fatal("Command too long")
    return data


async def start_imap(
    backend: ImapBackend,
    *,
    host: str,
    port: int,
    tls_context: ssl.SSLContext,
    limits: ImapLimits | None = None,
    notifier: Notifier | None = None,
    implicit_tls: bool = False,
) -> asyncio.Server:
    """Listen for IMAP on ``host:port`` (0 = ephemeral) and return the server.

    STARTTLS (RFC 3501 §6.2.1) by default; ``implicit_tls`` for the port-993
    style listener (RFC 8314 §3.3), where the handshake comes first. The
    bound port is ``server.sockets[0].getsockname()[1]``; the caller owns the
    server (``close()`` then ``wait_closed()``). ``notifier`` wakes IDLE.
    """
    lim = limits or ImapLimits()
    active = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal active
        sid = events.new_session_id()
        peer = writer.get_extra_info("peername")
        remote = str(peer[0]) if peer else ""
        # Each connection runs in its own task, so these bindings stay with this session.
        with structlog.contextvars.bound_contextvars(session_id=sid, remote=remote):
            if active >= lim.max_connections:
                log.warning(events.IMAP_DISCONNECT, reason="max-connections")
                with contextlib.suppress(Exception):
                    writer.write(b"* BYE Too many connections, try later\r\n")
                    await asyncio.wait_for(writer.drain(), timeout=5)
                await _close(writer)
                return
            active += 1
            log.info(events.IMAP_CONNECT)
            reason = "closed"
            try:
                reason = await _conversation(
                    reader, writer, backend, tls_context, lim, sid, remote, notifier, implicit_tls
                )
            except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
                reason = "connection-lost"
            except asyncio.CancelledError:
                # Shutdown. This is the connection task's top level and nothing awaits it;
                # re-raising only makes Python 3.11's streams callback log a spurious error.
                reason = "server-shutdown"
            except Exception as exc:  # the last resort: log, tell the client, never crash
                reason = "exception"
                log.error(events.IMAP_PROTOCOL_ERROR, error=type(exc).__name__, exc_info=exc)
                with contextlib.suppress(Exception):
                    writer.write(f"* BYE [SERVERBUG] Internal error (session {sid})\r\n".encode())
                    await asyncio.wait_for(writer.drain(), timeout=5)
            finally:
                active -= 1
                log.info(events.IMAP_DISCONNECT, reason=reason)
                await _close(writer)

    if implicit_tls:
        return await asyncio.start_server(
            serve,
            host,
            port,
            limit=lim.line,
            ssl=tls_context,
            ssl_handshake_timeout=lim.tls_handshake_timeout,
        )
    return await asyncio.start_server(serve, host, port, limit=lim.line)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close the connection; the last step of a connection task, so shutdown may cut it."""
    writer.close()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(writer.wait_closed(), timeout=5)


async def _starttls(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    reply: bytes,
    tls: ssl.SSLContext,
    lim: ImapLimits,
) -> None:
    """Answer STARTTLS and upgrade, executing nothing the client sent in plaintext after it.

    RFC 3501 §6.2.1, RFC 2595 §3.1, CVE-2011-0411: reading stops before the OK
    goes out, the plaintext already buffered is dropped, and from the handshake
    on the transport only feeds the TLS layer.
    """
    transport = writer.transport
    if not isinstance(transport, asyncio.ReadTransport):  # a socket transport always is
        raise TypeError("STARTTLS needs a readable transport")
    transport.pause_reading()
    writer.write(reply)
    await asyncio.wait_for(writer.drain(), timeout=lim.send_timeout)
    # asyncio has no public API to discard a StreamReader's buffer.
    reader._buffer.clear()  # type: ignore[attr-defined]
    await writer.start_tls(tls, ssl_handshake_timeout=lim.tls_handshake_timeout)


async def _conversation(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    backend: ImapBackend,
    tls: ssl.SSLContext,
    lim: ImapLimits,
    sid: str,
    remote: str,
    notifier: Notifier | None,
    implicit_tls: bool,
) -> str:
    """Read, bound and parse commands until the session ends; return why it ended."""

    async def send(data: bytes) -> None:
        writer.write(data)
        await asyncio.wait_for(writer.drain(), timeout=lim.send_timeout)

    async def ask(prompt: bytes) -> bytes:
        await send(prompt)
        return await asyncio.wait_for(_read_line(reader), timeout=lim.preauth_timeout)

    async def read_line() -> bytes:
        return await asyncio.wait_for(_read_line(reader), timeout=lim.idle_timeout)

    session = Session(
        backend,
        remote=remote,
        tls_active=implicit_tls,
        starttls_available=not implicit_tls,
        ask=ask,
        session_id=sid,
        max_login_failures=lim.login_failures,
        read_line=read_line,
        notifier=notifier,
        idle_poll=lim.idle_poll,
        idle_timeout=lim.idle_timeout,
    )
    await send(f"* OK [CAPABILITY {session.capabilities()}] pli IMAP ready [{sid}]\r\n".encode())
    bad = 0
    while True:
        timeout = (
            lim.preauth_timeout if session.state is State.NOT_AUTHENTICATED else lim.idle_timeout
        )
        try:
            raw = await asyncio.wait_for(_read_command(reader, writer, lim), timeout=timeout)
        except TimeoutError:
            await send(b"* BYE Autologout; idle for too long\r\n")
            return "idle-timeout"
        except _Fatal as exc:
            log.info(events.IMAP_PROTOCOL_ERROR, reason=str(exc))
            await send(f"* BYE {exc}\r\n".encode())
            return "protocol-error"
        except _LiteralRefused as exc:
            log.info(events.IMAP_PROTOCOL_ERROR, reason="literal-too-large")
            await send(tagged(exc.tag, "BAD", "[TOOBIG] Literal too large"))
            continue
        try:
            cmd = parse_command(raw)
        except ParseError as exc:
            bad += 1
            log.info(events.IMAP_PROTOCOL_ERROR, reason=exc.reason)
            await send(tagged(exc.tag or "*", "BAD", exc.reason))
            if bad >= lim.bad_commands:
                await send(b"* BYE Too many bad commands\r\n")
                return "bad-commands"
            continue
        bad = 0
        outcome = await session.handle(cmd, send)
        if outcome.close:
            return "logout" if session.state is State.LOGOUT else "closed-by-server"
        if outcome.starttls:
            await _starttls(
                reader, writer, tagged(cmd.tag, "OK", "Begin TLS negotiation now"), tls, lim
            )
            session.tls_active = True
