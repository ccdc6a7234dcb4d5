"""Reason codes: the one list of why pli accepts, refuses or defers.

Each code is stable (it appears in audit entries, logs and, later, metrics)
and maps to exactly one SMTP reply in ``policies/model.py``.
"""

from __future__ import annotations

__all__ = [
    "ACCEPTED",
    "DIRECTORY_UNAVAILABLE",
    "INVALID_ADDRESS",
    "RECIPIENT_UNKNOWN",
    "RELAY_DENIED",
    "SENDER_NOT_TRUSTED",
    "TOO_MANY_RECIPIENTS",
]

ACCEPTED = "accepted"
RECIPIENT_UNKNOWN = "recipient-unknown"
RELAY_DENIED = "relay-denied"
SENDER_NOT_TRUSTED = "sender-not-trusted"
INVALID_ADDRESS = "invalid-address"
DIRECTORY_UNAVAILABLE = "directory-unavailable"
TOO_MANY_RECIPIENTS = "too-many-recipients"
