"""Delivery status notifications (RFC 3464) for the outbound queue: failed or delayed.

A DSN goes back to the original sender (a local user: only authenticated
submissions are queued) through the normal ingest path, with the null
reverse-path so that it can never loop. It carries the remote server's reply
and the original message's header section (``text/rfc822-headers``), never
its body: the sender already has the content in its Sent mailbox.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DsnRecipient", "build_dsn"]

_MAX_HEADERS = 64 * 1024


@dataclass(frozen=True, slots=True)
class DsnRecipient:
    address: str
    action: str  # "failed" or "delayed"
    status: str  # enhanced status code, e.g. 5.1.1 or 4.4.1
    diagnostic: str  # the remote reply, or what went wrong locally
    remote_mta: str = ""


def _header_section(original: bytes | bytearray) -> bytes:
    end = original.find(b"\r\n\r\n")
    return bytes(original[: min(len(original) if end < 0 else end + 2, _MAX_HEADERS)])


def _clean(text: str) -> str:
    return " ".join(text.replace("\r", " ").replace("\n", " ").split())[:400]


def build_dsn(
    *,
    reporting_mta: str,
    sender: str,
    msg_ref: str,
    arrival: dt.datetime,
    recipients: Sequence[DsnRecipient],
    original: bytes | bytearray,
    now: dt.datetime | None = None,
) -> bytes:
    """The DSN message (CRLF line ends), ready for ingest with MAIL FROM:<>."""
    now = now or dt.datetime.now(dt.UTC)
    boundary = f"pli-dsn-{secrets.token_hex(8)}"
    failed = any(r.action == "failed" for r in recipients)
    subject = (
        "Non remis : echec de distribution / Undelivered Mail"
        if failed
        else "Remise retardee / Delivery delayed"
    )
    human = [
        "Ceci est un message automatique de la passerelle pli.",
        "This is an automatic message from the pli gateway.",
        "",
        (
            "Votre message n'a pas pu etre remis aux destinataires suivants :"
            if failed
            else "Votre message n'a pas encore ete remis ; de nouvelles tentatives suivront :"
        ),
        (
            "Your message could not be delivered to:"
            if failed
            else "Your message has not been delivered yet; delivery will be retried:"
        ),
        "",
        *(f"  <{r.address}>: {_clean(r.diagnostic)}" for r in recipients),
        "",
        f"Reference : {msg_ref}",
    ]
    per_message = [
        f"Reporting-MTA: dns; {reporting_mta}",
        f"X-Pli-Message-Ref: {msg_ref}",
        f"Arrival-Date: {email.utils.format_datetime(arrival)}",
    ]
    per_rcpt: list[str] = []
    for r in recipients:
        per_rcpt += [
            "",
            f"Final-Recipient: rfc822; {r.address}",
            f"Action: {r.action}",
            f"Status: {r.status}",
        ]
        if r.remote_mta:
            per_rcpt.append(f"Remote-MTA: dns; {r.remote_mta}")
        if r.diagnostic:
            per_rcpt.append(f"Diagnostic-Code: smtp; {_clean(r.diagnostic)}")
        per_rcpt.append(f"Last-Attempt-Date: {email.utils.format_datetime(now)}")
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{sender}>",
        f"Subject: {subject}",
        f"Date: {email.utils.format_datetime(now)}",
        f"Message-ID: <dsn.{msg_ref}.{secrets.token_hex(6)}@{reporting_mta}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        *human,
        "",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        *per_message,
        *per_rcpt,
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "",
    ]
    head = "\r\n".join(lines).encode("ascii", "replace") + b"\r\n"
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + _header_section(original) + tail
