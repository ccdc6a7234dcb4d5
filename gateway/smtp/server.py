"""pli's SMTP listener: aiosmtpd's protocol with pli's limits, TLS and session ids.

Every connection gets a ``session_id`` bound in structlog's context before its
task starts, so all of its events carry it, and it is echoed in the banner so
a user's complaint leads to the log lines. Listeners are started in the app's
own loop with ``loop.create_server``.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP

from gateway import events
from gateway.smtp.handler import SmtpHandler

__all__ = ["PliSMTP", "start_smtp"]

log = structlog.get_logger("pli.smtp")


class PliSMTP(SMTP):
    """aiosmtpd.SMTP with a per-connection session id in the log context."""

    def __init__(self, handler: SmtpHandler, session_id: str, **kwargs: Any) -> None:
        super().__init__(handler, ident=f"pli ESMTP [{session_id}]", **kwargs)
        self.pli_session_id = session_id

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # first call; the second one follows STARTTLS
            structlog.contextvars.bind_contextvars(session_id=self.pli_session_id)
            peer = transport.get_extra_info("peername")
            log.info(events.SMTP_CONNECT, remote=str(peer[0]) if peer else "")
        super().connection_made(transport)

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
    **extra: Any,
) -> asyncio.Server:
    """Listen; the bound port is ``server.sockets[0].getsockname()[1]``."""
    loop = asyncio.get_running_loop()

    def factory() -> PliSMTP:
        return protocol_class(
            handler,
            events.new_session_id(),
            hostname=hostname,
            tls_context=tls_context,
            require_starttls=require_tls,
            auth_require_tls=True,
            data_size_limit=data_size_limit,
            command_call_limit=200,
            enable_SMTPUTF8=True,
            timeout=300,
            **extra,
        )

    return await loop.create_server(factory, host=host, port=port)
