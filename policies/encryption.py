"""Encryption ``force`` at RCPT: a remote recipient pli cannot encrypt to is refused at once.

The core asks the directory for the recipient's certificates (S/MIME, RFC
8551); this module turns what it found into the :class:`Decision` — accepted,
refused with the precise reason, or deferred when the directory cannot answer
— so the sender learns it at RCPT, not in a bounce (MSSanté operators must
encrypt between them).
"""

from __future__ import annotations

from policies import codes, reasons
from policies.model import Decision, Verdict

__all__ = ["CERTIFICATE_PROBLEMS", "directory_unavailable", "remote_recipient"]

_RULE = "encryption.force"
# What the directory's certificate check can report, and why the recipient is refused.
CERTIFICATE_PROBLEMS = {
    "no-certificate": (
        reasons.RECIPIENT_NO_CERTIFICATE,
        "has no encryption certificate in the directory",
    ),
    "revoked": (reasons.RECIPIENT_CERT_REVOKED, "has a revoked certificate"),
    "expired": (reasons.RECIPIENT_CERT_EXPIRED, "has an expired certificate"),
    "unusable": (reasons.RECIPIENT_CERT_UNUSABLE, "has no certificate usable for encryption"),
}


def remote_recipient(recipient: str, *, has_certificate: bool, problem: str) -> Decision:
    """The RCPT decision under ``force`` for a remote recipient, given the check's result."""
    if has_certificate:
        return Decision(
            Verdict.ACCEPT,
            reasons.ACCEPTED,
            codes.C250_OK,
            codes.X_DEST_VALID,
            "Recipient OK, queued for delivery (encrypted)",
            _RULE,
        )
    reason, why = CERTIFICATE_PROBLEMS[problem]
    # RFC 3463 §3.8: 5.7.x security or policy status; the text names the recipient.
    return Decision(
        Verdict.REJECT,
        reason,
        codes.C550_MAILBOX_UNAVAILABLE,
        codes.X_DELIVERY_NOT_AUTHORIZED,
        f"Encryption required: <{recipient}> {why}",
        _RULE,
    )


def directory_unavailable() -> Decision:
    """The certificates cannot be looked up now: try again later, never refuse for good."""
    return Decision.directory_unavailable(_RULE)
