"""Message disposition notifications (RFC 8098): read the ones that arrive, write APP ones.

Received MDNs are ordinary messages (delivered like any other) whose
``message/disposition-notification`` part pli also records, so that a
sender's software can ask "who acknowledged my message, how?". For APP
mailboxes (a DPI has no human to click "send receipt"), pli itself answers a
``Disposition-Notification-To`` request with ``processed`` once the message
is stored, or ``processed/error`` when it could not be used. The request is
honoured only when it names the envelope sender (RFC 8098 §2.1): an MDN is
never a way to make pli write to a third party.
"""

from __future__ import annotations

import datetime as dt
import email.message
import email.parser
import email.policy
import email.utils
import re
import secrets
from dataclasses import dataclass

__all__ = ["Ack", "MdnRequest", "build_mdn", "mdn_request", "parse_acks"]

_HEAD_LIMIT = 256 * 1024
_REPORT = re.compile(
    rb"(?im)^content-type:[^\r\n]*multipart/report[^\r\n]*"
    rb"(?:\r\n[ \t][^\r\n]*)*"
)


@dataclass(frozen=True, slots=True)
class Ack:
    original_message_id: str
    final_recipient: str
    disposition: str


@dataclass(frozen=True, slots=True)
class MdnRequest:
    notify: str  # the address to send the MDN to (= the envelope sender)
    message_id: str


def _head(data: bytes) -> bytes:
    end = data.find(b"\r\n\r\n")
    return (data if end < 0 else data[: end + 2])[:_HEAD_LIMIT]


def _headers(data: bytes) -> email.message.Message:
    return email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(_head(data))


def _address(value: str) -> str:
    return email.utils.parseaddr(value)[1].strip().lower()


def mdn_request(data: bytes, envelope_sender: str) -> MdnRequest | None:
    """The MDN a message asks for, if it asks one of its envelope sender."""
    head = _headers(data)
    dnt = head.get_all("Disposition-Notification-To") or []
    if len(dnt) != 1 or not envelope_sender:
        return None
    notify = _address(str(dnt[0]))
    if notify != envelope_sender.lower():
        return None
    message_id = str(head.get("Message-ID", "")).strip()
    return MdnRequest(notify=notify, message_id=message_id[:255])


def parse_acks(data: bytes) -> list[Ack]:
    """The acknowledgements an incoming MDN carries (empty for any other message)."""
    if not _REPORT.search(_head(data)) or b"disposition-notification" not in _head(data).lower():
        return []
    msg = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(data)
    acks: list[Ack] = []
    for part in msg.walk():
        if part.get_content_type() != "message/disposition-notification":
            continue
        payload = part.get_payload()
        first = payload[0] if isinstance(payload, list) and payload else payload
        fields_text = first.as_string() if isinstance(first, email.message.Message) else str(first)
        fields = email.parser.HeaderParser().parsestr(fields_text)
        original = str(fields.get("Original-Message-ID", "")).strip()
        recipient = str(fields.get("Final-Recipient", "")).partition(";")[2].strip().lower()
        disposition = str(fields.get("Disposition", "")).partition(";")[2].strip().lower()
        if original and disposition:
            acks.append(Ack(original[:255], recipient[:320], disposition[:64]))
    return acks


def build_mdn(
    *,
    reporting_ua: str,
    mailbox: str,
    request: MdnRequest,
    error: str = "",
    now: dt.datetime | None = None,
) -> bytes:
    """An RFC 8098 MDN from ``mailbox``: processed, or processed/error with the reason."""
    now = now or dt.datetime.now(dt.UTC)
    boundary = f"pli-mdn-{secrets.token_hex(8)}"
    disposition = "automatic-action/MDN-sent-automatically; processed" + ("/error" if error else "")
    human = (
        "Le message a ete recu et traite par le logiciel destinataire."
        if not error
        else f"Le message n'a pas pu etre traite : {error}"
    )
    lines = [
        f"From: <{mailbox}>",
        f"To: <{request.notify}>",
        "Subject: Accuse de traitement / Disposition notification",
        f"Date: {email.utils.format_datetime(now)}",
        f"Message-ID: <mdn.{secrets.token_hex(8)}@{reporting_ua}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=disposition-notification; "
        f'boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        human,
        "",
        f"--{boundary}",
        "Content-Type: message/disposition-notification",
        "",
        f"Reporting-UA: {reporting_ua}; pli",
        f"Final-Recipient: rfc822; {mailbox}",
        *([f"Original-Message-ID: {request.message_id}"] if request.message_id else []),
        f"Disposition: {disposition}",
        *([f"Error: {error}"] if error else []),
        "",
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode("ascii", "replace")
