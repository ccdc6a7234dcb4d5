"""THE entry of every message into pli: begin → add_sender → add_recipient → put_body → commit.

SMTP (and later HTTP, IMAP APPEND, pli's own DSN/MDN) call this and nothing
else. Nothing persistent is visible before :meth:`Delivery.commit`: the body
goes to the vault encrypted, then ONE SQL transaction records the vault
object, the mailbox rows and the audit entries. Only when that transaction has
committed does the caller answer 250. Any dependency failure raises
:class:`TemporaryFailure` (451) after removing what was written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import re
import secrets
from collections.abc import Callable

import structlog
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from directory.base import DirectoryUnavailable, MailboxKind, normalize_address
from gateway import events
from gateway.core import mdn, mime, patients
from gateway.core.commit import CommitBatcher, PendingMessage
from gateway.core.model import SessionInfo
from gateway.errors import PliError, TemporaryFailure
from policies import reasons
from policies.engine import PolicyEngine
from policies.model import Decision, Verdict
from vault import audit
from vault.base import VaultError
from vault.service import StoredObject, Vault

__all__ = ["Delivery", "IngestService"]

log = structlog.get_logger("pli.ingest")


_MDN_HEAD = 64 * 1024
_INTERNAL = frozenset({"dsn", "mdn"})  # messages pli writes itself, with MAIL FROM:<>
_MESSAGE_ID = re.compile(rb"(?im)^message-id[ \t]*:")


def _new_ref() -> str:
    return secrets.token_hex(8)


class Delivery:
    """One message in flight. Not reusable: commit or abort exactly once."""

    def __init__(self, service: IngestService, info: SessionInfo) -> None:
        self._svc = service
        self.info = info
        self.ref = _new_ref()
        self.sender: str | None = None
        self.recipients: list[str] = []  # local: delivered into their mailboxes at commit
        self.remote: list[str] = []  # other operators': queued at commit
        self._stored: StoredObject | None = None
        self._done = False
        self._head = b""  # the message's start, kept only when it mentions an MDN
        self._acks: list[mdn.Ack] = []
        self._patients: list[str] = []  # pseudonyms of the patients the documents concern

    async def add_sender(self, address: str) -> Decision:
        decision = await self._svc.policy.check_sender(address)
        if decision.accepted:
            self.sender = normalize_address(address) if address else ""
        else:
            await self._svc.audit_decision(self.info, "smtp.mail", address, "", decision)
        return decision

    async def add_recipient(self, address: str) -> Decision:
        # Authenticated users, and pli's own DSNs and MDNs, may write to other operators.
        may_relay = (self.info.protocol == "submission" and bool(self.info.authenticated_as)) \
            or self.info.protocol in _INTERNAL
        decision = await self._svc.policy.check_recipient(
            address, sender=self.sender, accepted_so_far=len(self.recipients) + len(self.remote),
            may_relay=may_relay)
        if decision.accepted:
            rcpt = normalize_address(address)
            target = self.recipients if self._svc.policy.is_local(rcpt) else self.remote
            if rcpt not in target:
                target.append(rcpt)
        else:
            await self._svc.audit_decision(
                self.info, "smtp.rcpt", self.sender or "", address, decision
            )
        return decision

    async def check_content(self, data: bytes) -> Decision:
        """DATA-stage policy: size, MIME part count and types (refusals audited)."""
        policy = self._svc.policy
        problem = mime.header_problem(data)
        if problem:  # header bombs: refused before any parsing
            decision = Decision(Verdict.REJECT, reasons.HEADER_TOO_BIG, 552, "5.3.4",
                                f"Message {problem}", "limits.header")
            await self._svc.audit_decision(self.info, "smtp.data", self.sender or "",
                                           ",".join(self.recipients), decision)
            return decision
        summary = await mime.summarize(data, policy.rules.attachments.max_parts)
        if summary.too_many_parts or summary.depth > mime.MAX_DEPTH:
            decision = policy.check_message(len(data), ["multipart/mixed"] *
                                            (policy.rules.attachments.max_parts + 1))
        else:
            decision = policy.check_message(len(data), summary.part_types)
        if not decision.accepted:
            await self._svc.audit_decision(self.info, "smtp.data", self.sender or "",
                                           ",".join(self.recipients), decision)
        return decision

    def _trace_headers(self, data: bytes) -> bytes:
        # RFC 5321 §4.4: Return-Path at final delivery, Received trace by every hop.
        now = email.utils.format_datetime(dt.datetime.now(dt.UTC))
        # RFC 6409 §8.3: a message without Message-ID gets one; MDNs and DSNs need it.
        header_end = data.find(b"\r\n\r\n")
        head = data if header_end < 0 else data[:header_end + 2]
        message_id = "" if _MESSAGE_ID.search(head) else \
            f"Message-ID: <{self.ref}.{secrets.token_hex(6)}@{self._svc.hostname}>\r\n"
        tls = f" (using {self.info.tls})" if self.info.tls else ""
        helo = self.info.helo or "unknown"
        # RFC 3848: S for TLS, A for an authenticated submission.
        proto = ("ESMTP" + ("S" if self.info.tls else "")
                 + ("A" if self.info.authenticated_as else ""))
        return (
            f"Return-Path: <{self.sender or ''}>\r\n"
            f"Received: from {helo} ([{self.info.remote}]){tls}\r\n"
            f"\tby {self._svc.hostname} (pli) with {proto} id {self.ref};\r\n"
            f"\t{now}\r\n"
            f"{message_id}"
        ).encode("ascii", "replace")

    async def put_body(self, data: bytes) -> None:
        """Store the message encrypted; not visible until commit."""
        if self.sender is None or not (self.recipients or self.remote):
            raise RuntimeError("put_body before sender and recipients")
        head = data[:_MDN_HEAD]
        # One look per message: MDN requests and MDN reports both name the header/type.
        if b"disposition-notification" in head.lower():
            self._head = head
            self._acks = await asyncio.to_thread(mdn.parse_acks, data)
        key = self._svc.patient_key
        if key is not None and (b"zip" in data or b"xml" in data):  # cheap test first
            found = await asyncio.to_thread(patients.patient_ins, data)
            self._patients = sorted({patients.patient_ref(key, ins) for ins in found})
        try:
            self._stored = await self._svc.vault.put(
                self._trace_headers(data) + data, mailboxes=[*self.recipients, self.sender])
        except (VaultError, OSError) as exc:
            log.error(events.INGEST_ABORTED, msg_ref=self.ref, reason="vault-unavailable",
                      error=type(exc).__name__)
            raise TemporaryFailure("Storage unavailable, try again later",
                                   reason="vault-unavailable") from exc

    async def commit(self) -> str:
        """Record everything in one transaction; return the message reference."""
        if self._stored is None or self._done:
            raise RuntimeError("commit without a stored body, or twice")
        stored = self._stored
        now = dt.datetime.now(dt.UTC)
        accepted = audit.AuditEvent(
            action="message.accepted", actor=self.sender or "", msg_id=self.ref,
            remote=self.info.remote,
            detail={"protocol": self.info.protocol, "size": stored.size,
                    "recipients": len(self.recipients) + len(self.remote),
                    "session": self.info.session_id,
                    **({"patients": ",".join(self._patients)} if self._patients else {})},
        )
        delivered = [
            audit.AuditEvent(action="message.delivered", actor=self.sender or "", mailbox=rcpt,
                             msg_id=self.ref, remote=self.info.remote)
            for rcpt in self.recipients
        ] + [
            audit.AuditEvent(action="message.queued", actor=self.sender or "", mailbox=rcpt,
                             msg_id=self.ref, remote=self.info.remote)
            for rcpt in self.remote
        ]
        try:
            await self._svc.batcher.commit(PendingMessage(
                ref=self.ref, stored=stored, recipients=tuple(self.recipients),
                events=(accepted, *delivered), received_at=now,
                sent_copy=self.sender if self.info.protocol == "submission" else None,
                remote=(self.sender or "", tuple(self.remote)) if self.remote else None,
                acks=[(a.original_message_id, a.final_recipient, a.disposition,
                       self.sender or "") for a in self._acks]))
        except (SQLAlchemyError, OSError) as exc:
            await self._cleanup_after_failed_commit(stored)
            log.error(events.INGEST_ABORTED, msg_ref=self.ref, reason="database-unavailable",
                      error=type(exc).__name__)
            raise TemporaryFailure("Database unavailable, try again later",
                                   reason="database-unavailable") from exc
        self._done = True
        log.info(events.INGEST_COMMITTED, msg_ref=self.ref, size=stored.size,
                 recipients=len(self.recipients), queued=len(self.remote))
        if self.remote and self._svc.on_queued is not None:
            self._svc.on_queued()
        if self._head and self.info.protocol not in _INTERNAL and self.sender:
            await self._svc.answer_mdn_requests(self.sender, self.recipients, self._head)
        return self.ref

    async def _cleanup_after_failed_commit(self, stored: StoredObject) -> None:
        """Remove the body only if the database confirms the commit did not happen.

        A COMMIT that failed in flight may have succeeded; deleting the blob
        then would lose an accepted message. An orphan blob is harmless (a
        sweep can collect it); a missing one is not.
        """
        self._done = True
        try:
            recorded = await self._svc.vault.is_recorded(stored.name)
        except (SQLAlchemyError, OSError):
            log.warning(events.INGEST_ABORTED, msg_ref=self.ref, reason="blob-kept-unknown")
            return
        if not recorded:
            try:
                await self._svc.vault.discard(stored)
            except (VaultError, OSError):
                log.warning(events.INGEST_ABORTED, msg_ref=self.ref, reason="cleanup-failed")

    async def abort(self) -> None:
        """Remove the stored body if the message was not committed."""
        if self._stored is not None and not self._done:
            try:
                await self._svc.vault.discard(self._stored)
            except (VaultError, OSError):
                log.warning(events.INGEST_ABORTED, msg_ref=self.ref, reason="cleanup-failed")
        self._done = True


class IngestService:
    def __init__(
        self, engine: AsyncEngine, vault: Vault, policy: PolicyEngine, hostname: str,
        patient_key: bytes | None = None,
    ) -> None:
        self.patient_key = patient_key  # pseudonymises INS for the audit trail (patients.py)
        self.engine = engine
        self.vault = vault
        self.policy = policy
        self.hostname = hostname
        self.batcher = CommitBatcher(engine, vault)
        self.on_queued: Callable[[], None] | None = None  # wakes the outbound worker

    def begin(self, info: SessionInfo) -> Delivery:
        return Delivery(self, info)

    async def answer_mdn_requests(self, sender: str, recipients: list[str], head: bytes) -> None:
        """APP mailboxes acknowledge what they stored, when the sender asked (RFC 8098).

        The message is committed already; an MDN that cannot be written now is
        logged, never a reason to take the 250 back.
        """
        request = mdn.mdn_request(head, sender)
        if request is None:
            return
        for rcpt in recipients:
            try:
                entry = await self.policy.directory.resolve(rcpt)
            except DirectoryUnavailable:
                log.warning("mdn.not_sent", reason="directory-unavailable")
                continue
            if entry is None or entry.kind is not MailboxKind.APP:
                continue
            await self.send_mdn(rcpt, request)

    async def send_mdn(self, mailbox: str, request: mdn.MdnRequest, error: str = "") -> bool:
        """Write an MDN from ``mailbox`` through the ordinary path (local or queued)."""
        body = mdn.build_mdn(reporting_ua=self.hostname, mailbox=mailbox, request=request,
                             error=error)
        delivery = self.begin(SessionInfo(session_id="", protocol="mdn", remote="",
                                          helo=self.hostname))
        try:
            if not (await delivery.add_sender("")).accepted or \
                    not (await delivery.add_recipient(request.notify)).accepted:
                log.warning("mdn.not_sent", reason="refused")
                return False
            await delivery.put_body(body)
            await delivery.commit()
        except PliError as exc:
            await delivery.abort()
            log.warning("mdn.not_sent", reason=exc.reason)
            return False
        return True

    async def audit_decision(
        self, info: SessionInfo, action: str, actor: str, target: str, decision: Decision
    ) -> None:
        """Refusals are audited too; a failure to audit a refusal never turns it into a 250."""
        try:
            async with self.engine.begin() as conn:
                await audit.append(
                    conn,
                    audit.AuditEvent(
                        action=action, actor=actor[:320], mailbox=target[:320],
                        result=decision.verdict.value, reason=decision.reason,
                        remote=info.remote,
                        detail={"code": decision.smtp_code, "rule": decision.rule_id,
                                "session": info.session_id},
                    ),
                )
        except (OperationalError, DBAPIError, OSError) as exc:
            log.warning(events.SMTP_REJECT, reason="audit-unavailable", error=type(exc).__name__)
