"""The trace fields pli puts on top of every message it accepts (RFC 5321 §4.4).

``Return-Path`` at final delivery, one ``Received`` line naming the client,
its TLS and whether it authenticated (RFC 3848: ESMTP, ESMTPS, ESMTPSA), and a
``Message-ID`` when the message has none (RFC 6409 §8.3: MDNs and DSNs need
one; it starts with pli's reference so that answers lead back to it). Pure:
bytes in, bytes out.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import secrets

from gateway.core.model import Origin

__all__ = ["trace_headers"]

_MESSAGE_ID = re.compile(rb"(?im)^message-id[ \t]*:")


def trace_headers(
    data: bytes,
    *,
    origin: Origin,
    sender: str,
    ref: str,
    hostname: str,
    now: dt.datetime | None = None,
) -> bytes:
    """The header lines to put before ``data`` (CRLF-terminated, ASCII)."""
    stamp = email.utils.format_datetime(now or dt.datetime.now(dt.UTC))
    header_end = data.find(b"\r\n\r\n")
    head = data if header_end < 0 else data[: header_end + 2]
    message_id = (
        ""
        if _MESSAGE_ID.search(head)
        else f"Message-ID: <{ref}.{secrets.token_hex(6)}@{hostname}>\r\n"
    )
    tls = f" (using {origin.tls})" if origin.tls else ""
    helo = origin.helo or "unknown"
    # RFC 3848: S for TLS, A for an authenticated submission.
    proto = "ESMTP" + ("S" if origin.tls else "") + ("A" if origin.authenticated_as else "")
    return (
        f"Return-Path: <{sender}>\r\n"
        f"Received: from {helo} ([{origin.remote}]){tls}\r\n"
        f"\tby {hostname} (pli) with {proto} id {ref};\r\n"
        f"\t{stamp}\r\n"
        f"{message_id}"
    ).encode("ascii", "replace")
