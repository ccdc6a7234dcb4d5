"""Rows of the outbound queue: enqueue, claim (across instances), record the outcome.

Claiming is portable and safe with several workers on one database: a
transaction selects due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
instances never wait on each other) and then marks them with a lease, the
UPDATE re-checking that nobody leased them meanwhile (what makes it correct on
SQLite, which ignores ``FOR UPDATE`` but runs one writer at a time). A worker
that dies leaves its lease to expire: the rows are claimed again, so delivery
is at-least-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.outbound.tables import outbound
from vault import audit

__all__ = [
    "DELIVERED",
    "FAILED",
    "QUEUED",
    "OutboundQueue",
    "QueueEntry",
    "SentRow",
    "blob_of",
    "claim",
    "counts",
    "enqueue",
    "list_entries",
    "purge",
    "record",
    "retry",
    "sent_rows",
]

QUEUED, DELIVERED, FAILED = "queued", "delivered", "failed"


@dataclass(frozen=True, slots=True)
class QueueEntry:
    id: int
    msg_ref: str
    blob: str
    sender: str
    recipient: str
    domain: str
    state: str
    attempts: int
    next_attempt: dt.datetime
    expires_at: dt.datetime
    created_at: dt.datetime
    last_reply: str
    delay_notified: bool

    @classmethod
    def of(cls, row: Any) -> QueueEntry:
        m = row._mapping

        def utc(v: dt.datetime) -> dt.datetime:
            return v if v.tzinfo else v.replace(tzinfo=dt.UTC)

        return cls(
            id=int(m["id"]),
            msg_ref=m["msg_ref"],
            blob=m["blob"],
            sender=m["sender"],
            recipient=m["recipient"],
            domain=m["domain"],
            state=m["state"],
            attempts=int(m["attempts"]),
            next_attempt=utc(m["next_attempt"]),
            expires_at=utc(m["expires_at"]),
            created_at=utc(m["created_at"]),
            last_reply=m["last_reply"],
            delay_notified=bool(m["delay_notified"]),
        )


async def enqueue(
    conn: AsyncConnection,
    *,
    msg_ref: str,
    blob: str,
    sender: str,
    recipients: Sequence[str],
    now: dt.datetime,
    max_age: float,
) -> None:
    """Queue remote recipients in the caller's (ingest) transaction."""
    if not recipients:
        return
    expires = now + dt.timedelta(seconds=max_age)
    await conn.execute(
        insert(outbound),
        [
            {
                "msg_ref": msg_ref,
                "blob": blob,
                "sender": sender,
                "recipient": rcpt,
                "domain": rcpt.rpartition("@")[2],
                "state": QUEUED,
                "attempts": 0,
                "next_attempt": now,
                "expires_at": expires,
                "created_at": now,
                "updated_at": now,
                "last_reply": "",
                "delay_notified": False,
                "claimed_by": "",
                "claimed_until": None,
            }
            for rcpt in recipients
        ],
    )


def _free(now: dt.datetime) -> Any:
    o = outbound.c
    return or_(o.claimed_until.is_(None), o.claimed_until < now)


async def claim(
    engine: AsyncEngine, worker: str, *, now: dt.datetime, limit: int, lease: float
) -> list[QueueEntry]:
    """Lease up to ``limit`` due entries for ``worker``; another worker gets others."""
    o = outbound.c
    due = and_(o.state == QUEUED, o.next_attempt <= now, _free(now))
    async with engine.begin() as conn:
        ids = (
            (
                await conn.execute(
                    select(o.id)
                    .where(due)
                    .order_by(o.next_attempt, o.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )
        if not ids:
            return []
        until = now + dt.timedelta(seconds=lease)
        rows = await conn.execute(
            update(outbound)
            .where(o.id.in_(ids))
            .where(due)
            .values(claimed_by=worker, claimed_until=until)
            .returning(*outbound.c)
        )
        return sorted((QueueEntry.of(r) for r in rows), key=lambda e: e.id)


async def record(
    engine: AsyncEngine,
    entry_ids: Sequence[int],
    *,
    state: str,
    reply: str,
    now: dt.datetime,
    next_attempt: dt.datetime | None = None,
    delay_notified: bool | None = None,
    events: Sequence[audit.AuditEvent] = (),
) -> None:
    """The outcome of an attempt, audited in the same transaction; the lease is released."""
    values: dict[str, Any] = {
        "state": state,
        "last_reply": reply[:512],
        "updated_at": now,
        "attempts": outbound.c.attempts + 1,
        "claimed_by": "",
        "claimed_until": None,
    }
    if next_attempt is not None:
        values["next_attempt"] = next_attempt
    if delay_notified is not None:
        values["delay_notified"] = delay_notified
    async with engine.begin() as conn:
        if events:
            await audit.append_many(conn, events, now=now)
        await conn.execute(
            update(outbound).where(outbound.c.id.in_(list(entry_ids))).values(**values)
        )


async def list_entries(
    engine: AsyncEngine, state: str | None = None, limit: int = 1000
) -> list[QueueEntry]:
    stmt = select(outbound).order_by(outbound.c.id).limit(limit)
    if state:
        stmt = stmt.where(outbound.c.state == state)
    async with engine.connect() as conn:
        return [QueueEntry.of(r) for r in await conn.execute(stmt)]


async def retry(engine: AsyncEngine, entry_ids: Sequence[int] | None, now: dt.datetime) -> int:
    """Make queued entries (all, or these) due now; return how many."""
    stmt = update(outbound).where(outbound.c.state == QUEUED).values(next_attempt=now)
    if entry_ids is not None:
        stmt = stmt.where(outbound.c.id.in_(list(entry_ids)))
    async with engine.begin() as conn:
        return int((await conn.execute(stmt)).rowcount or 0)


async def purge(
    engine: AsyncEngine, *, states: Sequence[str], entry_ids: Sequence[int] | None = None
) -> int:
    """Delete entries in the given states (all, or these); return how many."""
    stmt = delete(outbound).where(outbound.c.state.in_(list(states)))
    if entry_ids is not None:
        stmt = stmt.where(outbound.c.id.in_(list(entry_ids)))
    async with engine.begin() as conn:
        return int((await conn.execute(stmt)).rowcount or 0)


async def depth(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    select(func.count()).select_from(outbound).where(outbound.c.state == QUEUED)
                )
            ).scalar_one()
        )


class OutboundQueue:
    """The queue as the core's :class:`~gateway.core.ports.OutboundQueue` port: rows
    written in the commit's transaction, and a wake-up the worker of this process
    waits on (other instances find the rows at their next poll)."""

    def __init__(self, max_age: float) -> None:
        self._max_age = max_age
        self._woken = asyncio.Event()

    async def enqueue(
        self,
        conn: AsyncConnection,
        *,
        msg_ref: str,
        blob: str,
        sender: str,
        recipients: Sequence[str],
        now: dt.datetime,
    ) -> None:
        await enqueue(
            conn,
            msg_ref=msg_ref,
            blob=blob,
            sender=sender,
            recipients=recipients,
            now=now,
            max_age=self._max_age,
        )

    def wake(self) -> None:
        self._woken.set()

    def rearm(self) -> None:
        """Forget earlier wake-ups: the worker is about to look at the table anyway."""
        self._woken.clear()

    async def wait(self, seconds: float) -> None:
        """Until woken (since the last :meth:`rearm`) or ``seconds`` passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), seconds)

    async def needs(self, conn: AsyncConnection, blob: str) -> bool:
        found = (
            await conn.execute(
                select(outbound.c.id)
                .where(outbound.c.blob == blob, outbound.c.state == QUEUED)
                .limit(1)
            )
        ).first()
        return found is not None

    async def objects_of(self, conn: AsyncConnection, msg_ref: str) -> set[str]:
        return set(
            (
                await conn.execute(select(outbound.c.blob).where(outbound.c.msg_ref == msg_ref))
            ).scalars()
        )

    async def forget(self, conn: AsyncConnection, blob: str) -> None:
        await conn.execute(delete(outbound).where(outbound.c.blob == blob))


async def blob_of(engine: AsyncEngine, msg_ref: str) -> str | None:
    """The object a queued message is sent from (its outbound copy, or its body)."""
    async with engine.connect() as conn:
        value = (
            await conn.execute(
                select(outbound.c.blob).where(outbound.c.msg_ref == msg_ref).limit(1)
            )
        ).scalar()
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class SentRow:
    """Where one remote recipient of a message stands (the API's status)."""

    recipient: str
    state: str  # queued, delayed (queued after a "delayed" DSN), delivered, failed
    attempts: int
    last_reply: str
    updated_at: dt.datetime


async def sent_rows(engine: AsyncEngine, sender: str, msg_ref: str) -> list[SentRow]:
    """The remote recipients of ``msg_ref`` if ``sender`` sent it (else none)."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(outbound)
                .where(outbound.c.msg_ref == msg_ref, outbound.c.sender == sender)
                .order_by(outbound.c.id)
            )
        ).all()
    out = []
    for r in rows:
        state = "delayed" if r.state == QUEUED and r.delay_notified else str(r.state)
        updated = r.updated_at if r.updated_at.tzinfo else r.updated_at.replace(tzinfo=dt.UTC)
        out.append(SentRow(r.recipient, state, int(r.attempts), r.last_reply, updated))
    return out


async def counts(engine: AsyncEngine) -> dict[str, int]:
    """Rows per state (``/metrics`` queue depth)."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(outbound.c.state, func.count()).group_by(outbound.c.state))
        ).all()
    return {str(r[0]): int(r[1]) for r in rows}
