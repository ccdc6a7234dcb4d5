"""``POST /v1/messages``: a DPI's message, built as RFC 5322 and handed to the ingest core.

The route translates only: JSON (attachments in base64) or multipart/form-data
(files spooled to disk by the form parser) becomes an ``EmailMessage``, which
goes through exactly the calls SMTP submission makes (``begin → add_sender →
add_recipient → check_content → put_body → commit``), so policies, vault,
audit and queue are the same. A refused recipient refuses the whole call
(nothing is stored); each Decision maps to one problem. Subjects, bodies and
file names are content: never logged here.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import email.policy
import email.utils
import re
import secrets
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile

from directory.base import InvalidAddress, normalize_address
from gateway.base import events
from gateway.base.errors import PliError, is_temporary
from gateway.core.ingest import IngestService
from gateway.core.model import Origin
from gateway.http.auth import Caller
from gateway.http.problems import RETRY_AFTER, ApiProblem
from policies import codes, reasons
from policies.model import Decision, Verdict

__all__ = ["Attachment", "CdaDocument", "Outgoing", "SendRequest", "SendResult", "submit"]

log = structlog.get_logger("pli.http")

_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
_MEDIA_TYPE = r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}$"
# Reasons that say "you may not", not "this message is wrong" (RFC 9110 §15.5.4).
_FORBIDDEN = frozenset(
    {
        reasons.RELAY_DENIED,
        reasons.SENDER_NOT_TRUSTED,
        reasons.RECIPIENT_NOT_TRUSTED,
        reasons.LOCAL_POLICY,
        reasons.SENDER_UNKNOWN,
    }
)


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(
        min_length=1, max_length=255, pattern=_NO_CONTROL, examples=["compte-rendu.pdf"]
    )
    content_type: str = Field(
        "application/octet-stream", pattern=_MEDIA_TYPE, examples=["application/pdf"]
    )
    content_base64: str = Field(max_length=200 * 1024 * 1024, examples=["JVBERi0xLjcKJcfsj6IK"])


class CdaDocument(BaseModel):
    """An HL7 CDA R2 document pli packages as IHE XDM (IHE_XDM.zip) with the X-MSS headers."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(
        "DOC0001.XML", min_length=1, max_length=255, pattern=_NO_CONTROL, examples=["dlu.xml"]
    )
    content_base64: str = Field(max_length=64 * 1024 * 1024, examples=["PD94bWwgdmVyc2lvbj0i"])
    ins: str | None = Field(
        None,
        min_length=15,
        max_length=20,
        description="the patient's INS when the CDA carries none",
        examples=["231056299901771"],
    )


class SendRequest(BaseModel):
    """A message from the token's mailbox."""

    model_config = ConfigDict(extra="forbid")

    to: list[str] = Field(
        min_length=1, max_length=1000, examples=[["sophie.bernard@ch-arras.mssante.fr"]]
    )
    subject: str = Field(
        "", max_length=900, pattern=_NO_CONTROL, examples=["Compte rendu d'hospitalisation"]
    )
    body: str = Field(
        "",
        max_length=10 * 1024 * 1024,
        examples=["Bonjour,\nveuillez trouver le compte rendu ci-joint."],
    )
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)
    request_mdn: bool = Field(
        False, description="ask the recipient for an RFC 8098 MDN", examples=[True]
    )
    cda: CdaDocument | None = Field(None, description="packaged as IHE XDM by pli")


class Recipients(BaseModel):
    delivered: list[str] = Field(examples=[["sophie.bernard@ch-arras.mssante.fr"]])
    queued: list[str] = Field(examples=[["secretariat@autre-hopital.mssante.fr"]])


class SendResult(BaseModel):
    id: str = Field(examples=["9f2c4b1a0e7d3c55"], description="pli's reference of the message")
    message_id: str = Field(examples=["<9f2c4b1a0e7d3c55.a1b2c3d4e5f6@pli.example.fr>"])
    recipients: Recipients


@dataclass
class Outgoing:
    """What to send, whatever the request's content type."""

    to: list[str]
    subject: str
    body: str
    request_mdn: bool = False
    files: list[tuple[str, str, bytes]] = field(default_factory=list)  # name, type, data
    headers: dict[str, str] = field(default_factory=dict)  # X-MSS-* of a packaged CDA

    def add_cda(self, filename: str, data: bytes, ins: str | None) -> None:
        """Package a CDA as IHE XDM (MSSanté: IHE_XDM.zip) and set X-MSS-INS/-CODECDA."""
        from gateway.xdm import XdmError, build_xdm, mss_headers, read_xdm
        from gateway.xdm.ins import parse_ins

        try:
            patient = parse_ins(ins) if ins else None
            package = build_xdm([(filename, data)], ins=patient)
            self.headers.update(mss_headers(read_xdm(package, require_ins=False)))
        except XdmError as exc:
            raise ApiProblem("invalid-request", f"cda: {exc}") from None
        self.files.append(("IHE_XDM.zip", "application/zip", package))

    @classmethod
    def from_json(cls, req: SendRequest) -> Outgoing:
        files = []
        for i, att in enumerate(req.attachments):
            try:
                data = base64.b64decode(att.content_base64, validate=True)
            except (binascii.Error, ValueError):
                raise ApiProblem(
                    "invalid-request", f"attachments[{i}].content_base64 is not base64"
                ) from None
            files.append((att.filename, att.content_type, data))
        out = cls(list(req.to), req.subject, req.body, req.request_mdn, files)
        if req.cda is not None:
            try:
                cda = base64.b64decode(req.cda.content_base64, validate=True)
            except (binascii.Error, ValueError):
                raise ApiProblem("invalid-request", "cda.content_base64 is not base64") from None
            out.add_cda(req.cda.filename, cda, req.cda.ins)
        return out

    @classmethod
    async def from_form(cls, form: list[tuple[str, str | UploadFile]], max_files: int) -> Outgoing:
        out = cls([], "", "")
        for name, value in form:
            if isinstance(value, UploadFile):
                if name != "attachments" or len(out.files) >= max_files:
                    raise ApiProblem("invalid-request", "files go in 'attachments'")
                ctype = value.content_type or "application/octet-stream"
                fname = value.filename or f"attachment-{len(out.files) + 1}"
                if not re.match(_MEDIA_TYPE, ctype):
                    ctype = "application/octet-stream"
                if not re.match(_NO_CONTROL, fname) or len(fname) > 255:
                    raise ApiProblem("invalid-request", "an attachment name is invalid")
                out.files.append((fname, ctype, await value.read()))
            elif name == "to":
                out.to.extend(a.strip() for a in value.split(",") if a.strip())
            elif name == "subject":
                if not re.match(_NO_CONTROL, value) or len(value) > 900:
                    raise ApiProblem("invalid-request", "the subject is invalid")
                out.subject = value
            elif name == "body":
                out.body = value
            elif name == "request_mdn":
                out.request_mdn = value.lower() in ("1", "true", "yes", "on")
            else:
                raise ApiProblem("invalid-request", "unknown form field")
        if not out.to:
            raise ApiProblem("invalid-request", "at least one recipient ('to') is required")
        return out


def decision_problem(decision: Decision, recipient: str = "") -> ApiProblem:
    """The problem a refusing Decision maps to (its SMTP codes travel along)."""
    extra: dict[str, Any] = {
        "reason": decision.reason,
        "smtp_code": decision.smtp_code,
        "enhanced_code": decision.enhanced_code,
    }
    detail = decision.text + (f" ({recipient})" if recipient else "")
    if decision.reason == reasons.RATE_LIMITED:
        return ApiProblem(
            "rate-limited", detail, headers={"Retry-After": str(RETRY_AFTER)}, **extra
        )
    if decision.verdict is Verdict.DEFER:
        return ApiProblem("unavailable", detail, headers={"Retry-After": str(RETRY_AFTER)}, **extra)
    if decision.reason == reasons.MESSAGE_TOO_BIG:
        return ApiProblem("payload-too-large", detail, **extra)
    if decision.reason in _FORBIDDEN:
        return ApiProblem("policy-refused", detail, **extra)
    return ApiProblem("message-refused", detail, **extra)


def _build(out: Outgoing, sender: str, ref: str, hostname: str) -> tuple[bytes, str]:
    """The RFC 5322 message (CRLF line ends, RFC 2047 headers) and its Message-ID."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(out.to)
    if out.subject:
        msg["Subject"] = out.subject
    msg["Date"] = email.utils.format_datetime(dt.datetime.now(dt.UTC))
    # The Message-ID starts with pli's reference, so MDNs answering it lead back here.
    message_id = f"<{ref}.{secrets.token_hex(6)}@{hostname}>"
    msg["Message-ID"] = message_id
    if out.request_mdn:
        msg["Disposition-Notification-To"] = sender  # RFC 8098 §2.1
    for name, value in out.headers.items():  # MSSanté X-MSS-INS, X-MSS-CODECDA
        msg[name] = value
    msg.set_content(out.body, cte="quoted-printable")
    for name, ctype, data in out.files:
        maintype, _, subtype = ctype.lower().partition("/")
        if maintype in ("multipart", "message"):
            # RFC 2045 §6.4 / RFC 2046 §5.2: these cannot be base64 leaves; a file is a file.
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes(), message_id


async def submit(
    ingest: IngestService, caller: Caller, out: Outgoing, *, hostname: str, max_recipients: int
) -> SendResult:
    """Send ``out`` from the caller's mailbox; raise an :class:`ApiProblem` on refusal."""
    try:
        recipients = list(dict.fromkeys(normalize_address(a) for a in out.to))
    except InvalidAddress as exc:
        raise ApiProblem(
            "message-refused",
            f"Invalid recipient address: {exc}",
            reason=reasons.INVALID_ADDRESS,
            smtp_code=codes.C553_MAILBOX_NAME_NOT_ALLOWED,
            enhanced_code=codes.X_BAD_DEST_SYNTAX,
        ) from None
    if len(recipients) > max_recipients:
        # RFC 5321 §4.5.3.1.10 (SMTP says 452 and takes the rest in another transaction).
        raise ApiProblem(
            "message-refused",
            f"At most {max_recipients} recipients",
            reason=reasons.TOO_MANY_RECIPIENTS,
            smtp_code=codes.C452_INSUFFICIENT_STORAGE,
            enhanced_code=codes.X_TOO_MANY_RECIPIENTS,
        )
    # The API's rights are its own (Origin.api): relaying and the Sent copy for the mailbox
    # the caller's credentials are bound to, as an authenticated submission has them.
    delivery = ingest.begin(
        Origin.api(f"http-{events.new_session_id()}", caller.remote, caller.mailbox)
    )
    try:
        decision = await delivery.add_sender(caller.mailbox)
        if not decision.accepted:
            raise decision_problem(decision)
        for rcpt in recipients:
            decision = await delivery.add_recipient(rcpt)
            if not decision.accepted:
                raise decision_problem(decision, rcpt)
        out.to = recipients
        data, message_id = await asyncio.to_thread(
            _build, out, caller.mailbox, delivery.ref, hostname
        )
        decision = await delivery.check_content(data)
        if not decision.accepted:
            raise decision_problem(decision)
        await delivery.put_body(data)
        ref = await delivery.commit()
    except ApiProblem as problem:
        await delivery.abort()
        log.info(
            events.HTTP_SEND_REFUSED,
            code=problem.code,
            reason=problem.extra.get("reason"),
            msg_ref=delivery.ref,
        )
        raise
    except PliError as exc:
        await delivery.abort()
        if is_temporary(exc):
            log.warning(events.HTTP_SEND_TEMPFAIL, reason=exc.reason, msg_ref=delivery.ref)
        else:  # a permanent refusal raised below the policies (S/MIME, XDM): its own problem
            log.info(events.HTTP_SEND_REFUSED, reason=exc.reason, msg_ref=delivery.ref)
        raise
    return SendResult(
        id=ref,
        message_id=message_id,
        recipients=Recipients(delivered=list(delivery.recipients), queued=list(delivery.remote)),
    )
