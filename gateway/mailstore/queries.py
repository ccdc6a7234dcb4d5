"""Read-only views of the mailstore for other front ends than IMAP (the HTTP API, the CLI).

Listing an INBOX page by UID, one message row, the copies a message left in
local mailboxes, and the vault objects behind a message or a mailbox. Every
query that touches messages is scoped by the caller's mailbox address: no
parameter reaches another owner's rows. Nothing here writes or reads a body.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.base.db import utc as _utc
from gateway.core.ports import INBOX, SENT
from gateway.mailstore.tables import mailbox, message

__all__ = [
    "LocalCopy",
    "MessageRow",
    "blob_of",
    "find_message",
    "list_messages",
    "local_copies",
    "max_uid",
    "message_blobs",
    "messages_of_mailbox",
    "sent_copy",
]


@dataclass(frozen=True, slots=True)
class MessageRow:
    uid: int
    msg_ref: str
    size: int
    received_at: dt.datetime
    flags: frozenset[str]


def _box(owner: str, name: str = INBOX) -> object:
    return (
        select(mailbox.c.id)
        .where(mailbox.c.owner == owner, mailbox.c.name == name)
        .scalar_subquery()
    )


_COLUMNS = (
    message.c.uid,
    message.c.msg_ref,
    message.c.size,
    message.c.internal_date,
    message.c.flags,
)


def _row(r: Any) -> MessageRow:
    return MessageRow(
        int(r.uid),
        str(r.msg_ref),
        int(r.size),
        _utc(r.internal_date),
        frozenset(str(r.flags).split()),
    )


async def list_messages(
    engine: AsyncEngine, owner: str, after: int, limit: int
) -> list[MessageRow]:
    """INBOX messages of ``owner`` with UID > ``after``, oldest first, at most ``limit``."""
    stmt = (
        select(*_COLUMNS)
        .where(message.c.mailbox_id == _box(owner), message.c.uid > after)
        .order_by(message.c.uid)
        .limit(limit)
    )
    async with engine.connect() as conn:
        return [_row(r) for r in (await conn.execute(stmt)).all()]


async def find_message(engine: AsyncEngine, owner: str, uid: int) -> MessageRow | None:
    stmt = select(*_COLUMNS).where(message.c.mailbox_id == _box(owner), message.c.uid == uid)
    async with engine.connect() as conn:
        r = (await conn.execute(stmt)).one_or_none()
    return None if r is None else _row(r)


async def max_uid(engine: AsyncEngine, owner: str) -> int:
    """The highest UID in ``owner``'s INBOX (0 when empty): the long-poll's cheap probe."""
    async with engine.connect() as conn:
        value = (
            await conn.execute(
                select(func.max(message.c.uid)).where(message.c.mailbox_id == _box(owner))
            )
        ).scalar()
    return int(value or 0)


async def sent_copy(engine: AsyncEngine, sender: str, msg_ref: str) -> dt.datetime | None:
    """When ``sender``'s own copy of ``msg_ref`` was filed in its Sent mailbox, if it was."""
    async with engine.connect() as conn:
        value = (
            await conn.execute(
                select(message.c.internal_date).where(
                    message.c.mailbox_id == _box(sender, SENT), message.c.msg_ref == msg_ref
                )
            )
        ).first()
    return None if value is None else _utc(value[0])


@dataclass(frozen=True, slots=True)
class LocalCopy:
    owner: str
    delivered_at: dt.datetime


async def local_copies(engine: AsyncEngine, msg_ref: str) -> list[LocalCopy]:
    """The local recipients whose INBOX received ``msg_ref`` (delivered in its commit)."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(mailbox.c.owner, message.c.internal_date)
                .join(mailbox, mailbox.c.id == message.c.mailbox_id)
                .where(message.c.msg_ref == msg_ref, mailbox.c.name == INBOX)
                .order_by(mailbox.c.owner)
            )
        ).all()
    return [LocalCopy(str(r.owner), _utc(r.internal_date)) for r in rows]


async def blob_of(engine: AsyncEngine, msg_ref: str) -> str | None:
    """The body object of a delivered message (any of its rows)."""
    async with engine.connect() as conn:
        value = (
            await conn.execute(select(message.c.blob).where(message.c.msg_ref == msg_ref).limit(1))
        ).scalar()
    return None if value is None else str(value)


async def message_blobs(conn: AsyncConnection, msg_ref: str) -> set[str]:
    """The body objects of one message, wherever it was delivered."""
    return set(
        (await conn.execute(select(message.c.blob).where(message.c.msg_ref == msg_ref))).scalars()
    )


async def messages_of_mailbox(conn: AsyncConnection, owner: str) -> tuple[set[str], set[str]]:
    """(message references, body objects) of everything held in ``owner``'s mailboxes."""
    rows = (
        await conn.execute(
            select(message.c.msg_ref, message.c.blob)
            .join(mailbox, mailbox.c.id == message.c.mailbox_id)
            .where(mailbox.c.owner == owner.lower())
        )
    ).all()
    return {str(r.msg_ref) for r in rows}, {str(r.blob) for r in rows}
