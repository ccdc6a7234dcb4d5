"""Group commit: many accepted messages, one SQL transaction, one fsync.

Each delivery hands its rows (vault object, mailbox entries, audit events) to
the :class:`CommitBatcher` and waits; one writer task takes everything queued,
writes it in a single transaction and only then releases each waiter, so every
250 still follows its own durable commit. If a batch fails, its messages are
retried one by one, so one bad message cannot fail its neighbours. The writer
is a task of its own: a client that disconnects cannot cancel others' commits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.core.ports import INBOX, SENT, MailboxDrop, MailboxWriter, Notifier, OutboundQueue
from gateway.core.tables import mdn_ack, message_evidence
from vault import audit
from vault.service import StoredObject, Vault

__all__ = ["CommitBatcher", "EvidenceObject", "PendingMessage"]


@dataclass(frozen=True, slots=True)
class EvidenceObject:
    """A vault object proving what the message was (kinds: ``gateway/core/evidence.py``)."""

    kind: str
    stored: StoredObject
    part: int | None = None


@dataclass(frozen=True, slots=True)
class PendingMessage:
    ref: str
    stored: StoredObject
    recipients: Sequence[str]
    events: Sequence[audit.AuditEvent]
    received_at: dt.datetime
    sent_copy: str | None = None  # submission: the sender's own copy, in its Sent mailbox
    remote: tuple[str, Sequence[str]] | None = None  # (sender, other operators' recipients)
    acks: Sequence[tuple[str, str, str, str]] = ()  # MDN: (original id, recipient, disp., by)
    evidence: Sequence[EvidenceObject] = ()  # original, receipts, outbound copy
    outbound_blob: str | None = None  # the signed/encrypted copy the queue sends, if any

    def drops(self) -> list[MailboxDrop]:
        """Every mailbox row this message gets: each local recipient's INBOX, and the
        sender's Sent for a submission."""
        out = [(rcpt, INBOX, "") for rcpt in self.recipients]
        if self.sent_copy:
            out.append((self.sent_copy, SENT, "\\Seen"))
        return [
            MailboxDrop(
                owner, box, flags, self.ref, self.stored.name, self.stored.size, self.received_at
            )
            for owner, box, flags in out
        ]


class CommitBatcher:
    """Writes each batch through the mailstore's and the queue's writers (ports), so the
    core names neither; ``notifier`` wakes IMAP IDLE once a batch is durable."""

    def __init__(
        self,
        engine: AsyncEngine,
        vault: Vault,
        *,
        mailboxes: MailboxWriter,
        queue: OutboundQueue,
        notifier: Notifier | None = None,
        max_batch: int = 64,
    ) -> None:
        self._engine = engine
        self._vault = vault
        self._mailboxes = mailboxes
        self._queue_rows = queue
        self._notifier = notifier
        self._max = max_batch
        self._queue: list[tuple[PendingMessage, asyncio.Future[None]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def commit(self, item: PendingMessage) -> None:
        """Return once ``item`` is committed; raise the database error otherwise."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="pli-group-commit")
        await asyncio.shield(fut)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max], self._queue[self._max :]
            await self._write(batch)

    async def _write(self, batch: list[tuple[PendingMessage, asyncio.Future[None]]]) -> None:
        try:
            async with self._engine.begin() as conn:
                await self._rows(conn, [item for item, _ in batch])
        except Exception as exc:  # every waiter must get an answer, whatever failed
            if len(batch) > 1:
                for one in batch:
                    await self._write([one])
                return
            if not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)
        if self._notifier is not None:  # only after the commit: IDLE must find the rows
            self._notifier.notify(drop.owner for item, _ in batch for drop in item.drops())

    async def _rows(self, conn: AsyncConnection, items: list[PendingMessage]) -> None:
        # The audit head first: it takes the write lock and orders concurrent writers.
        await audit.append_many(
            conn, [e for it in items for e in it.events], now=items[0].received_at
        )
        await self._vault.record_many(
            conn, [obj for it in items for obj in (it.stored, *(e.stored for e in it.evidence))]
        )
        # The main object is listed too: a message sent only to other operators has no
        # mailbox row leading to it once its queue row points at the outbound copy.
        proofs = [
            {
                "msg_ref": it.ref,
                "kind": kind,
                "part": part,
                "object_name": name,
                "created_at": it.received_at,
            }
            for it in items
            if it.evidence
            for kind, part, name in (
                ("message", None, it.stored.name),
                *((e.kind, e.part, e.stored.name) for e in it.evidence),
            )
        ]
        if proofs:
            await conn.execute(insert(message_evidence), proofs)
        await self._mailboxes.deliver(conn, [drop for it in items for drop in it.drops()])
        acks = [
            {
                "original_message_id": a[0],
                "final_recipient": a[1],
                "disposition": a[2],
                "reporter": a[3],
                "msg_ref": it.ref,
                "received_at": it.received_at,
            }
            for it in items
            for a in it.acks
        ]
        if acks:
            await conn.execute(insert(mdn_ack), acks)
        for it in items:
            if it.remote is not None:
                await self._queue_rows.enqueue(
                    conn,
                    msg_ref=it.ref,
                    blob=it.outbound_blob or it.stored.name,
                    sender=it.remote[0],
                    recipients=it.remote[1],
                    now=it.received_at,
                )
