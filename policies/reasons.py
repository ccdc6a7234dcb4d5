"""Reason codes: the one list of why pli accepts, refuses or defers.

Each code is stable (it appears in audit entries, logs and, later, metrics)
and travels in a :class:`~policies.model.Decision` with its exact reply
(``policies/codes.py`` names the codes).
"""

from __future__ import annotations

__all__ = [
    "ACCEPTED",
    "ATTACHMENT_TYPE",
    "CLIENT_CERTIFICATE",
    "DIRECTORY_UNAVAILABLE",
    "HEADER_TOO_BIG",
    "INVALID_ADDRESS",
    "LOCAL_POLICY",
    "MESSAGE_TOO_BIG",
    "RATE_LIMITED",
    "RECIPIENT_CERT_EXPIRED",
    "RECIPIENT_CERT_REVOKED",
    "RECIPIENT_CERT_UNUSABLE",
    "RECIPIENT_NOT_TRUSTED",
    "RECIPIENT_NO_CERTIFICATE",
    "RECIPIENT_UNKNOWN",
    "RELAY_DENIED",
    "SENDER_NOT_OWNED",
    "SENDER_NOT_TRUSTED",
    "SENDER_UNKNOWN",
    "TOO_MANY_PARTS",
    "TOO_MANY_RECIPIENTS",
    "XDM_INVALID",
    "XDM_UNSAFE",
]

ACCEPTED = "accepted"
RECIPIENT_UNKNOWN = "recipient-unknown"
RELAY_DENIED = "relay-denied"
SENDER_NOT_TRUSTED = "sender-not-trusted"
INVALID_ADDRESS = "invalid-address"
DIRECTORY_UNAVAILABLE = "directory-unavailable"
TOO_MANY_RECIPIENTS = "too-many-recipients"
SENDER_UNKNOWN = "sender-unknown"
RATE_LIMITED = "rate-limited"
MESSAGE_TOO_BIG = "message-too-big"
TOO_MANY_PARTS = "too-many-parts"
ATTACHMENT_TYPE = "attachment-type"
LOCAL_POLICY = "local-policy"
RECIPIENT_NOT_TRUSTED = "recipient-not-trusted"
HEADER_TOO_BIG = "header-too-big"
SENDER_NOT_OWNED = "sender-not-owned"  # a submission's sender is not the user's (RFC 6409)
CLIENT_CERTIFICATE = "client-certificate"  # mutual TLS: none presented, or another domain
XDM_INVALID = "xdm-invalid"  # an IHE XDM package whose metadata, hashes or INS do not hold
XDM_UNSAFE = "xdm-unsafe"  # zip bomb, path traversal, XXE: refused before it is read
# Encryption "force" (RFC 8551, MSSante): a remote recipient pli cannot encrypt to.
RECIPIENT_NO_CERTIFICATE = "recipient-no-certificate"
RECIPIENT_CERT_REVOKED = "recipient-cert-revoked"
RECIPIENT_CERT_EXPIRED = "recipient-cert-expired"
RECIPIENT_CERT_UNUSABLE = "recipient-cert-unusable"  # not RSA, or not a certificate
