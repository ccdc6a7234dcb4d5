"""Retention expiry and legal holds seen from the mailstore: which objects a message or
mailbox stands on, and removing messages whose archive period is over.

The vault decides *whether* an object may go (retention date, holds) and
audits its deletion; this module adds what only the gateway knows: the
messages and queue rows that point at each object. A message is taken out of
its mailboxes (audited) before its object is deleted, so no mailbox ever
lists a message whose body is gone; a crash between the two leaves an
unreferenced object that the next purge deletes. Nothing here runs on its own:
purges are explicit operator commands, reported line by line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.core import records
from gateway.core.ports import OutboundQueue
from gateway.mailstore import queries
from gateway.mailstore.tables import mailbox, message
from vault import audit, retention
from vault.base import LegalHoldActive, RetentionLocked, VaultError
from vault.service import Vault

__all__ = ["PurgeReport", "objects_of_mailbox", "objects_of_message", "purge_expired"]


@dataclass
class PurgeReport:
    expired: int = 0
    deleted: list[str] = field(default_factory=list)
    messages_removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (object, why)


async def objects_of_message(engine: AsyncEngine, queue: OutboundQueue, msg_ref: str) -> list[str]:
    """The vault objects of one message (its body, wherever it was delivered or queued)."""
    async with engine.connect() as conn:
        names = await queries.message_blobs(conn, msg_ref)
        names |= await queue.objects_of(conn, msg_ref)
        names |= await records.evidence_objects(conn, [msg_ref])  # original, receipts, copy
    return sorted(names)


async def objects_of_mailbox(engine: AsyncEngine, owner: str) -> list[str]:
    """Every object behind the messages held in ``owner``'s mailboxes."""
    async with engine.connect() as conn:
        refs, bodies = await queries.messages_of_mailbox(conn, owner)
        return sorted(bodies | await records.evidence_objects(conn, refs))


async def purge_expired(
    engine: AsyncEngine,
    vault: Vault,
    queue: OutboundQueue,
    *,
    actor: str,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    limit: int = 10_000,
) -> PurgeReport:
    """Delete what is past its retention date and under no hold, messages first."""
    now = now or dt.datetime.now(dt.UTC)
    report = PurgeReport()
    async with engine.connect() as conn:
        names = await retention.expired(conn, now, limit)
    report.expired = len(names)
    if dry_run:
        return report
    for name in names:
        async with engine.begin() as conn:
            if await queue.needs(conn, name):
                report.skipped.append((name, "still queued for delivery"))
                continue
            if await retention.held(conn, [name]):  # placed since the listing
                report.skipped.append((name, "under legal hold"))
                continue
            rows = (
                await conn.execute(
                    select(message.c.id, message.c.msg_ref, mailbox.c.owner)
                    .join(mailbox, mailbox.c.id == message.c.mailbox_id)
                    .where(message.c.blob == name)
                )
            ).all()
            if rows:
                await conn.execute(delete(message).where(message.c.blob == name))
            await queue.forget(conn, name)
            await records.forget_evidence(conn, name)
            for row in rows:
                await audit.append(
                    conn,
                    audit.AuditEvent(
                        action="message.expired",
                        actor=actor,
                        mailbox=row.owner,
                        msg_id=row.msg_ref,
                        reason="retention-expired",
                    ),
                )
        try:
            await vault.delete(name, actor=actor, reason="retention-expired", now=now)
        except (RetentionLocked, LegalHoldActive) as exc:  # changed since the listing
            report.skipped.append((name, str(exc)))
            continue
        except VaultError as exc:
            report.skipped.append((name, f"{type(exc).__name__}: {exc}"))
            continue
        report.messages_removed += len(rows)
        report.deleted.append(name)
    return report
