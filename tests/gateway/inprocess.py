"""A whole pli (services and listeners) in the test's own event loop, on ephemeral ports."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

from gateway.app.listeners import start_listeners
from gateway.app.services import Services, build_services
from gateway.base.config import load_settings

EPHEMERAL = {
    "PLI_SMTP__MTA_PORT": "0",
    "PLI_IMAP__PORT": "0",
    "PLI_HTTP__PORT": "0",
    "PLI_SMTP__SUBMISSION_PORT": "0",
    "PLI_SMTP__SUBMISSION_TLS_PORT": "0",
}


@contextlib.asynccontextmanager
async def serving(data: Path, **env: str) -> AsyncIterator[tuple[Services, dict[str, int]]]:
    """Serve ``data`` (a demo data directory: ``DemoDataDirs.copy``) until the block ends."""
    settings = load_settings(None, data, environ={**EPHEMERAL, **env})
    async with AsyncExitStack() as stack:
        services = await build_services(settings, stack)
        ports = await start_listeners(services, stack)
        yield services, ports
