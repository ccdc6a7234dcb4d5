"""asyncio's per-connection TLS read buffer, shrunk from 256 KiB to 32 KiB for the process.

asyncio's ``SSLProtocol`` (the one rewritten in CPython 3.11) allocates a
zero-filled read buffer of its class attribute ``max_size`` for every TLS
connection and holds it for the connection's whole life: an idle IMAP client
costs 256 KiB of touched memory. A TLS record carries at most 16 KiB of data,
so 32 KiB reads lose no throughput. asyncio builds its protocol objects itself
(``create_server``, ``start_tls``): the class attribute is the only handle, so
this is a process-wide patch that ``pli serve`` makes once, before it listens.

Relies on ``asyncio.sslproto.SSLProtocol.max_size`` (present and used the same
way in CPython 3.11, 3.12 and 3.13); on any other version, or where it is
missing, nothing is changed (the stock buffer).
Switch: ``[tuning] tls_read_buffer``.
"""

from __future__ import annotations

import asyncio.sslproto
import sys

__all__ = ["STOCK_TLS_READ_BUFFER", "TLS_READ_BUFFER", "limit_tls_read_buffer"]

TLS_READ_BUFFER = 32 * 1024
STOCK_TLS_READ_BUFFER = 256 * 1024  # asyncio's own, CPython 3.11-3.13
_TESTED = ((3, 11), (3, 12), (3, 13))  # the CPython versions whose SSLProtocol was checked


def limit_tls_read_buffer(size: int = TLS_READ_BUFFER) -> bool:
    """Set the read buffer of every TLS connection made from now on; False if unsupported."""
    current = getattr(asyncio.sslproto.SSLProtocol, "max_size", None)
    if sys.version_info[:2] not in _TESTED or not isinstance(current, int):
        return False
    asyncio.sslproto.SSLProtocol.max_size = size
    return True
