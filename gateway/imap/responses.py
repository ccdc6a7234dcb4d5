"""IMAP response wire format: tagged replies, strings, and the one error→reply function.

Everything the server writes that carries text goes through here, so a reply
can never hold a bare CR/LF or control byte (no response injection from a
reflected client string) and an unexpected failure always becomes
``NO [SERVERBUG] ... (session <id>)``. It must never put ``str(exc)`` of an
unexpected exception on the wire, and never does I/O itself.
"""

from __future__ import annotations

import re

from gateway.base.errors import (
    Conflict,
    InvalidInput,
    MailboxExists,
    MailboxNotFound,
    MessageNotFound,
    NotFound,
    PermissionDenied,
    PliError,
    Refused,
    is_temporary,
)

__all__ = ["clean_text", "error_reply", "expected", "quote", "tagged"]

_UNSAFE_TEXT = re.compile(r"[^\x20-\x7e]")
_QUOTABLE = re.compile(rb"[\x20-\x7e]*")
_SAFE_TAG = re.compile(r"[\x21-\x7e]{1,64}", re.ASCII)


def clean_text(text: str, limit: int = 200) -> str:
    """Human-readable response text: printable ASCII only, bounded (RFC 3501 §9 ``text``)."""
    return _UNSAFE_TEXT.sub("?", text)[:limit]


def tagged(tag: str, status: str, text: str) -> bytes:
    """``<tag> OK|NO|BAD <text>`` CRLF; ``text`` may start with a ``[CODE]``."""
    if not _SAFE_TAG.fullmatch(tag):  # never echo a tag that could break framing
        tag = "*"
    return f"{tag} {status} {clean_text(text, 400)}\r\n".encode("ascii")


def quote(value: str | bytes) -> bytes:
    """An IMAP string: quoted when it is plain printable ASCII, else a literal (§4.3)."""
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if _QUOTABLE.fullmatch(raw):
        return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(raw) + raw


def error_reply(tag: str, exc: BaseException, session_id: str) -> bytes:
    """The tagged ``NO`` for a failure a command could not handle (RFC 5530 codes).

    Not-found, exists and permission errors get their response code; a
    :class:`~gateway.base.errors.Refused` carries text meant for the peer; a
    temporary failure (of any package) tells the client to retry; anything
    else is a bug and says only that, with the session id so the log lines
    can be found.
    """
    if isinstance(exc, MailboxNotFound):
        return tagged(tag, "NO", "[NONEXISTENT] No such mailbox")
    if isinstance(exc, MailboxExists):
        return tagged(tag, "NO", "[ALREADYEXISTS] Mailbox exists")
    if isinstance(exc, PermissionDenied):
        return tagged(tag, "NO", f"[{exc.code}] {exc.text}")
    if isinstance(exc, MessageNotFound):
        return tagged(tag, "NO", "[EXPUNGEISSUED] Message expunged meanwhile")
    if is_temporary(exc):
        text = exc.text if isinstance(exc, PliError) else "Temporary failure"
        return tagged(tag, "NO", f"[UNAVAILABLE] {text}, try again later (session {session_id})")
    if isinstance(exc, Refused | InvalidInput):
        return tagged(tag, "NO", f"{exc.text} (session {session_id})")
    return tagged(tag, "NO", f"[SERVERBUG] Internal error (session {session_id})")


def expected(exc: BaseException) -> bool:
    """Whether a failure is part of normal operation (no error log line for it)."""
    return isinstance(exc, Refused | InvalidInput | NotFound | Conflict)
