"""Read-only SQL the HTTP API needs and the mailstore does not offer (yet).

Listing a mailbox page by UID, finding one message row, the delivery status
of a sent message (outbound rows, local copies, MDNs received) and the
figures ``/metrics`` exposes. Every query is scoped by the caller's mailbox
address where it touches messages: there is no parameter that reaches another
owner's rows. Nothing here writes, and nothing reads a message body.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.base.db import utc as _utc
from gateway.mailstore.store import INBOX, SENT
from gateway.mailstore.tables import mailbox, mdn_ack, message, outbound
from vault.tables import audit_event, vault_object

__all__ = [
    "DeliveryRow",
    "MdnRow",
    "MessageRow",
    "MetricsSnapshot",
    "SentStatus",
    "any_vault_object",
    "find_message",
    "list_messages",
    "max_uid",
    "metrics_snapshot",
    "sent_status",
]

# Audit actions that record a refusal at each SMTP-like stage (vault.audit entries).
_REFUSAL_ACTIONS = ("smtp.mail", "smtp.rcpt", "smtp.data")




@dataclass(frozen=True, slots=True)
class MessageRow:
    uid: int
    msg_ref: str
    size: int
    received_at: dt.datetime
    flags: frozenset[str]


def _inbox(owner: str) -> object:
    return select(mailbox.c.id).where(mailbox.c.owner == owner,
                                      mailbox.c.name == INBOX).scalar_subquery()


async def list_messages(engine: AsyncEngine, owner: str, after: int, limit: int
                        ) -> list[MessageRow]:
    """INBOX messages of ``owner`` with UID > ``after``, oldest first, at most ``limit``."""
    stmt = (select(message.c.uid, message.c.msg_ref, message.c.size, message.c.internal_date,
                   message.c.flags)
            .where(message.c.mailbox_id == _inbox(owner), message.c.uid > after)
            .order_by(message.c.uid).limit(limit))
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [MessageRow(int(r.uid), r.msg_ref, int(r.size), _utc(r.internal_date),
                       frozenset(r.flags.split())) for r in rows]


async def find_message(engine: AsyncEngine, owner: str, uid: int) -> MessageRow | None:
    stmt = (select(message.c.uid, message.c.msg_ref, message.c.size, message.c.internal_date,
                   message.c.flags)
            .where(message.c.mailbox_id == _inbox(owner), message.c.uid == uid))
    async with engine.connect() as conn:
        r = (await conn.execute(stmt)).one_or_none()
    if r is None:
        return None
    return MessageRow(int(r.uid), r.msg_ref, int(r.size), _utc(r.internal_date),
                      frozenset(r.flags.split()))


async def max_uid(engine: AsyncEngine, owner: str) -> int:
    """The highest UID in ``owner``'s INBOX (0 when empty): the long-poll's cheap probe."""
    async with engine.connect() as conn:
        value = (await conn.execute(select(func.max(message.c.uid))
                                    .where(message.c.mailbox_id == _inbox(owner)))).scalar()
    return int(value or 0)


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    recipient: str
    state: str  # delivered (local or remote), queued, delayed, failed
    attempts: int
    last_reply: str
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class MdnRow:
    final_recipient: str
    disposition: str
    received_at: dt.datetime


@dataclass(frozen=True, slots=True)
class SentStatus:
    deliveries: list[DeliveryRow]
    mdns: list[MdnRow]


async def sent_status(engine: AsyncEngine, sender: str, ref: str) -> SentStatus | None:
    """Where a message ``sender`` sent went; None if ``sender`` did not send ``ref``.

    Local recipients got their copy in the commit itself; remote ones are
    outbound rows. MDNs are matched on the Message-ID pli gave the message,
    which always starts with ``<ref.`` (see ``gateway/core/ingest.py``).
    """
    async with engine.connect() as conn:
        sent_box = select(mailbox.c.id).where(mailbox.c.owner == sender,
                                              mailbox.c.name == SENT).scalar_subquery()
        own_copy = (await conn.execute(
            select(message.c.internal_date).where(message.c.mailbox_id == sent_box,
                                                  message.c.msg_ref == ref))).first()
        remote = (await conn.execute(
            select(outbound).where(outbound.c.msg_ref == ref, outbound.c.sender == sender)
            .order_by(outbound.c.id))).all()
        if own_copy is None and not remote:
            return None
        local = (await conn.execute(
            select(mailbox.c.owner, message.c.internal_date)
            .join(mailbox, mailbox.c.id == message.c.mailbox_id)
            .where(message.c.msg_ref == ref, mailbox.c.name == INBOX)
            .order_by(mailbox.c.owner))).all()
        mdns = (await conn.execute(
            select(mdn_ack).where(mdn_ack.c.original_message_id.like(f"<{ref}.%"))
            .order_by(mdn_ack.c.id))).all()
    rows = [DeliveryRow(r.owner, "delivered", 1, "250 delivered locally", _utc(r.internal_date))
            for r in local]
    for r in remote:
        state = "delayed" if r.state == "queued" and r.delay_notified else str(r.state)
        rows.append(DeliveryRow(r.recipient, state, int(r.attempts), r.last_reply,
                                _utc(r.updated_at)))
    return SentStatus(rows, [MdnRow(m.final_recipient, m.disposition, _utc(m.received_at))
                             for m in mdns])


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    accepted: int
    refused: dict[tuple[str, str], int]  # (result, reason) -> count
    queue: dict[str, int]  # outbound state -> rows


async def metrics_snapshot(engine: AsyncEngine) -> MetricsSnapshot:
    """Counts read on each scrape, so every instance reports the shared truth.

    The audit trail is the source of accepted/refused messages (indexed on
    ``action``); the outbound table the source of queue depth.
    """
    async with engine.connect() as conn:
        accepted = (await conn.execute(select(func.count()).select_from(audit_event)
                                       .where(audit_event.c.action == "message.accepted"))
                    ).scalar() or 0
        refused_rows = (await conn.execute(
            select(audit_event.c.result, audit_event.c.reason, func.count())
            .where(audit_event.c.action.in_(_REFUSAL_ACTIONS),
                   audit_event.c.result != "ok")
            .group_by(audit_event.c.result, audit_event.c.reason))).all()
        queue_rows = (await conn.execute(
            select(outbound.c.state, func.count()).group_by(outbound.c.state))).all()
    return MetricsSnapshot(
        int(accepted),
        {(str(r[0]), str(r[1])): int(r[2]) for r in refused_rows},
        {str(r[0]): int(r[1]) for r in queue_rows})


async def any_vault_object(engine: AsyncEngine) -> str | None:
    """The name of some stored object (readiness reads its first chunk), None if empty."""
    async with engine.connect() as conn:
        value = (await conn.execute(select(vault_object.c.name).limit(1))).scalar()
    return str(value) if value is not None else None
