"""Every SMTP reply pli writes itself: decisions rendered, errors mapped, the fixed ones named.

One function per kind of outcome, so the choice between a permanent and a
temporary answer is made here and nowhere else in the SMTP front end: a
:class:`~policies.model.Decision` carries its exact reply; an error gets the
reply of its place in the hierarchy (``gateway.base.errors``), with pli's
message id so a complaint leads to the log lines; anything unexpected is
``451 4.3.0`` — never ``str(exc)``, never a permanent code.
"""

from __future__ import annotations

from directory.base import DirectoryUnavailable
from gateway.base.errors import (
    ContentRefused,
    LoginThrottled,
    OutboundNotSecured,
    PliError,
    Refused,
    is_temporary,
)
from gateway.smime.cms import CmsTooLarge, SmimeError
from gateway.xdm.errors import XdmError
from policies import codes as c
from policies import reasons
from policies.model import Decision

__all__ = [
    "BAD_BASE64",
    "BAD_PLAIN",
    "BARE_CR_LF",
    "DATA_SYNTAX",
    "INTERNAL_ERROR",
    "LINE_TOO_LONG",
    "MESSAGE_TOO_BIG",
    "NEED_RCPT",
    "START_DATA",
    "TOO_MANY_RECIPIENTS",
    "accepted",
    "for_decision",
    "for_error",
    "reply",
]


def reply(code: int, enhanced: str, text: str) -> str:
    """RFC 5321 §4.2 with the RFC 2034 enhanced status code pli always advertises."""
    return f"{code} {enhanced} {text}"


BARE_CR_LF = reply(
    c.C554_TRANSACTION_FAILED,
    c.X_MEDIA_NOT_SUPPORTED,
    "Message contains a bare CR or LF (RFC 5321 2.3.8)",
)
TOO_MANY_RECIPIENTS = reply(
    c.C452_INSUFFICIENT_STORAGE, c.X_TOO_MANY_RECIPIENTS, "Too many recipients"
)
INTERNAL_ERROR = reply(c.C451_LOCAL_ERROR, c.X_OTHER_TEMP, "Internal error, try again later")
# DATA (RFC 5321 §4.1.1.4, §4.5.3.1.6-7) and AUTH (RFC 4954 §4) answers pli writes itself.
NEED_RCPT = reply(c.C503_BAD_SEQUENCE, c.X_INVALID_COMMAND, "Error: need RCPT command")
DATA_SYNTAX = reply(c.C501_BAD_ARGUMENTS, "5.5.4", "Syntax: DATA")
START_DATA = f"{c.C354_START_DATA} End data with <CR><LF>.<CR><LF>"
LINE_TOO_LONG = reply(
    c.C500_SYNTAX_ERROR, c.X_SYNTAX_ERROR, "Line too long (see RFC 5321 4.5.3.1.6)"
)
MESSAGE_TOO_BIG = reply(c.C552_STORAGE_EXCEEDED, c.X_MESSAGE_TOO_BIG, "Message too big for system")
BAD_BASE64 = reply(c.C501_BAD_ARGUMENTS, c.X_SYNTAX_ERROR, "Cannot decode base64")
BAD_PLAIN = reply(c.C501_BAD_ARGUMENTS, c.X_SYNTAX_ERROR, "Malformed PLAIN response")

# Refusals of a kind, most specific first: (class, basic code, enhanced code).
_REFUSALS: tuple[tuple[type[PliError], int, str], ...] = (
    (CmsTooLarge, c.C552_STORAGE_EXCEEDED, c.X_MESSAGE_TOO_BIG),
    (SmimeError, c.C554_TRANSACTION_FAILED, c.X_CRYPTO_FAILURE),  # RFC 3463 5.7.5
    (XdmError, c.C550_MAILBOX_UNAVAILABLE, c.X_MEDIA_NOT_SUPPORTED),
    (OutboundNotSecured, c.C554_TRANSACTION_FAILED, c.X_DELIVERY_NOT_AUTHORIZED),
    (ContentRefused, c.C554_TRANSACTION_FAILED, c.X_MEDIA_NOT_SUPPORTED),
    (Refused, c.C550_MAILBOX_UNAVAILABLE, c.X_DELIVERY_NOT_AUTHORIZED),
)


def for_decision(decision: Decision) -> str:
    return reply(decision.smtp_code, decision.enhanced_code, decision.text)


def accepted(ref: str) -> str:
    """The 250 that follows a durable commit; the id leads to the message's log lines."""
    return reply(c.C250_OK, c.X_OK, f"OK id={ref}")


def for_error(exc: BaseException, ref: str | None = None) -> str:
    """The reply to a failure: permanent only for a refusal of a known kind."""
    suffix = f" [{ref}]" if ref else ""
    if isinstance(exc, LoginThrottled):
        return reply(c.C454_TEMP_AUTH_FAILURE, c.X_TEMP_AUTH, exc.text + suffix)
    if isinstance(exc, DirectoryUnavailable) or (
        isinstance(exc, PliError) and exc.reason == reasons.DIRECTORY_UNAVAILABLE
    ):
        return reply(
            c.C451_LOCAL_ERROR,
            c.X_DIRECTORY_TEMP,
            "Directory unavailable, try again later" + suffix,
        )
    if isinstance(exc, PliError) and not is_temporary(exc):
        for kind, code, enhanced in _REFUSALS:
            if isinstance(exc, kind):
                return reply(code, enhanced, exc.text + suffix)
    if isinstance(exc, PliError):  # temporary, or a kind no SMTP client can act on
        return reply(c.C451_LOCAL_ERROR, c.X_OTHER_TEMP, exc.text + suffix)
    return reply(c.C451_LOCAL_ERROR, c.X_OTHER_TEMP, "Internal error, try again later" + suffix)
