"""The core's own rows, read and pruned: evidence objects of a message, MDNs received.

Written in each message's commit (:mod:`gateway.core.commit`); read here by
``pli vault proof``, ``pli mdn list``, the API's status and the retention
purge, so that nobody else reads :mod:`gateway.core.tables`. Never content.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.base.db import utc as _utc
from gateway.core.tables import mdn_ack, message_evidence

__all__ = [
    "Ack",
    "EvidenceRow",
    "acks",
    "acks_for_ref",
    "evidence_objects",
    "evidence_rows",
    "forget_evidence",
]


# Bound parameters per IN list: SQLite allows 32,766 per statement, asyncpg 32,767.
_IN_BATCH = 1000


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    kind: str  # gateway.core.evidence kinds
    part: int | None
    object_name: str


async def evidence_rows(engine: AsyncEngine, msg_ref: str) -> list[EvidenceRow]:
    """What proves one message, in the order it was recorded."""
    e = message_evidence
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(e.c.kind, e.c.part, e.c.object_name)
                .where(e.c.msg_ref == msg_ref)
                .order_by(e.c.id)
            )
        ).all()
    return [
        EvidenceRow(str(r.kind), None if r.part is None else int(r.part), str(r.object_name))
        for r in rows
    ]


async def evidence_objects(conn: AsyncConnection, msg_refs: Iterable[str]) -> set[str]:
    """The evidence objects (original, receipts, outbound copy) of these messages."""
    refs, found = list(msg_refs), set()
    for start in range(0, len(refs), _IN_BATCH):  # bound the IN list: a mailbox may be huge
        chunk = refs[start : start + _IN_BATCH]
        column = message_evidence.c.object_name
        found |= set(
            (
                await conn.execute(select(column).where(message_evidence.c.msg_ref.in_(chunk)))
            ).scalars()
        )
    return found


async def forget_evidence(conn: AsyncConnection, object_name: str) -> None:
    """Drop the rows pointing at an object whose retention is over."""
    await conn.execute(
        delete(message_evidence).where(message_evidence.c.object_name == object_name)
    )


@dataclass(frozen=True, slots=True)
class Ack:
    original_message_id: str
    final_recipient: str
    disposition: str
    reporter: str
    msg_ref: str
    received_at: dt.datetime


def _ack(r: Row[Any]) -> Ack:
    m = r._mapping
    return Ack(
        m["original_message_id"],
        m["final_recipient"],
        m["disposition"],
        m["reporter"],
        m["msg_ref"],
        _utc(m["received_at"]),
    )


async def acks(engine: AsyncEngine, message_id: str | None = None) -> list[Ack]:
    """MDNs received, oldest first; only those answering ``message_id`` if given."""
    stmt = select(mdn_ack).order_by(mdn_ack.c.id)
    if message_id:
        stmt = stmt.where(mdn_ack.c.original_message_id == message_id)
    async with engine.connect() as conn:
        return [_ack(r) for r in (await conn.execute(stmt)).all()]


async def acks_for_ref(engine: AsyncEngine, msg_ref: str) -> list[Ack]:
    """MDNs answering a message pli sent: its Message-ID starts with ``<ref.``
    (``gateway/core/ingest.py`` and the API give it that form)."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(mdn_ack)
                .where(mdn_ack.c.original_message_id.like(f"<{msg_ref}.%"))
                .order_by(mdn_ack.c.id)
            )
        ).all()
    return [_ack(r) for r in rows]
