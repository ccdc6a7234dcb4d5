"""Log event names, structlog set-up and redaction.

Events are constants so that operators can grep and alert on them. Every SMTP
and IMAP session binds a ``session_id`` with structlog contextvars, so each of
its lines carries it. No message content ever reaches a log: subjects,
attachment names and bodies count as content (MSSanté logging rules), and the
redaction processor drops such keys even if a caller passes them by mistake.
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = [
    "IMAP_COMMAND",
    "IMAP_CONNECT",
    "IMAP_DISCONNECT",
    "IMAP_LOGIN",
    "IMAP_PROTOCOL_ERROR",
    "INGEST_ABORTED",
    "INGEST_COMMITTED",
    "LISTENER_STARTED",
    "SERVER_STOPPED",
    "SMTP_CONNECT",
    "SMTP_DISCONNECT",
    "SMTP_EXCEPTION",
    "SMTP_PROXIED",
    "SMTP_REJECT",
    "SMTP_TEMPFAIL",
    "configure_logging",
    "new_session_id",
]

LISTENER_STARTED = "listener.started"
SERVER_STOPPED = "server.stopped"
SMTP_CONNECT = "smtp.connect"
SMTP_DISCONNECT = "smtp.disconnect"
SMTP_REJECT = "smtp.reject"
SMTP_TEMPFAIL = "smtp.tempfail"
SMTP_PROXIED = "smtp.proxied"
SMTP_EXCEPTION = "smtp.exception"
INGEST_COMMITTED = "ingest.committed"
INGEST_ABORTED = "ingest.aborted"
IMAP_CONNECT = "imap.connect"
IMAP_DISCONNECT = "imap.disconnect"
IMAP_LOGIN = "imap.login"
IMAP_COMMAND = "imap.command"
IMAP_PROTOCOL_ERROR = "imap.protocol_error"

# Keys that would carry content or secrets; dropped whatever the caller passes.
_FORBIDDEN_KEYS = frozenset(
    {"subject", "body", "content", "attachment", "filename", "password", "secret", "key"}
)


def new_session_id() -> str:
    """A short random id carried by every event of one connection and in replies."""
    return secrets.token_hex(6)


def _redact(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for k in list(event_dict):
        if k.lower() in _FORBIDDEN_KEYS:
            event_dict[k] = "[redacted]"
    return event_dict


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """JSON lines when not on a terminal, coloured key=value on a terminal."""
    out = stream or sys.stderr
    renderer: Any
    if out.isatty():
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
