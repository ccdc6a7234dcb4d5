"""Closing mailboxes: finding the ones unused for a year, and closing one, on the record.

CNIL guidance: a mailbox unused for a year is closed and deleted, with notice,
and the deletion itself is logged. "Unused" means no successful login (IMAP,
submission, API) in the audit trail since the cut-off, and no account change
since then. Closing removes the account, its mailboxes, their messages and the
rights granted on them, in one audited transaction; the message bodies stay in
the vault until their retention date (medical records outlive mailboxes) and
go with ``pli vault purge``. Nothing here runs by itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.base.db import utc as _utc
from gateway.base.errors import AccountNotFound
from gateway.mailstore.tables import account, mailbox, mailbox_acl, message
from vault import audit

__all__ = ["Closed", "Inactive", "close_mailbox", "inactive_mailboxes"]


@dataclass(frozen=True, slots=True)
class Inactive:
    address: str
    last_login: dt.datetime | None
    account_changed: dt.datetime


@dataclass(frozen=True, slots=True)
class Closed:
    address: str
    mailboxes: int
    messages: int


async def inactive_mailboxes(
    engine: AsyncEngine, days: int = 365, now: dt.datetime | None = None
) -> list[Inactive]:
    """Accounts with no successful login and no change for ``days`` days."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=days)
    async with engine.connect() as conn:
        accounts = (
            await conn.execute(
                select(account.c.address, account.c.updated_at).order_by(account.c.address)
            )
        ).all()
        logins = dict((await conn.execute(audit.last_event_by_mailbox("login", result="ok"))).all())
    found = []
    for address, changed in accounts:
        last = _utc(logins.get(address))
        changed_utc: dt.datetime = _utc(changed)  # account.updated_at is NOT NULL
        if (last is None or last < cutoff) and changed_utc < cutoff:
            found.append(Inactive(address, last, changed_utc))
    return found


async def close_mailbox(engine: AsyncEngine, address: str, *, actor: str, reason: str) -> Closed:
    """Remove an account and everything it holds in the mailstore, audited in the same commit."""
    address = address.lower()
    async with engine.begin() as conn:
        gone = await conn.execute(delete(account).where(account.c.address == address))
        if gone.rowcount != 1:
            raise AccountNotFound(address)
        boxes = select(mailbox.c.id).where(mailbox.c.owner == address)
        count = (
            await conn.execute(
                select(func.count()).select_from(message).where(message.c.mailbox_id.in_(boxes))
            )
        ).scalar_one()
        await conn.execute(delete(message).where(message.c.mailbox_id.in_(boxes)))
        removed = await conn.execute(delete(mailbox).where(mailbox.c.owner == address))
        await conn.execute(
            delete(mailbox_acl).where(
                or_(mailbox_acl.c.owner == address, mailbox_acl.c.identifier == address)
            )
        )
        await audit.append(
            conn,
            audit.AuditEvent(
                action="mailbox.closed",
                actor=actor,
                mailbox=address,
                reason=reason[:64],
                detail={"mailboxes": int(removed.rowcount), "messages": int(count)},
            ),
        )
    return Closed(address, int(removed.rowcount), int(count))
