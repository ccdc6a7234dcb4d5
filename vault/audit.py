"""The tamper-evident audit trail: an append-only SHA-256 hash chain in SQL.

Each entry's hash covers the previous hash and every field of the entry, so a
modified, removed, inserted or reordered entry breaks the chain at a point
:func:`verify` names. Appends run inside the caller's transaction (an accepted
message and its audit entry commit together or not at all). Entries say who
did what to which mailbox and message, when, from where, with what result:
never content (no subjects, no attachment names, no bodies).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.tables import audit_event, audit_head

__all__ = [
    "GENESIS",
    "AuditEvent",
    "AuditFilter",
    "AuditRecord",
    "ChainReport",
    "append",
    "append_many",
    "count_actions",
    "count_refusals",
    "entry_hash",
    "last_event_by_mailbox",
    "patient_trail",
    "query",
    "record_from_row",
    "verify",
]

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened. ``detail`` holds small non-content facts (counts, codes)."""

    action: str
    actor: str = ""
    mailbox: str = ""
    msg_id: str = ""
    result: str = "ok"
    reason: str = ""
    remote: str = ""
    detail: Mapping[str, str | int | bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    ts: dt.datetime
    actor: str
    action: str
    mailbox: str
    msg_id: str
    result: str
    reason: str
    remote: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ts"] = _ts_text(self.ts)
        return d


@dataclass(frozen=True, slots=True)
class ChainReport:
    entries: int
    ok: bool
    first_bad_seq: int | None = None
    problem: str = ""


@dataclass(frozen=True, slots=True)
class AuditFilter:
    mailbox: str | None = None
    actor: str | None = None
    action: str | None = None
    msg_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int | None = None


def _ts_text(ts: dt.datetime) -> str:
    if ts.tzinfo is None:  # SQLite returns naive datetimes; pli stores UTC only
        ts = ts.replace(tzinfo=dt.UTC)
    return ts.astimezone(dt.UTC).isoformat(timespec="microseconds")


def entry_hash(seq: int, ts: dt.datetime, row: Mapping[str, Any] | Any, prev_hash: str) -> str:
    body = {
        "seq": seq,
        "ts": _ts_text(ts),
        **{
            k: row[k]
            for k in (
                "actor",
                "action",
                "mailbox",
                "msg_id",
                "result",
                "reason",
                "remote",
                "detail",
            )
        },
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical.encode()).hexdigest()


async def append(
    conn: AsyncConnection, event: AuditEvent, *, now: dt.datetime | None = None
) -> int:
    """Append one entry within the caller's transaction; return its sequence number."""
    return (await append_many(conn, [event], now=now))[0]


async def append_many(
    conn: AsyncConnection, events: Sequence[AuditEvent], *, now: dt.datetime | None = None
) -> list[int]:
    """Append entries in order within the caller's transaction; return their numbers.

    The head row is updated first, which takes the write lock, so concurrent
    appenders (tasks, processes, instances on one PostgreSQL) queue up here;
    a batch costs three statements whatever its size.
    """
    if not events:
        return []
    head = (
        await conn.execute(
            update(audit_head)
            .where(audit_head.c.id == 1)
            .values(seq=audit_head.c.seq + len(events))
            .returning(audit_head.c.seq, audit_head.c.hash)
        )
    ).one()
    first, prev_hash = int(head.seq) - len(events) + 1, str(head.hash)
    ts = now or dt.datetime.now(dt.UTC)
    rows = []
    for offset, event in enumerate(events):
        row = {
            "actor": event.actor,
            "action": event.action,
            "mailbox": event.mailbox,
            "msg_id": event.msg_id,
            "result": event.result,
            "reason": event.reason,
            "remote": event.remote,
            "detail": json.dumps(dict(event.detail), sort_keys=True, separators=(",", ":")),
        }
        seq = first + offset
        digest = entry_hash(seq, ts, row, prev_hash)
        rows.append({"seq": seq, "ts": ts, "prev_hash": prev_hash, "hash": digest, **row})
        prev_hash = digest
    await conn.execute(audit_event.insert(), rows)
    await conn.execute(update(audit_head).where(audit_head.c.id == 1).values(hash=prev_hash))
    return list(range(first, first + len(events)))


def record_from_row(r: Any) -> AuditRecord:
    return AuditRecord(
        seq=int(r.seq),
        ts=r.ts,
        actor=r.actor,
        action=r.action,
        mailbox=r.mailbox,
        msg_id=r.msg_id,
        result=r.result,
        reason=r.reason,
        remote=r.remote,
        detail=json.loads(r.detail),
        prev_hash=r.prev_hash,
        hash=r.hash,
    )


async def verify(engine: AsyncEngine, batch: int = 5000) -> ChainReport:
    """Recompute the chain from the start; name the first entry that does not fit."""
    expected_prev, expected_seq, count = GENESIS, 1, 0
    async with engine.connect() as conn:
        result = await conn.stream(select(audit_event).order_by(audit_event.c.seq))
        async for part in result.partitions(batch):
            for r in part:
                count += 1
                if r.seq != expected_seq:
                    problem = "missing entry" if r.seq > expected_seq else "out-of-order entry"
                    return ChainReport(count, False, expected_seq, problem)
                if r.prev_hash != expected_prev:
                    return ChainReport(count, False, r.seq, "link to previous entry broken")
                row = r._mapping
                if entry_hash(r.seq, r.ts, row, r.prev_hash) != r.hash:
                    return ChainReport(count, False, r.seq, "entry content does not match its hash")
                expected_prev, expected_seq = r.hash, expected_seq + 1
        head = (await conn.execute(select(audit_head).where(audit_head.c.id == 1))).one_or_none()
    if head is None:
        return ChainReport(count, False, None, "chain head missing")
    if head.seq != expected_seq - 1 or head.hash != expected_prev:
        return ChainReport(count, False, expected_seq, "entries removed from the end of the chain")
    return ChainReport(count, True)


async def query(engine: AsyncEngine, flt: AuditFilter) -> AsyncIterator[AuditRecord]:
    """Entries matching every given filter, oldest first, streamed."""
    stmt = select(audit_event).order_by(audit_event.c.seq)
    if flt.mailbox:
        stmt = stmt.where(audit_event.c.mailbox == flt.mailbox)
    if flt.actor:
        stmt = stmt.where(audit_event.c.actor == flt.actor)
    if flt.action:
        stmt = stmt.where(audit_event.c.action == flt.action)
    if flt.msg_id:
        stmt = stmt.where(audit_event.c.msg_id == flt.msg_id)
    if flt.since:
        stmt = stmt.where(audit_event.c.ts >= flt.since)
    if flt.until:
        stmt = stmt.where(audit_event.c.ts < flt.until)
    if flt.limit:
        stmt = stmt.limit(flt.limit)
    async with engine.connect() as conn:
        result = await conn.stream(stmt)
        async for r in result:
            yield record_from_row(r)


async def patient_trail(engine: AsyncEngine, patient_ref: str) -> AsyncIterator[AuditRecord]:
    """Every entry about the messages whose acceptance names this patient pseudonym.

    The pseudonym (``gateway.core.patients``) sits in the acceptance entry's
    detail; every later event on those messages — deliveries, reads over IMAP
    or the API, moves, expiry — carries the same message id.
    """
    if not patient_ref.isalnum():  # a hex pseudonym: nothing for LIKE to interpret
        raise ValueError("a patient reference is hexadecimal")
    e = audit_event.c
    async with engine.connect() as conn:
        refs = (
            (
                await conn.execute(
                    select(e.msg_id).where(
                        e.action == "message.accepted",
                        e.detail.like(f'%"patients":"%{patient_ref}%'),
                    )
                )
            )
            .scalars()
            .all()
        )
    ids = sorted({r for r in refs if r})
    for i in range(0, len(ids), 500):
        async with engine.connect() as conn:
            result = await conn.stream(
                select(audit_event).where(e.msg_id.in_(ids[i : i + 500])).order_by(e.seq)
            )
            async for r in result:
                yield record_from_row(r)


def last_event_by_mailbox(action: str, *, result: str = "ok") -> Select[tuple[str, Any]]:
    """A query of (mailbox, time of its latest ``action`` with ``result``), for the caller's
    connection: e.g. the last successful login of each mailbox."""
    e = audit_event.c
    return (
        select(e.mailbox, func.max(e.ts))
        .where(e.action == action, e.result == result)
        .group_by(e.mailbox)
    )


async def count_actions(engine: AsyncEngine, action: str) -> int:
    """How many entries record ``action`` (``/metrics``; ``action`` is indexed)."""
    async with engine.connect() as conn:
        value = (
            await conn.execute(
                select(func.count()).select_from(audit_event).where(audit_event.c.action == action)
            )
        ).scalar()
    return int(value or 0)


async def count_refusals(engine: AsyncEngine, actions: Sequence[str]) -> dict[tuple[str, str], int]:
    """Entries of ``actions`` that did not succeed, by (result, reason)."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(audit_event.c.result, audit_event.c.reason, func.count())
                .where(audit_event.c.action.in_(list(actions)), audit_event.c.result != "ok")
                .group_by(audit_event.c.result, audit_event.c.reason)
            )
        ).all()
    return {(str(r[0]), str(r[1])): int(r[2]) for r in rows}
