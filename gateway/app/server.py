"""``pli serve``: build the services, start the listeners, serve until a signal.

SIGINT/SIGTERM stop (listeners first, then services, in reverse order of
start); SIGHUP reloads the rule file and the S/MIME material without
dropping a connection. The process-wide items of ``[tuning]`` (allocator, TLS
read buffer) are applied first, before any thread exists; the others are
passed to what they tune as it is built (``gateway.base.tuning`` lists them).
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
from gateway.base.config import Settings, TuningSettings
from gateway.base.tuning.malloc import tune_allocator
from gateway.base.tuning.tlsbuffer import limit_tls_read_buffer

__all__ = ["apply_tuning", "run_server"]

log = structlog.get_logger("pli.app")


def apply_tuning(tuning: TuningSettings) -> dict[str, bool]:
    """Apply the process-wide ``[tuning]`` items; report every item's state (logged).

    Call it before any thread starts: glibc's arena limit only binds threads
    created afterwards.
    """
    state = {
        "malloc": tuning.malloc and tune_allocator(),
        "tls_read_buffer": tuning.tls_read_buffer and limit_tls_read_buffer(),
        # Passed to the engine, the SMTP listeners and the S3 store as they are built:
        "sqlite_one_trip": tuning.sqlite_one_trip,
        "smtp_bulk_data": tuning.smtp_bulk_data,
        "s3_direct": tuning.s3_direct,
    }
    log.info(events.SERVER_TUNING, **state)
    return state


def _on_sighup(services: Services, running: set[asyncio.Future[bool]]) -> None:
    services.policy.reload()
    secure = services.ingest.secure
    if secure is not None:  # key files (and maybe a token) are read off the loop
        reload = asyncio.ensure_future(asyncio.to_thread(secure.reload, services.settings))
        running.add(reload)  # held until done: the loop keeps only a weak reference
        reload.add_done_callback(running.discard)


async def run_server(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set)."""
    apply_tuning(settings.tuning)
    stop = stop or asyncio.Event()
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
