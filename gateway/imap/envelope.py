"""The FETCH ENVELOPE structure (RFC 3501 §7.4.2), computed from a message header.

Pure: header bytes in, the parenthesised envelope out. Header values are
returned raw (RFC 2047 encoded-words stay encoded, as the RFC asks); any value
that is not plain printable ASCII goes out as a literal so no byte of a
message can break the response framing. It never decodes or logs content.
"""

from __future__ import annotations

import email.utils
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

from gateway.imap.responses import quote

__all__ = ["envelope"]

_NIL = b"NIL"


def _nstring(value: str | None) -> bytes:
    # Latin-1 round-trips every header byte unchanged (8-bit headers stay as sent).
    return _NIL if value is None else quote(value.encode("latin-1"))


def _unfold(value: str | None) -> str | None:
    if value is None:
        return None
    return "".join(value.splitlines()).strip()


def _addresses(header: Message, name: str) -> bytes:
    values = header.get_all(name)
    if not values:
        return _NIL
    parts: list[bytes] = []
    for display, addr in email.utils.getaddresses([_unfold(str(v)) or "" for v in values]):
        if not addr and not display:
            continue
        mailbox, at, host = addr.rpartition("@")
        if not at:
            mailbox, host = addr, ""
        parts.append(
            b"("
            + b" ".join([_nstring(display or None), _NIL, _nstring(mailbox), _nstring(host)])
            + b")"
        )
    return b"(" + b"".join(parts) + b")" if parts else _NIL


def envelope(header: bytes) -> bytes:
    """``ENVELOPE`` value: (date subject from sender reply-to to cc bcc in-reply-to message-id)."""
    msg = HeaderParser(policy=compat32).parsestr(header.decode("latin-1"))

    def field(name: str) -> bytes:
        raw = msg.get(name)
        return _nstring(_unfold(str(raw)) if raw is not None else None)

    sender = "Sender" if msg.get("Sender") else "From"
    reply_to = "Reply-To" if msg.get("Reply-To") else "From"  # §7.4.2: default to From
    items = [
        field("Date"),
        field("Subject"),
        _addresses(msg, "From"),
        _addresses(msg, sender),
        _addresses(msg, reply_to),
        _addresses(msg, "To"),
        _addresses(msg, "Cc"),
        _addresses(msg, "Bcc"),
        field("In-Reply-To"),
        field("Message-ID"),
    ]
    return b"(" + b" ".join(items) + b")"
