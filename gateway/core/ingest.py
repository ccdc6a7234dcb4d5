"""THE entry of every message into pli: begin → add_sender → add_recipient → put_body → commit.

SMTP, the HTTP API and pli's own DSNs and MDNs call this and nothing else,
each with an :class:`~gateway.core.model.Origin` stating its rights (IMAP
APPEND is no delivery: ``gateway/mailstore/append.py`` keeps the same
storage rules without the policy stages). Nothing persistent is visible
before :meth:`Delivery.commit`: the body goes to the vault encrypted, then ONE
SQL transaction records the vault object, the mailbox rows and the audit
entries. Only when that transaction has
committed does the caller answer 250. Any dependency failure raises
:class:`~gateway.base.errors.Unavailable` (451) after removing what was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.message
import email.utils
import secrets
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from directory.base import DirectoryUnavailable, MailboxKind, normalize_address
from gateway.base import events
from gateway.base.errors import PliError, Unavailable
from gateway.core import evidence, mdn, mime, patients
from gateway.core.commit import CommitBatcher, EvidenceObject, PendingMessage
from gateway.core.evidence import SmimeOutcome
from gateway.core.model import Channel, Origin
from gateway.core.ports import MailboxWriter, Notifier, OutboundQueue
from gateway.core.trace import trace_headers
from policies import codes, encryption, reasons
from policies.engine import PolicyEngine
from policies.model import Decision, Verdict
from policies.rules import EncryptionMode
from vault import audit
from vault.base import VaultError
from vault.service import StoredObject, Vault

if TYPE_CHECKING:
    from gateway.core.secure import SecureMail

__all__ = ["Delivery", "IngestService"]

log = structlog.get_logger("pli.ingest")


_MDN_HEAD = 64 * 1024


def _new_ref() -> str:
    return secrets.token_hex(8)


class Delivery:
    """One message in flight. Not reusable: commit or abort exactly once."""

    def __init__(self, service: IngestService, origin: Origin) -> None:
        self._svc = service
        self.origin = origin
        self.ref = _new_ref()
        self.sender: str | None = None
        self.recipients: list[str] = []  # local: delivered into their mailboxes at commit
        self.remote: list[str] = []  # other operators': queued at commit
        self._stored: StoredObject | None = None
        self._done = False
        self._head = b""  # the message's start, kept only when it mentions an MDN
        self._acks: list[mdn.Ack] = []
        self._patients: list[str] = []  # pseudonyms of the patients the documents concern
        self._evidence: list[EvidenceObject] = []  # original, receipts, outbound copy
        self._outbound_blob: str | None = None
        self._smime = SmimeOutcome()
        # The tree check_content parsed, for put_body's later looks at the same bytes.
        self._parsed: tuple[bytes, email.message.Message] | None = None

    async def add_sender(self, address: str) -> Decision:
        """MAIL FROM: the channel's own conditions first (client certificate, ownership of
        the sender), then the sender policy; refusals are audited."""
        policy, origin = self._svc.policy, self.origin
        decision = Decision.accept()
        if origin.peer_names is not None:
            decision = policy.check_client_certificate(
                origin.peer_names, address, required=origin.client_cert_required
            )
        if decision.accepted and origin.sender_must_be_owned:
            decision = await policy.check_submitter(origin.authenticated_as, address)
        if decision.accepted:
            decision = await policy.check_sender(address)
        if decision.accepted:
            self.sender = normalize_address(address) if address else ""
        else:
            await self._svc.audit_decision(self.origin, "smtp.mail", address, "", decision)
        return decision

    async def add_recipient(self, address: str) -> Decision:
        decision = await self._svc.policy.check_recipient(
            address,
            sender=self.sender,
            accepted_so_far=len(self.recipients) + len(self.remote),
            may_relay=self.origin.may_relay,
        )
        if decision.accepted:
            rcpt = normalize_address(address)
            local = self._svc.policy.is_local(rcpt)
            if not local and not self.origin.internal:
                decision = await self._check_certificate(rcpt, decision)
        if decision.accepted:
            target = self.recipients if local else self.remote
            if rcpt not in target:
                target.append(rcpt)
        else:
            await self._svc.audit_decision(
                self.origin, "smtp.rcpt", self.sender or "", address, decision
            )
        return decision

    def _mode(self, *recipients: str) -> EncryptionMode:
        policy, secure = self._svc.policy, self._svc.secure
        modes = [policy.encryption_mode(a) for a in (self.sender or "", *recipients) if a]
        return secure.mode(modes) if secure is not None else EncryptionMode.NONE

    async def _check_certificate(self, rcpt: str, accepted: Decision) -> Decision:
        """Under ``force`` (sender's or recipient's), a remote recipient needs a valid
        certificate in the directory, checked at RCPT so the sender learns it at once."""
        secure = self._svc.secure
        if secure is None or self._mode(rcpt) is not EncryptionMode.FORCE:
            return accepted
        try:
            check = await secure.check_recipient(rcpt)
        except DirectoryUnavailable:
            return encryption.directory_unavailable()
        return encryption.remote_recipient(
            rcpt, has_certificate=bool(check.certificates), problem=check.problem
        )

    async def check_content(self, data: bytes) -> Decision:
        """DATA-stage policy: size, MIME part count and types (refusals audited)."""
        policy = self._svc.policy
        problem = mime.header_problem(data)
        if problem:  # header bombs: refused before any parsing
            decision = Decision(
                Verdict.REJECT,
                reasons.HEADER_TOO_BIG,
                codes.C552_STORAGE_EXCEEDED,
                codes.X_MESSAGE_TOO_BIG,
                f"Message {problem}",
                "limits.header",
            )
            await self._svc.audit_decision(
                self.origin, "smtp.data", self.sender or "", ",".join(self.recipients), decision
            )
            return decision
        summary = await mime.summarize(data, policy.rules.attachments.max_parts)
        self._parsed = None if summary.message is None else (data, summary.message)
        if summary.too_many_parts or summary.depth > mime.MAX_DEPTH:
            decision = policy.check_message(
                len(data), ["multipart/mixed"] * (policy.rules.attachments.max_parts + 1)
            )
        else:
            decision = policy.check_message(len(data), summary.part_types)
        if not decision.accepted:
            await self._svc.audit_decision(
                self.origin, "smtp.data", self.sender or "", ",".join(self.recipients), decision
            )
        return decision

    async def put_body(self, data: bytes) -> None:
        """Store the message encrypted; not visible until commit."""
        if self.sender is None or not (self.recipients or self.remote):
            raise RuntimeError("put_body before sender and recipients")
        head = data[:_MDN_HEAD]
        # One look per message: MDN requests and MDN reports both name the header/type.
        if b"disposition-notification" in head.lower():
            self._head = head
            self._acks = await asyncio.to_thread(mdn.parse_acks, data)
        parsed = self._parsed[1] if self._parsed is not None and self._parsed[0] is data else None
        self._parsed = None
        key = self._svc.patient_key
        if key is not None and (b"zip" in data or b"xml" in data):  # cheap test first
            found = await asyncio.to_thread(patients.patient_ins, data, parsed)
            self._patients = sorted({patients.patient_ref(key, ins) for ins in found})
        received_at = dt.datetime.now(dt.UTC)
        trace = trace_headers(
            data, origin=self.origin, sender=self.sender, ref=self.ref, hostname=self._svc.hostname
        )
        main, original, protected = await self._secure_forms(data)
        if main is not data:
            parsed = None  # decrypted or unwrapped: another tree
        secure, vault, boxes = self._svc.secure, self._svc.vault, [*self.recipients, self.sender]
        body = trace + main
        # The body goes to the vault while the receipts are signed; then every other
        # object at once: each put waits on its own fsync, so they overlap.
        first = asyncio.ensure_future(vault.put(body, mailboxes=boxes))
        try:
            # The trace headers on top change no part: the tree of data is the tree of body.
            receipts = (
                []
                if secure is None
                else await secure.receipts(
                    body, None if original is None else trace + original, received_at, parsed
                )
            )
        except BaseException:
            await self._drop(first)
            raise
        extra: list[tuple[str, bytes, str, int | None]] = []
        if original is not None:  # the S/MIME form as received: evidence
            extra.append((evidence.ORIGINAL, trace + original, "evidence", None))
        if protected is not None:  # what the outbound queue sends
            extra.append((evidence.OUTBOUND, trace + protected, "message", None))
        extra += [(r.kind, r.der, "notarisation", r.part) for r in receipts]
        results = await asyncio.gather(
            first,
            *(vault.put(b, doc_type=d, mailboxes=boxes) for _, b, d, _ in extra),
            return_exceptions=True,
        )
        stored = [r for r in results if isinstance(r, StoredObject)]
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            for obj in stored:
                with contextlib.suppress(VaultError, OSError):
                    await vault.discard(obj)
            exc = failed[0]
            if not isinstance(exc, VaultError | OSError):
                raise exc
            log.error(
                events.INGEST_ABORTED,
                msg_ref=self.ref,
                reason="vault-unavailable",
                error=type(exc).__name__,
            )
            raise Unavailable(
                "Storage unavailable, try again later", reason="vault-unavailable"
            ) from exc
        self._stored = stored[0]
        for (kind, _, _, part), obj in zip(extra, stored[1:], strict=True):
            self._evidence.append(EvidenceObject(kind, obj, part))
            if kind == evidence.OUTBOUND:
                self._outbound_blob = obj.name

    async def _drop(self, pending: asyncio.Future[StoredObject]) -> None:
        """Wait for a put that is no longer wanted and remove what it wrote."""
        try:
            obj = await pending
        except (VaultError, OSError):
            return
        with contextlib.suppress(VaultError, OSError):
            await self._svc.vault.discard(obj)

    async def _secure_forms(self, data: bytes) -> tuple[bytes, bytes | None, bytes | None]:
        """(what mailboxes show, the original if that differs, the outbound copy if any).

        pli's own DSNs and MDNs are carried as written: they are plain reports.
        """
        secure = self._svc.secure
        if secure is None or self.origin.internal:
            return data, None, None
        main, original, protected = data, None, None
        if self.recipients:
            result = await secure.inbound(data, self.recipients)
            self._smime = result.outcome
            if result.original is not None:
                main, original = result.presented, data
        if self.remote:
            protected = await secure.outbound(
                data, self.sender or "", self.remote, self._mode(*self.remote)
            )
        return main, original, protected

    async def commit(self) -> str:
        """Record everything in one transaction; return the message reference."""
        if self._stored is None or self._done:
            raise RuntimeError("commit without a stored body, or twice")
        stored = self._stored
        now = dt.datetime.now(dt.UTC)
        accepted = audit.AuditEvent(
            action="message.accepted",
            actor=self.sender or "",
            msg_id=self.ref,
            remote=self.origin.remote,
            detail={
                "protocol": self.origin.protocol,
                "size": stored.size,
                "recipients": len(self.recipients) + len(self.remote),
                "session": self.origin.session_id,
                "smime": self._smime.result,
                "decrypted": self._smime.decrypted,
                **({"smime_reason": self._smime.reason} if self._smime.reason else {}),
                **({"patients": ",".join(self._patients)} if self._patients else {}),
            },
        )
        delivered = [
            audit.AuditEvent(
                action="message.delivered",
                actor=self.sender or "",
                mailbox=rcpt,
                msg_id=self.ref,
                remote=self.origin.remote,
            )
            for rcpt in self.recipients
        ] + [
            audit.AuditEvent(
                action="message.queued",
                actor=self.sender or "",
                mailbox=rcpt,
                msg_id=self.ref,
                remote=self.origin.remote,
            )
            for rcpt in self.remote
        ]
        try:
            await self._svc.batcher.commit(
                PendingMessage(
                    ref=self.ref,
                    stored=stored,
                    recipients=tuple(self.recipients),
                    events=(accepted, *delivered),
                    received_at=now,
                    sent_copy=self.sender if self.origin.keeps_sent_copy else None,
                    remote=(self.sender or "", tuple(self.remote)) if self.remote else None,
                    acks=[
                        (a.original_message_id, a.final_recipient, a.disposition, self.sender or "")
                        for a in self._acks
                    ],
                    evidence=tuple(self._evidence),
                    outbound_blob=self._outbound_blob,
                )
            )
        except (SQLAlchemyError, OSError) as exc:
            await self._cleanup_after_failed_commit(stored)
            log.error(
                events.INGEST_ABORTED,
                msg_ref=self.ref,
                reason="database-unavailable",
                error=type(exc).__name__,
            )
            raise Unavailable(
                "Database unavailable, try again later", reason="database-unavailable"
            ) from exc
        self._done = True
        log.info(
            events.INGEST_COMMITTED,
            msg_ref=self.ref,
            size=stored.size,
            recipients=len(self.recipients),
            queued=len(self.remote),
        )
        if self.remote:
            self._svc.queue.wake()
        if self._head and not self.origin.internal and self.sender:
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
        if not recorded:  # one transaction records them all: none of them is recorded
            await self._discard_all()

    async def _discard_all(self) -> None:
        """Remove every object this delivery wrote: body, evidence, receipts, outbound copy."""
        objects = [e.stored for e in self._evidence]
        if self._stored is not None:
            objects.insert(0, self._stored)
        for obj in objects:
            try:
                await self._svc.vault.discard(obj)
            except (VaultError, OSError):
                log.warning(events.INGEST_ABORTED, msg_ref=self.ref, reason="cleanup-failed")

    async def abort(self) -> None:
        """Remove the stored objects if the message was not committed."""
        if not self._done:
            await self._discard_all()
        self._done = True


class IngestService:
    """Everything a delivery needs, given at construction by the composition root: the
    mailstore's writer, the outbound queue and the IDLE notifier come in as ports."""

    def __init__(
        self,
        engine: AsyncEngine,
        vault: Vault,
        policy: PolicyEngine,
        hostname: str,
        *,
        mailboxes: MailboxWriter,
        queue: OutboundQueue,
        notifier: Notifier | None = None,
        patient_key: bytes | None = None,
        secure: SecureMail | None = None,
    ) -> None:
        self.secure = secure  # S/MIME and notarisation (gateway/core/secure.py); None: off
        self.patient_key = patient_key  # pseudonymises INS for the audit trail (patients.py)
        self.engine = engine
        self.vault = vault
        self.policy = policy
        self.hostname = hostname
        self.queue = queue
        self.batcher = CommitBatcher(
            engine, vault, mailboxes=mailboxes, queue=queue, notifier=notifier
        )

    def begin(self, origin: Origin) -> Delivery:
        return Delivery(self, origin)

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
                log.warning(events.MDN_NOT_SENT, reason="directory-unavailable")
                continue
            if entry is None or entry.kind is not MailboxKind.APP:
                continue
            await self.send_mdn(rcpt, request)

    async def send_mdn(self, mailbox: str, request: mdn.MdnRequest, error: str = "") -> bool:
        """Write an MDN from ``mailbox`` through the ordinary path (local or queued)."""
        body = mdn.build_mdn(
            reporting_ua=self.hostname, mailbox=mailbox, request=request, error=error
        )
        delivery = self.begin(Origin.report(Channel.MDN, self.hostname))
        try:
            if (
                not (await delivery.add_sender("")).accepted
                or not (await delivery.add_recipient(request.notify)).accepted
            ):
                log.warning(events.MDN_NOT_SENT, reason="refused")
                return False
            await delivery.put_body(body)
            await delivery.commit()
        except PliError as exc:
            await delivery.abort()
            log.warning(events.MDN_NOT_SENT, reason=exc.reason)
            return False
        return True

    async def audit_decision(
        self, origin: Origin, action: str, actor: str, target: str, decision: Decision
    ) -> None:
        """Refusals are audited too; a failure to audit a refusal never turns it into a 250."""
        try:
            async with self.engine.begin() as conn:
                await audit.append(
                    conn,
                    audit.AuditEvent(
                        action=action,
                        actor=actor[:320],
                        mailbox=target[:320],
                        result=decision.verdict.value,
                        reason=decision.reason,
                        remote=origin.remote,
                        detail={
                            "code": decision.smtp_code,
                            "rule": decision.rule_id,
                            "session": origin.session_id,
                        },
                    ),
                )
        except (OperationalError, DBAPIError, OSError) as exc:
            log.warning(
                events.INGEST_REFUSAL_UNAUDITED,
                reason="audit-unavailable",
                error=type(exc).__name__,
            )
