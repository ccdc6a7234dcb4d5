"""pli's SMTP listener: aiosmtpd's protocol with pli's limits, TLS and session ids.

Every connection gets a ``session_id`` bound in structlog's context before its
task starts, so all of its events carry it, and it is echoed in the banner so
a user's complaint leads to the log lines. Listeners are started in the app's
own loop with ``loop.create_server``.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from typing import Any, AnyStr

import structlog
from aiosmtpd.smtp import MISSING, SMTP, syntax

from gateway.base import events
from gateway.smtp import replies
from gateway.smtp.data import DataState, read_data
from gateway.smtp.handler import SmtpHandler

__all__ = ["PliSMTP", "start_smtp"]

log = structlog.get_logger("pli.smtp")

# Per connection. A peer MTA pushes its whole queue over one connection, so the
# transaction verbs get room; the rest (NOOP, VRFY, HELP, bogus...) stays tight.
_CALL_LIMITS = {"MAIL": 100_000, "RCPT": 1_000_000, "DATA": 100_000, "RSET": 100_000, "*": 100}


_ENHANCED = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}( |$)")
# aiosmtpd's generic replies, by basic code (RFC 3463 classes).
_GENERIC = {
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "235": "2.7.0",
    "530": "5.7.0",
    "535": "5.7.8",
    "538": "5.7.11",
    "552": "5.3.4",
    "554": "5.7.0",
}


class PliSMTP(SMTP):
    """aiosmtpd.SMTP with a per-connection session id in the log context.

    ``bulk_data`` (``[tuning] smtp_bulk_data``) reads DATA with pli's bulk reader;
    off, aiosmtpd's own line-by-line DATA runs, untouched.
    """

    def __init__(
        self,
        handler: SmtpHandler,
        session_id: str,
        *,
        implicit_tls: bool = False,
        bulk_data: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, ident=f"pli ESMTP [{session_id}]", **kwargs)
        self.pli_session_id = session_id
        self._implicit_tls = implicit_tls
        self._bulk_data = bulk_data

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # first call; the second one follows STARTTLS
            structlog.contextvars.bind_contextvars(session_id=self.pli_session_id)
            peer = transport.get_extra_info("peername")
            log.info(events.SMTP_CONNECT, remote=str(peer[0]) if peer else "")
        # STARTTLS makes aiosmtpd start a new session: keep what the load balancer said.
        proxied = getattr(self.session, "proxy_data", None) if self.session else None
        super().connection_made(transport)
        if proxied is not None and self.session is not None:
            self.session.proxy_data = proxied
        if self._implicit_tls and self.session is not None:
            # Port 465 (RFC 8314): TLS from the first byte. aiosmtpd only knows STARTTLS,
            # so mark the session as protected for its AUTH and require_starttls checks.
            self._tls_protocol = transport  # type: ignore[assignment]
            self.session.ssl = {
                "ssl_object": transport.get_extra_info("ssl_object"),
                "peercert": transport.get_extra_info("peercert"),
            }

    async def push(self, status: AnyStr) -> None:
        """RFC 2034: every reply carries an enhanced status code (we advertise it).

        pli's own replies have exact codes; aiosmtpd's built-in ones ("250 OK",
        "503 Error: need RCPT command") get the class's generic code here. The
        greeting and the EHLO/HELO replies stay as they are (RFC 2034 §4).
        """
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
        code, sep, rest = text[:3], text[3:4], text[4:]
        if (
            code.isdigit()
            and sep == " "
            and code[0] in "245"
            and code != "220"
            and not _ENHANCED.match(rest)
            and rest not in ("HELP", self.hostname)
        ):
            await super().push(f"{code} {_GENERIC.get(code, code[0] + '.0.0')} {rest}")
            return
        await super().push(status)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA with the body read in bulk: a fenced internal (see
        gateway/smtp/data.py for what it relies on and the versions it is tested with)."""
        if not self._bulk_data:
            await super().smtp_DATA(arg)
            return
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        envelope = self.envelope
        if envelope is None:  # aiosmtpd sets it on connection; a bug, answered 451 4.3.0
            raise RuntimeError("SMTP DATA without an envelope")
        if not envelope.rcpt_tos:
            await self.push(replies.NEED_RCPT)
            return
        if arg:
            await self.push(replies.DATA_SYNTAX)
            return
        await self.push(replies.START_DATA)
        try:
            result = await read_data(
                self._reader, size_limit=self.data_size_limit, line_limit=self.line_length_limit
            )
        except asyncio.CancelledError:
            self._writer.close()
            raise
        if result.state is DataState.TOO_LONG:
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await self.push(replies.LINE_TOO_LONG)
            return
        if result.state is DataState.TOO_MUCH:
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await self.push(replies.MESSAGE_TOO_BIG)
            return
        envelope.content = result.content
        envelope.original_content = result.content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    def connection_lost(self, error: Exception | None) -> None:
        log.info(events.SMTP_DISCONNECT, session_id=self.pli_session_id)
        super().connection_lost(error)


async def start_smtp(
    handler: SmtpHandler,
    *,
    host: str,
    port: int,
    hostname: str,
    tls_context: ssl.SSLContext,
    require_tls: bool,
    data_size_limit: int,
    protocol_class: type[PliSMTP] = PliSMTP,
    implicit_tls: bool = False,
    proxy_protocol_timeout: float | None = None,
    bulk_data: bool = True,
    **extra: Any,
) -> asyncio.Server:
    """Listen; the bound port is ``server.sockets[0].getsockname()[1]``.

    With ``implicit_tls`` the TLS handshake comes first (submissions on 465) and
    STARTTLS is not offered. With ``proxy_protocol_timeout`` every connection must
    start with a PROXY v1/v2 header, which the handler accepts only from trusted
    load balancers. ``bulk_data``: see :class:`PliSMTP`.
    """
    loop = asyncio.get_running_loop()

    def factory() -> PliSMTP:
        return protocol_class(
            handler,
            events.new_session_id(),
            implicit_tls=implicit_tls,
            bulk_data=bulk_data,
            hostname=hostname,
            tls_context=None if implicit_tls else tls_context,
            require_starttls=require_tls,
            auth_require_tls=True,
            data_size_limit=data_size_limit,
            command_call_limit=_CALL_LIMITS,
            enable_SMTPUTF8=True,
            timeout=300,
            proxy_protocol_timeout=proxy_protocol_timeout,
            **extra,
        )

    return await loop.create_server(
        factory,
        host=host,
        port=port,
        ssl=tls_context if implicit_tls else None,
        ssl_handshake_timeout=30 if implicit_tls else None,
    )
