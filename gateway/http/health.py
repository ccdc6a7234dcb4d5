"""A minimal HTTP listener for ``/healthz`` until the HTTP API issue brings FastAPI.

It answers only ``GET /healthz`` (200) and ``GET /readyz`` (200 when the
database answers, 503 otherwise); everything else is 404. Requests are bounded
(one line, 8 KiB of headers, 10 s) so it cannot be used to hold resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

__all__ = ["start_health"]

_MAX_HEADER = 8192


async def start_health(
    host: str, port: int, ready: Callable[[], Awaitable[bool]]
) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, body = 400, {"error": "bad request"}
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            if len(head) <= _MAX_HEADER:
                method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
                path = rest.split(" ", 1)[0]
                if method != "GET":
                    status, body = 405, {"error": "method not allowed"}
                elif path == "/healthz":
                    status, body = 200, {"status": "ok"}
                elif path == "/readyz":
                    ok = await ready()
                    status, body = (200, {"status": "ready"}) if ok else (503, {"status": "down"})
                else:
                    status, body = 404, {"error": "not found"}
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        payload = json.dumps(body).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  503: "Service Unavailable"}[status]
        with contextlib.suppress(ConnectionError):
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, host, port, limit=_MAX_HEADER)
