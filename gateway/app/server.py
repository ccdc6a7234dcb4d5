"""``pli serve``: build the services, start the listeners, serve until a signal.

SIGINT/SIGTERM stop (listeners first, then services, in reverse order of
start); SIGHUP reloads the rule file and the S/MIME material without
dropping a connection. Process-wide tuning is applied first, before any
thread exists (``gateway.base.tuning``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from contextlib import AsyncExitStack

import structlog

from gateway.app.listeners import start_listeners
from gateway.app.services import Services, build_services
from gateway.base import events
from gateway.base.config import Settings
from gateway.base.tls import limit_tls_read_buffer

__all__ = ["run_server"]

log = structlog.get_logger("pli.app")


def _on_sighup(services: Services, running: set[asyncio.Future[bool]]) -> None:
    services.policy.reload()
    secure = services.ingest.secure
    if secure is not None:  # key files (and maybe a token) are read off the loop
        reload = asyncio.ensure_future(asyncio.to_thread(secure.reload, services.settings))
        running.add(reload)  # held until done: the loop keeps only a weak reference
        reload.add_done_callback(running.discard)


async def run_server(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set)."""
    stop = stop or asyncio.Event()
    limit_tls_read_buffer()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Future[bool]] = set()
    async with AsyncExitStack() as stack:
        services = await build_services(settings, stack)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            # The operator edited the rule file or issued a certificate: apply it without
            # dropping a connection.
            loop.add_signal_handler(signal.SIGHUP, _on_sighup, services, reloads)
        await start_listeners(services, stack)
        await stop.wait()
    log.info(events.SERVER_STOPPED)
