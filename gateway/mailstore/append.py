"""Putting a message a user already holds into one of their mailboxes (IMAP APPEND).

APPEND is not a delivery: there is no sender or recipient to check against
the trust space and nothing to route, so it does not run the SMTP policy
stages of ``core.ingest``; it keeps the core's storage invariants instead —
header bombs refused, the body encrypted into the vault first, then ONE SQL
transaction recording the vault object, the mailbox row and the audit entry,
and the blob removed again only if the database confirms nothing committed.
Mailbox creation, UID and MODSEQ allocation for every writer of mailbox rows,
and copying rows between mailboxes live here too.
It never logs content.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Sequence

import structlog
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.base import events
from gateway.base.errors import ContentRefused, Unavailable
from gateway.core import mime
from gateway.core.model import Channel
from gateway.core.ports import INBOX, MailboxDrop
from gateway.mailstore.tables import mailbox, message
from vault import audit
from vault.base import VaultError
from vault.service import StoredObject, Vault

__all__ = ["Allocation", "allocate", "append_message", "copy_rows", "deliver", "ensure_mailbox"]

log = structlog.get_logger("pli.append")


async def ensure_mailbox(conn: AsyncConnection, owner: str, name: str = INBOX) -> int:
    """The id of ``owner``'s mailbox ``name``, created if missing (in the caller's tx)."""
    q = select(mailbox.c.id).where(mailbox.c.owner == owner, mailbox.c.name == name)
    found = (await conn.execute(q)).scalar_one_or_none()
    if found is not None:
        return int(found)
    # RFC 3501 §2.3.1.1: UIDVALIDITY must change if UIDs are ever reused; seconds since epoch.
    res = await conn.execute(
        mailbox.insert()
        .values(
            owner=owner,
            name=name,
            uid_validity=int(time.time()),
            uid_next=1,
            highest_modseq=1,
            subscribed=True,
        )
        .returning(mailbox.c.id)
    )
    return int(res.scalar_one())


class Allocation:
    """UIDs reserved in a mailbox and the MODSEQ of the transaction that reserved them."""

    __slots__ = ("first_uid", "modseq", "uid_validity")

    def __init__(self, first_uid: int, modseq: int, uid_validity: int) -> None:
        self.first_uid = first_uid
        self.modseq = modseq
        self.uid_validity = uid_validity


async def allocate(conn: AsyncConnection, mailbox_id: int, count: int) -> Allocation:
    """Reserve ``count`` UIDs and bump HIGHESTMODSEQ once, in the caller's transaction.

    RFC 3501 §2.3.1.1: UIDs strictly ascend and are never reused; RFC 7162
    §3.1.2: every change gets a MODSEQ above all earlier ones. The UPDATE takes
    the row lock, so concurrent writers serialise here.
    """
    row = (
        await conn.execute(
            mailbox.update()
            .where(mailbox.c.id == mailbox_id)
            .values(
                uid_next=mailbox.c.uid_next + count, highest_modseq=mailbox.c.highest_modseq + 1
            )
            .returning(mailbox.c.uid_next, mailbox.c.highest_modseq, mailbox.c.uid_validity)
        )
    ).one()
    return Allocation(int(row.uid_next) - count, int(row.highest_modseq), int(row.uid_validity))


async def copy_rows(
    conn: AsyncConnection, src: int, dst: int, uids: list[int] | None, keep: bool = False
) -> tuple[list[tuple[int, int]], int]:
    """Copy (``keep``) or move rows between mailboxes: ((old UID, new UID)…, UIDVALIDITY).

    The body is shared, never copied: both rows name the same vault object, so a
    copy costs one row and a move keeps the message's identity (``msg_ref``).
    """
    q = select(message).where(message.c.mailbox_id == src).order_by(message.c.uid)
    if uids is not None:
        q = q.where(message.c.uid.in_(uids))
    rows = (await conn.execute(q)).all()
    alloc = await allocate(conn, dst, len(rows))
    if not rows:
        return [], alloc.uid_validity
    pairs = [(int(r.uid), alloc.first_uid + i) for i, r in enumerate(rows)]
    await conn.execute(
        insert(message),
        [
            {
                "msg_ref": r.msg_ref,
                "mailbox_id": dst,
                "uid": new,
                "blob": r.blob,
                "size": r.size,
                "internal_date": r.internal_date,
                "flags": r.flags,
                "modseq": alloc.modseq,
                "envelope": r.envelope,
                "bodystructure": r.bodystructure,
            }
            for r, (_, new) in zip(rows, pairs, strict=True)
        ],
    )
    if not keep:
        await conn.execute(delete(message).where(message.c.id.in_([r.id for r in rows])))
        await allocate(conn, src, 0)
    return pairs, alloc.uid_validity


async def deliver(conn: AsyncConnection, drops: Sequence[MailboxDrop]) -> None:
    """Put committed messages into their mailboxes, in the commit's transaction.

    One allocation per mailbox for the whole batch (UIDs in arrival order, one
    MODSEQ), mailboxes created on first use, then one multi-row INSERT.
    """
    wanted: dict[tuple[str, str], int] = {}
    for d in drops:
        wanted[d.owner, d.mailbox] = wanted.get((d.owner, d.mailbox), 0) + 1
    next_uid: dict[tuple[str, str], tuple[int, int]] = {}
    modseq: dict[int, int] = {}
    for (owner, name), count in wanted.items():
        mid = await ensure_mailbox(conn, owner, name)
        alloc = await allocate(conn, mid, count)  # UIDs and a MODSEQ (RFC 7162)
        next_uid[owner, name] = (mid, alloc.first_uid)
        modseq[mid] = alloc.modseq
    rows = []
    for d in drops:
        mid, uid = next_uid[d.owner, d.mailbox]
        next_uid[d.owner, d.mailbox] = (mid, uid + 1)
        rows.append(
            {
                "msg_ref": d.msg_ref,
                "mailbox_id": mid,
                "uid": uid,
                "blob": d.blob,
                "size": d.size,
                "internal_date": d.received_at,
                "flags": d.flags,
                "modseq": modseq[mid],
            }
        )
    if rows:
        await conn.execute(insert(message), rows)


async def append_message(
    engine: AsyncEngine,
    vault: Vault,
    *,
    mailbox_id: int,
    owner: str,
    actor: str,
    data: bytes,
    flags: str,
    internal_date: dt.datetime | None,
    remote: str,
    structure: tuple[str, str] | None = None,
) -> tuple[int, int]:
    """Store ``data`` in mailbox ``mailbox_id``; return (UIDVALIDITY, UID) for APPENDUID.

    ``structure`` is the message's (ENVELOPE, BODYSTRUCTURE), kept with the row.
    """
    problem = mime.header_problem(data)
    if problem:
        raise ContentRefused(f"Message {problem}", reason="header-too-big")
    ref = secrets.token_hex(8)
    try:
        stored = await vault.put(data)
    except (VaultError, OSError) as exc:
        log.error(
            events.INGEST_ABORTED, msg_ref=ref, reason="vault-unavailable", error=type(exc).__name__
        )
        raise Unavailable("Storage unavailable", reason="vault-unavailable") from exc
    now = dt.datetime.now(dt.UTC)
    try:
        async with engine.begin() as conn:
            await audit.append(
                conn,
                audit.AuditEvent(
                    action="message.appended",
                    actor=actor,
                    mailbox=owner,
                    msg_id=ref,
                    remote=remote,
                    detail={"protocol": Channel.IMAP.value, "size": stored.size},
                ),
            )
            await vault.record(conn, stored)
            alloc = await allocate(conn, mailbox_id, 1)
            await conn.execute(
                insert(message).values(
                    msg_ref=ref,
                    mailbox_id=mailbox_id,
                    uid=alloc.first_uid,
                    blob=stored.name,
                    size=stored.size,
                    internal_date=internal_date or now,
                    flags=flags,
                    modseq=alloc.modseq,
                    envelope=structure[0] if structure else None,
                    bodystructure=structure[1] if structure else None,
                )
            )
    except (SQLAlchemyError, OSError) as exc:
        await _cleanup(vault, stored, ref)
        log.error(
            events.INGEST_ABORTED,
            msg_ref=ref,
            reason="database-unavailable",
            error=type(exc).__name__,
        )
        raise Unavailable("Database unavailable", reason="database-unavailable") from exc
    log.info(events.INGEST_COMMITTED, msg_ref=ref, size=stored.size, recipients=0, queued=0)
    return alloc.uid_validity, alloc.first_uid


async def _cleanup(vault: Vault, stored: StoredObject, ref: str) -> None:
    """Drop the blob only when the database says its row is absent (as ``ingest`` does)."""
    try:
        if await vault.is_recorded(stored.name):
            return
        await vault.discard(stored)
    except (SQLAlchemyError, VaultError, OSError):
        log.warning(events.INGEST_ABORTED, msg_ref=ref, reason="cleanup-failed")
