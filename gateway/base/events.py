"""Log event names, structlog set-up and redaction.

Events are constants so that operators can grep and alert on them. Every SMTP
and IMAP session binds a ``session_id`` with structlog contextvars, so each of
its lines carries it. No message content ever reaches a log: subjects,
attachment names and bodies count as content (MSSanté logging rules), and the
redaction processor replaces such keys' values with ``[redacted]`` even if a
caller passes them by mistake.
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = [
    "AUDIT_CHECKPOINTS_DISABLED",
    "HTTP_AUDIT_FAILED",
    "HTTP_DEPENDENCY_UNAVAILABLE",
    "HTTP_EXCEPTION",
    "HTTP_OIDC_JWKS_UNAVAILABLE",
    "HTTP_OIDC_REFUSED",
    "HTTP_SEND_REFUSED",
    "HTTP_SEND_TEMPFAIL",
    "HTTP_STARTED",
    "IMAP_COMMAND",
    "IMAP_CONNECT",
    "IMAP_DISCONNECT",
    "IMAP_LOGIN",
    "IMAP_PROTOCOL_ERROR",
    "INGEST_ABORTED",
    "INGEST_COMMITTED",
    "INGEST_REFUSAL_UNAUDITED",
    "LISTENER_STARTED",
    "MDN_NOT_SENT",
    "OUTBOUND_DEFERRED",
    "OUTBOUND_DELIVERED",
    "OUTBOUND_DSN_DEFERRED",
    "OUTBOUND_DSN_UNDELIVERABLE",
    "OUTBOUND_FAILED",
    "OUTBOUND_ROUND_FAILED",
    "SERVER_STOPPED",
    "SERVER_TUNING",
    "SMIME_CRL_UNREADABLE",
    "SMIME_NOTARY_MISSING",
    "SMIME_RELOADED",
    "SMIME_RELOAD_FAILED",
    "SMTP_CONNECT",
    "SMTP_DISCONNECT",
    "SMTP_EXCEPTION",
    "SMTP_PROXIED",
    "SMTP_REJECT",
    "SMTP_TEMPFAIL",
    "configure_logging",
    "new_session_id",
]

# Each name is "area.what", the area being the first word of the constant. The
# directory and the policy engine cannot import the gateway: their events live in
# directory/events.py and policies/events.py, under the same rule; the vault logs
# nothing. tests/test_log_events.py fails on a literal event name anywhere in the
# product code and on a name used twice.

# -- process and listeners (gateway/app)
LISTENER_STARTED = "listener.started"  # one per bound listener: name, port
SERVER_STOPPED = "server.stopped"
SERVER_TUNING = "server.tuning"  # which [tuning] items this process runs with
AUDIT_CHECKPOINTS_DISABLED = "audit.checkpoints_disabled"  # no audit signing key (pli init)

# -- SMTP front end: one connect/disconnect pair per session, a line per refusal
SMTP_CONNECT = "smtp.connect"
SMTP_DISCONNECT = "smtp.disconnect"
SMTP_REJECT = "smtp.reject"  # stage, reason: a permanent refusal (5xx)
SMTP_TEMPFAIL = "smtp.tempfail"  # stage, reason: a temporary one (4xx)
SMTP_PROXIED = "smtp.proxied"  # the PROXY header's client address, trusted
SMTP_EXCEPTION = "smtp.exception"  # a bug: answered 451 4.3.0, traceback logged

# -- IMAP front end
IMAP_CONNECT = "imap.connect"
IMAP_DISCONNECT = "imap.disconnect"
IMAP_LOGIN = "imap.login"  # result: ok, fail, throttled, authz-refused
IMAP_COMMAND = "imap.command"  # debug level; result=exception for a bug (SERVERBUG)
IMAP_PROTOCOL_ERROR = "imap.protocol_error"

# -- HTTP API front end
HTTP_STARTED = "http.started"
HTTP_SEND_REFUSED = "http.send_refused"  # POST /messages refused (problem code, reason)
HTTP_SEND_TEMPFAIL = "http.send_tempfail"  # POST /messages failed temporarily
HTTP_AUDIT_FAILED = "http.audit_failed"  # the answer went out, its audit entry did not
HTTP_OIDC_JWKS_UNAVAILABLE = "http.oidc_jwks_unavailable"  # the issuer's keys unreachable
HTTP_OIDC_REFUSED = "http.oidc_refused"  # a bearer token failed its checks
HTTP_DEPENDENCY_UNAVAILABLE = "http.dependency_unavailable"  # answered 503
HTTP_EXCEPTION = "http.exception"  # a bug: answered 500 with the incident id

# -- the message core: ingest, MDN, S/MIME material
INGEST_COMMITTED = "ingest.committed"  # msg_ref, size, recipients, queued
INGEST_ABORTED = "ingest.aborted"  # msg_ref, reason: nothing of the message was kept
INGEST_REFUSAL_UNAUDITED = "ingest.refusal_unaudited"  # a refusal stands; its audit failed
MDN_NOT_SENT = "mdn.not_sent"  # an automatic receipt for an APP mailbox could not go out
SMIME_RELOADED = "smime.reloaded"  # keys, trust anchors and notary re-read (SIGHUP)
SMIME_RELOAD_FAILED = "smime.reload_failed"  # the previous material stays in use
SMIME_CRL_UNREADABLE = "smime.crl_unreadable"  # file: one CRL skipped
SMIME_NOTARY_MISSING = "smime.notary_missing"  # no receipts until pli init makes one

# -- outbound queue (gateway/outbound)
OUTBOUND_DELIVERED = "outbound.delivered"
OUTBOUND_DEFERRED = "outbound.deferred"  # attempts, retry_in
OUTBOUND_FAILED = "outbound.failed"  # bounced (5xx or expired); a DSN went to the sender
OUTBOUND_DSN_DEFERRED = "outbound.dsn_deferred"  # the DSN could not be committed: retried
OUTBOUND_DSN_UNDELIVERABLE = "outbound.dsn_undeliverable"  # the sender left the directory
OUTBOUND_ROUND_FAILED = "outbound.round_failed"  # the database failed during a round

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
