"""What the API reads to answer a status or a scrape, composed from the owners' functions.

The delivery status of a sent message joins three owners' answers — local
copies (mailstore), remote recipients (outbound queue), MDNs received (core)
— and ``/metrics`` counts the audit trail and the queue. This module reads no
table itself: each owner keeps its own SQL (``make test`` checks it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.core import records
from gateway.mailstore import queries as mailbox_queries
from gateway.outbound import store as outbound_store
from vault import audit

__all__ = [
    "DeliveryRow",
    "MdnRow",
    "MetricsSnapshot",
    "SentStatus",
    "metrics_snapshot",
    "sent_status",
]

# Audit actions that record a refusal at each SMTP-like stage (vault.audit entries).
_REFUSAL_ACTIONS = ("smtp.mail", "smtp.rcpt", "smtp.data")


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
    outbound rows. MDNs are matched on the Message-ID pli gave the message.
    """
    own_copy = await mailbox_queries.sent_copy(engine, sender, ref)
    remote = await outbound_store.sent_rows(engine, sender, ref)
    if own_copy is None and not remote:
        return None
    rows = [
        DeliveryRow(c.owner, "delivered", 1, "250 delivered locally", c.delivered_at)
        for c in await mailbox_queries.local_copies(engine, ref)
    ]
    rows += [
        DeliveryRow(r.recipient, r.state, r.attempts, r.last_reply, r.updated_at) for r in remote
    ]
    mdns = [
        MdnRow(a.final_recipient, a.disposition, a.received_at)
        for a in await records.acks_for_ref(engine, ref)
    ]
    return SentStatus(rows, mdns)


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    accepted: int
    refused: dict[tuple[str, str], int]  # (result, reason) -> count
    queue: dict[str, int]  # outbound state -> rows


async def metrics_snapshot(engine: AsyncEngine) -> MetricsSnapshot:
    """Counts read on each scrape, so every instance reports the shared truth: the audit
    trail for accepted and refused messages, the outbound queue for its depth."""
    return MetricsSnapshot(
        await audit.count_actions(engine, "message.accepted"),
        await audit.count_refusals(engine, _REFUSAL_ACTIONS),
        await outbound_store.counts(engine),
    )
