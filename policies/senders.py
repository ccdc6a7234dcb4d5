"""Who may use a sender address: the authenticated user's own or delegated mailboxes, and,
between operators, only the domains the peer's TLS client certificate names.

Both answers are :class:`Decision` values like every other stage, so the
front ends only render them and the core audits the refusals. The
certificate check is pure (the names come from the front end's TLS session);
the ownership check asks the directory and defers when it cannot answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from directory.base import (
    Directory,
    DirectoryUnavailable,
    InvalidAddress,
    may_act_for,
    normalize_address,
)
from policies import codes, reasons
from policies.model import Decision, Verdict

__all__ = ["check_client_certificate", "check_submitter", "name_matches"]


def name_matches(domain: str, names: Sequence[str]) -> bool:
    """RFC 6125 style: an exact name, or a wildcard standing for exactly one label."""
    domain = domain.lower().rstrip(".")
    for name in names:
        if name == domain:
            return True
        if name.startswith("*.") and domain.count(".") >= 2 and domain.split(".", 1)[1] == name[2:]:
            return True
    return False


def check_client_certificate(names: Sequence[str], address: str, *, required: bool) -> Decision:
    """Mutual TLS between operators: the certificate presented must name the sender's
    domain; with ``required``, a peer that presented none is refused (RFC 4954 530)."""
    rule = "smtp.client_ca_file"
    if not names:
        if required:
            return Decision(
                Verdict.REJECT,
                reasons.CLIENT_CERTIFICATE,
                codes.C530_AUTH_REQUIRED,
                codes.X_AUTH_REQUIRED,
                "A client certificate is required on this port",
                "smtp.require_client_cert",
            )
        return Decision.accept("Sender OK", codes.X_SENDER_VALID, rule)
    if not address:  # the null sender of DSNs/MDNs: the certificate already vouches
        return Decision.accept("Sender OK", codes.X_SENDER_VALID, rule)
    try:
        domain = normalize_address(address).rpartition("@")[2]
    except InvalidAddress:  # the sender stage names the syntax error
        return Decision.accept("Sender OK", codes.X_SENDER_VALID, rule)
    if not name_matches(domain, names):
        return Decision(
            Verdict.REJECT,
            reasons.CLIENT_CERTIFICATE,
            codes.C550_MAILBOX_UNAVAILABLE,
            codes.X_DELIVERY_NOT_AUTHORIZED,
            "Sender domain does not match the client certificate",
            rule,
        )
    return Decision.accept("Sender OK", codes.X_SENDER_VALID, rule)


async def check_submitter(directory: Directory, user: str, address: str) -> Decision:
    """RFC 6409 §6.1: a submission's sender is the user's own address or (MSSanté) a
    shared ORG/APP/CAB mailbox the directory delegates to them."""
    rule = "submission.sender"
    try:
        sender = normalize_address(address)
    except InvalidAddress:
        sender = ""
    try:
        allowed = bool(user) and bool(sender) and await may_act_for(directory, user, sender)
    except DirectoryUnavailable:
        return Decision.directory_unavailable(rule)
    if not allowed:
        return Decision(
            Verdict.REJECT,
            reasons.SENDER_NOT_OWNED,
            codes.C553_MAILBOX_NAME_NOT_ALLOWED,
            codes.X_DELIVERY_NOT_AUTHORIZED,
            "Sender address not owned by the authenticated user",
            rule,
        )
    return Decision.accept("Sender OK", codes.X_SENDER_VALID, rule)
