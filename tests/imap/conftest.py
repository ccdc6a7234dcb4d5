"""An IMAP listener on an ephemeral port over the in-memory backend, with a dev certificate."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.base.tls import make_dev_certificate, server_context
from gateway.imap.server import ImapLimits, start_imap
from tests.imap.memory_backend import MemoryBackend

TEST_LIMITS = ImapLimits(literal=1024, preauth_timeout=5, max_connections=5)


@dataclass
class Listener:
    port: int
    backend: MemoryBackend
    client_ctx: ssl.SSLContext  # trusts the dev certificate, no host name (raw sockets)
    cafile: Path


@contextlib.asynccontextmanager
async def listening(
    tmp_path: Path, backend: MemoryBackend | None = None, limits: ImapLimits = TEST_LIMITS
) -> AsyncIterator[Listener]:
    """The real server on 127.0.0.1:0; the client context trusts only the dev certificate."""
    cert, key = make_dev_certificate(tmp_path / "tls", ["localhost", "127.0.0.1"])
    backend = backend or MemoryBackend()
    server = await start_imap(
        backend,
        host="127.0.0.1",
        port=0,
        tls_context=server_context(cert, key),
        limits=limits,
        notifier=backend.notifier,
    )
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False  # the dev certificate names localhost; we dial 127.0.0.1 too
    try:
        yield Listener(server.sockets[0].getsockname()[1], backend, ctx, cert)
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


@pytest.fixture
async def imap(tmp_path: Path) -> AsyncIterator[Listener]:
    async with listening(tmp_path) as listener:
        yield listener
