"""Pure message surgery for the S/MIME path: header sections, the Authentication-Results
field pli writes, and the attachments that notarisation receipts cover.

This module owns the byte-level rules shared by ``gateway/core/secure.py`` (which
writes presented and outbound messages and receipts) and ``gateway/core/proof.py``
(which must find the same attachment by the same index twenty years later): how
a message splits into outer header fields and its MIME entity, how a decrypted
entity is put back under the outer fields, and which MIME parts count as
attachments. It is pure (bytes in, bytes out) and must never log, never
decode a part it is not asked for, and never expose attachment names.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import re
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.core import mime

__all__ = [
    "MESSAGE",
    "ORIGINAL",
    "OUTBOUND",
    "RECEIPT",
    "RECEIPTS",
    "RECEIPT_ORIGINAL",
    "RECEIPT_PART",
    "SmimeOutcome",
    "attachment_parts",
    "authentication_results",
    "header_fields",
    "outer_and_entity",
    "rewrap",
    "split_message",
    "strip_forged_results",
]

# message_evidence.kind: what a stored evidence object is (gateway/mailstore/tables.py).
MESSAGE = "message"  # the main object (also reachable by message rows; not for remote-only)
ORIGINAL = "original"  # the message as received, when what mailboxes show differs
RECEIPT = "receipt"  # notarisation of the main object (what IMAP and the API show)
RECEIPT_ORIGINAL = "receipt-original"  # notarisation of the original, when kept
RECEIPT_PART = "receipt-part"  # notarisation of one attachment's decoded bytes
OUTBOUND = "outbound"  # the signed/encrypted copy the outbound queue sends
RECEIPTS = frozenset({RECEIPT, RECEIPT_ORIGINAL, RECEIPT_PART})  # what gateway/core/proof checks

_BLANK = re.compile(rb"\r?\n\r?\n")
_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")
_AUTHSERV = re.compile(rb"(?is)^authentication-results[ \t]*:[ \t\r\n]*([^;\s]+)")


@dataclass(frozen=True, slots=True)
class SmimeOutcome:
    """What the inbound S/MIME check found, for the header, the audit entry and the proof.

    ``result`` follows RFC 7281 (the ``smime`` method of Authentication-Results):
    ``none`` (not S/MIME), ``pass``, ``fail``, ``neutral`` (encrypted to a key the
    gateway does not hold, or a CMS kind it does not process).
    """

    result: str = "none"
    reason: str = ""
    signer: str = ""
    from_matches: bool = False
    decrypted: bool = False
    revocation: str = ""


def split_message(data: bytes) -> tuple[bytes, bytes]:
    """(header section with its final line end, body); the blank line belongs to neither."""
    m = _BLANK.search(data)
    if m is None:
        return data, b""
    end = m.start() + (2 if data[m.start() : m.start() + 2] == b"\r\n" else 1)
    return data[:end], data[m.end() :]


def header_fields(head: bytes) -> list[tuple[str, bytes]]:
    """Each field of a header section as (lower-case name, raw bytes with folding and CRLF)."""
    fields: list[tuple[str, bytes]] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:  # RFC 5322 §2.2.3: folded continuation
            name, raw = fields[-1]
            fields[-1] = (name, raw + line)
            continue
        m = _FIELD_NAME.match(line)
        name = m.group(1).decode("ascii").lower() if m else ""
        fields.append((name, line))
    return fields


def _is_mime(name: str) -> bool:
    # RFC 2045 §3: the fields that describe the entity, not the message.
    return name.startswith("content-") or name == "mime-version"


def _crlf(raw: bytes) -> bytes:
    return raw if raw.endswith(b"\r\n") else raw.rstrip(b"\r\n") + b"\r\n"


def outer_and_entity(data: bytes) -> tuple[list[tuple[str, bytes]], bytes]:
    """The message's own header fields, and its MIME entity (Content-* fields + body).

    RFC 8551 §3.1: what S/MIME protects is the MIME entity; From, To, Subject…
    stay outside. A message without Content-Type is text/plain; us-ascii
    (RFC 2045 §5.2), said explicitly so that the entity stands alone.
    """
    head, body = split_message(data)
    fields = header_fields(head)
    outer = [(n, _crlf(r)) for n, r in fields if not _is_mime(n)]
    mime = [_crlf(r) for n, r in fields if _is_mime(n) and n != "mime-version"]
    if not any(n == "content-type" for n, _ in fields):
        mime.insert(0, b"Content-Type: text/plain; charset=us-ascii\r\n")
    return outer, b"".join(mime) + b"\r\n" + body


def rewrap(outer: Sequence[tuple[str, bytes]], entity: bytes, first: Sequence[bytes] = ()) -> bytes:
    """A message: ``first`` fields, the outer fields, MIME-Version, then ``entity``.

    Outer fields the entity itself carries are dropped: a sender that protected
    its header fields inside (RFC 7508 style) is believed over the outside.
    """
    inner_head, _ = split_message(entity)
    inner_names = {n for n, _ in header_fields(inner_head) if n and not _is_mime(n)}
    kept = [r for n, r in outer if n not in inner_names]
    return b"".join([*first, *kept, b"MIME-Version: 1.0\r\n", entity])


def strip_forged_results(head: bytes, authserv_id: str) -> tuple[bytes, bool]:
    """Remove Authentication-Results fields claiming to come from us (RFC 8601 §5)."""
    if b"authentication-results" not in head.lower():
        return head, False
    ours = authserv_id.lower().encode()
    out, removed = [], False
    for _, raw in header_fields(head):
        m = _AUTHSERV.match(raw)
        if m and m.group(1).lower() == ours:
            removed = True
            continue
        out.append(raw)
    return b"".join(out), removed


def _value(text: str, extra: str = "") -> str:
    """Header-safe text: no CR/LF, no comment or quote breakers (``extra``: more allowed)."""
    return re.sub(rf"[^A-Za-z0-9@._+=:{extra}-]", "", text)[:254]


def authentication_results(authserv_id: str, outcome: SmimeOutcome) -> bytes:
    """``Authentication-Results: <host>; smime=<result> (<reason>) …`` (RFC 8601, RFC 7281).

    ``header.from`` is written only when the From address is one the signer's
    certificate names (RFC 8550 §3): its presence means "From is authenticated".
    ``body.smime-identifier`` names the signer's certificate address (RFC 7281 §3).
    """
    comment = outcome.reason or ("verified" if outcome.result == "pass" else "")
    if outcome.result == "pass" and outcome.revocation:
        comment += f", revocation {outcome.revocation}"
    text = f"{_value(authserv_id)}; smime={outcome.result}"
    if comment:
        text += f" ({_value(comment, ' ,')})"
    if outcome.result == "pass" and outcome.signer:
        if outcome.from_matches:
            text += f"\r\n\theader.from={_value(outcome.signer)}"
        text += f"\r\n\tbody.smime-identifier={_value(outcome.signer)}"
    return f"Authentication-Results: {text}\r\n".encode("ascii")


def attachment_parts(
    data: bytes,
    parsed: email.message.Message | None = None,
) -> list[tuple[int, bytes]]:
    """(index, decoded bytes) of each attachment: every non-multipart, non-text part.

    The index is the part's position in a depth-first walk of the message (0 is
    the message itself), so ``pli vault proof`` finds the same part in the
    stored bytes. Signatures (application/pkcs7-signature) are not attachments.
    ``parsed`` is the tree of ``data`` when the caller has it already.
    """
    if parsed is None:
        head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
            split_message(data)[0]
        )
        if head.get_content_maintype() == "text":  # a plain message: no attachment
            return []
        parsed = mime.parse(data)
    out: list[tuple[int, bytes]] = []
    for index, part in enumerate(parsed.walk()):
        ctype = part.get_content_type()
        if (
            part.is_multipart()
            or ctype.startswith("text/")
            or ctype in ("application/pkcs7-signature", "application/x-pkcs7-signature")
        ):
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            out.append((index, payload))
    return out
