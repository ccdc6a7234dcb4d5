"""An IMAP listener on an ephemeral port over the in-memory backend, with a dev certificate."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.imap.server import ImapLimits, start_imap
from gateway.tls import make_dev_certificate, server_context
from tests.imap.memory_backend import MemoryBackend


@dataclass
class Listener:
    port: int
    backend: MemoryBackend
    client_ctx: ssl.SSLContext


@pytest.fixture
async def imap(tmp_path: Path) -> AsyncIterator[Listener]:
    cert, key = make_dev_certificate(tmp_path, ["localhost", "127.0.0.1"])
    backend = MemoryBackend()
    server = await start_imap(backend, host="127.0.0.1", port=0,
                              tls_context=server_context(cert, key),
                              limits=ImapLimits(literal=1024, preauth_timeout=5,
                                                max_connections=5))
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    try:
        yield Listener(server.sockets[0].getsockname()[1], backend, ctx)
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)
