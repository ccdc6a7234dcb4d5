"""Reading SMTP DATA in bulk: the end marker searched at C speed, not line by line.

aiosmtpd reads DATA one ``readuntil(CRLF)`` per line: about 1,300 event-loop
iterations for a 100 KB message, which saturates the loop under load. Here the
body is read as it arrives, up to 256 KiB a read, the end marker searched in
what came, and the whole then checked with bytes operations. Semantics are RFC
5321's and aiosmtpd's: only CRLF.CRLF ends the data (a bare-LF dot never does:
SMTP smuggling), leading dots are removed (§4.5.2), overlong lines and
oversized messages are consumed to the end and answered after the final dot
(§4.2.5), never in the middle.

A fenced internal (gateway/base/tuning lists them all). It relies on asyncio's
``StreamReader._buffer``, where bytes pipelined after the final dot go back (a
reader has no public unread, and its public ``readuntil`` stops at aiosmtpd's
1,001-byte limit), and on aiosmtpd's own DATA steps, which
:meth:`gateway.smtp.server.PliSMTP.smtp_DATA` repeats around it (``_reader``,
``_writer``, ``_set_post_data_state``, ``_call_handler_hook``). Tested with
aiosmtpd 1.4.6 (bounded below 1.5 in pyproject.toml) on CPython 3.11. Switch:
``[tuning] smtp_bulk_data`` (off: aiosmtpd's own DATA); the SMTP threat tests
(smuggling, size, line length, pipelining) run on both paths.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

__all__ = ["DataResult", "DataState", "read_data"]

_END = b"\r\n.\r\n"
_CHUNK = 256 * 1024


class DataState(enum.Enum):
    NOMINAL = "nominal"
    TOO_LONG = "too-long"  # a line over the limit: 500 5.5.2
    TOO_MUCH = "too-much"  # over the size limit: 552 5.3.4


@dataclass(frozen=True, slots=True)
class DataResult:
    state: DataState
    content: bytes


def _unstuff(raw: bytes) -> bytes:
    # RFC 5321 §4.5.2: a line starting with "." had one more "." added by the client.
    body = raw.replace(b"\r\n.", b"\r\n")
    return body[1:] if body.startswith(b".") else body


def _longest_line(data: bytes) -> int:
    return max(map(len, data.split(b"\r\n")), default=0)


async def read_data(
    reader: asyncio.StreamReader, *, size_limit: int | None, line_limit: int
) -> DataResult:
    """Read up to and including the end marker; ``line_limit`` counts the CRLF.

    Raises ConnectionResetError if the client goes away before the marker.
    """
    # The buffer starts with the CRLF that ended the DATA command, so an empty
    # message (".\r\n" first) is found by the same search as any other.
    acc = bytearray(b"\r\n")
    state = DataState.NOMINAL
    ceiling = size_limit + 5 if size_limit else None
    while True:
        chunk = await reader.read(_CHUNK)
        if not chunk:
            raise ConnectionResetError("connection closed during DATA")
        start = max(0, len(acc) - len(_END) + 1)
        acc += chunk
        idx = acc.find(_END, start)
        if idx >= 0:
            excess = bytes(acc[idx + len(_END) :])
            if excess:  # pipelined commands after the final dot go back to the reader
                reader._buffer[0:0] = excess  # type: ignore[attr-defined]  # no unread()
            del acc[idx + 2 :]
            break
        if ceiling is not None and len(acc) > ceiling:
            state = DataState.TOO_MUCH  # keep reading to the end, holding only a tail
            del acc[: len(acc) - len(_END)]
    if ceiling is not None and len(acc) > ceiling:  # it all came in the last read
        state = DataState.TOO_MUCH
    if state is not DataState.NOMINAL:
        return DataResult(state, b"")
    raw = bytes(acc[2:])
    if _longest_line(raw) > line_limit - 2:
        return DataResult(DataState.TOO_LONG, b"")
    return DataResult(DataState.NOMINAL, _unstuff(raw))
