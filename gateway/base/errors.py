"""Errors that cross package boundaries, each carrying the protocol reply it maps to.

Front ends never format ``str(exc)`` for the peer: they use the reply stored
here, so internal details (paths, SQL, stack) never leak, and the choice
between a permanent (5xx) and a temporary (4xx) answer is made once, where the
failure is understood.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "PliError",
    "Rejected",
    "TemporaryFailure",
    "UsageError",
]


class PliError(Exception):
    """Base of pli's own errors: ``smtp_code``/``enhanced`` say how SMTP answers."""

    smtp_code: int = 451
    enhanced: str = "4.3.0"

    def __init__(self, text: str, *, reason: str = "internal") -> None:
        super().__init__(text)
        self.text = text
        self.reason = reason

    def smtp_reply(self, msg_ref: str | None = None) -> str:
        suffix = f" [{msg_ref}]" if msg_ref else ""
        return f"{self.smtp_code} {self.enhanced} {self.text}{suffix}"


class Rejected(PliError):
    """A permanent refusal: the client must not retry the same thing."""

    def __init__(
        self, text: str, *, reason: str, smtp_code: int = 550, enhanced: str = "5.7.1"
    ) -> None:
        super().__init__(text, reason=reason)
        self.smtp_code = smtp_code
        self.enhanced = enhanced


class TemporaryFailure(PliError):
    """A dependency failed: the client should try again later (never a 5xx)."""

    def __init__(
        self, text: str, *, reason: str, smtp_code: int = 451, enhanced: str = "4.3.0"
    ) -> None:
        super().__init__(text, reason=reason)
        self.smtp_code = smtp_code
        self.enhanced = enhanced


class LoginThrottled(TemporaryFailure):
    """Too many failed logins for this address or client: refused before any check."""

    def __init__(self) -> None:
        super().__init__("Too many failed logins, try again later", reason="login-throttled",
                         smtp_code=454, enhanced="4.7.0")


class ConfigError(PliError):
    """The configuration is invalid; the message names the offending key."""


class UsageError(PliError):
    """The command line is wrong (exit code 2)."""
