"""Mailboxes and their messages, as IMAP users see them: SQL rows plus vault bodies.

Implements :class:`gateway.imap.backend.ImapBackend`. Every body read and every
login (success or failure) is an audit entry. A user only ever reaches the
mailboxes whose owner is their own address: there is no path from a mailbox
name to another user's rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from directory.base import InvalidAddress, normalize_address
from gateway.core.accounts import Accounts
from gateway.core.tables import mailbox, message
from gateway.core.throttle import LoginThrottle
from gateway.errors import LoginThrottled
from gateway.imap.backend import (
    MailboxNotFound,
    MailboxView,
    MessageInfo,
    MessageNotFound,
    Principal,
)
from vault import audit
from vault.service import Vault

__all__ = ["INBOX", "SENT", "MailStore", "ensure_mailbox"]

INBOX = "INBOX"
SENT = "Sent"  # RFC 6154 \Sent: where a submission keeps the sender's copy
_FAILED_LOGIN_DELAY = 1.0  # seconds; slows password guessing on one connection
log = structlog.get_logger("pli.mailstore")


async def ensure_mailbox(conn: AsyncConnection, owner: str, name: str = INBOX) -> int:
    """The id of ``owner``'s mailbox ``name``, created if missing (in the caller's tx)."""
    q = select(mailbox.c.id).where(mailbox.c.owner == owner, mailbox.c.name == name)
    found = (await conn.execute(q)).scalar_one_or_none()
    if found is not None:
        return int(found)
    # RFC 3501 §2.3.1.1: UIDVALIDITY must change if UIDs are ever reused; seconds since epoch.
    res = await conn.execute(
        mailbox.insert().values(owner=owner, name=name, uid_validity=int(time.time()), uid_next=1)
    )
    pk = res.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def _flags(text: str) -> frozenset[str]:
    return frozenset(text.split())


class MailStore:
    def __init__(self, engine: AsyncEngine, vault: Vault, accounts: Accounts,
                 throttle: LoginThrottle | None = None) -> None:
        self._engine = engine
        self._vault = vault
        self._accounts = accounts
        self._throttle = throttle or LoginThrottle()

    async def authenticate(self, username: str, password: str, remote: str) -> Principal | None:
        return await self.login(username, password, remote, "imap")

    async def login(
        self, username: str, password: str, remote: str, protocol: str
    ) -> Principal | None:
        """Check a password for any front end; audited, slowed down and throttled when wrong.

        Raises :class:`LoginThrottled` (a temporary refusal) while the address or
        the client IP has failed too often; no password is checked then.
        """
        try:
            address = normalize_address(username)
        except InvalidAddress:
            address = ""
        throttled = self._throttle.blocked(address, remote)
        ok = not throttled and bool(address) and await self._accounts.verify(address, password)
        reason = "" if ok else "throttled" if throttled else "bad-credentials"
        async with self._engine.begin() as conn:
            await audit.append(
                conn,
                audit.AuditEvent(
                    action="login", actor=address or "(invalid)", mailbox=address,
                    result="ok" if ok else "fail", reason=reason,
                    remote=remote, detail={"protocol": protocol},
                ),
            )
        if throttled:
            raise LoginThrottled()
        if not ok:
            self._throttle.failed(address, remote)
            await asyncio.sleep(_FAILED_LOGIN_DELAY)
            return None
        self._throttle.succeeded(address)
        return Principal(address=address)

    async def list_mailboxes(self, principal: Principal) -> list[str]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(mailbox.c.name).where(mailbox.c.owner == principal.address)
            )
            names = sorted({str(r.name) for r in rows} | {INBOX})
        names.remove(INBOX)
        return [INBOX, *names]

    async def _mailbox_id(self, conn: AsyncConnection, principal: Principal, name: str) -> int:
        if name.upper() == INBOX:
            return await ensure_mailbox(conn, principal.address)
        found = (
            await conn.execute(
                select(mailbox.c.id).where(
                    mailbox.c.owner == principal.address, mailbox.c.name == name
                )
            )
        ).scalar_one_or_none()
        if found is None:
            raise MailboxNotFound(name)
        return int(found)

    async def select(self, principal: Principal, mailbox_name: str) -> MailboxView:
        try:
            async with self._engine.begin() as conn:
                mid = await self._mailbox_id(conn, principal, mailbox_name)
        except SqlIntegrityError:  # created concurrently by a delivery: read it again
            async with self._engine.begin() as conn:
                mid = await self._mailbox_id(conn, principal, mailbox_name)
        async with self._engine.connect() as conn:
            box = (await conn.execute(select(mailbox).where(mailbox.c.id == mid))).one()
            rows = await conn.execute(
                select(message.c.uid, message.c.flags, message.c.size, message.c.internal_date)
                .where(message.c.mailbox_id == mid)
                .order_by(message.c.uid)
            )
            msgs = [
                MessageInfo(
                    uid=int(r.uid), flags=_flags(r.flags), size=int(r.size),
                    internal_date=(r.internal_date if r.internal_date.tzinfo
                                   else r.internal_date.replace(tzinfo=dt.UTC)),
                )
                for r in rows
            ]
        name = INBOX if mailbox_name.upper() == INBOX else mailbox_name
        return MailboxView(name, int(box.uid_validity), int(box.uid_next), msgs)

    async def fetch_body(
        self, principal: Principal, mailbox_name: str, uid: int, remote: str
    ) -> bytes:
        async with self._engine.connect() as conn:
            mid = await self._mailbox_id(conn, principal, mailbox_name)
            row = (
                await conn.execute(
                    select(message.c.blob, message.c.msg_ref).where(
                        message.c.mailbox_id == mid, message.c.uid == uid
                    )
                )
            ).one_or_none()
        if row is None:
            raise MessageNotFound(f"UID {uid}")
        data = await self._vault.get(row.blob)
        async with self._engine.begin() as conn:
            await audit.append(
                conn,
                audit.AuditEvent(
                    action="message.read", actor=principal.address, mailbox=principal.address,
                    msg_id=row.msg_ref, remote=remote, detail={"protocol": "imap", "uid": uid},
                ),
            )
        return data

    async def add_flags(
        self, principal: Principal, mailbox_name: str, uids: Sequence[int], flags: frozenset[str]
    ) -> None:
        async with self._engine.begin() as conn:
            mid = await self._mailbox_id(conn, principal, mailbox_name)
            rows = await conn.execute(
                select(message.c.id, message.c.flags).where(
                    message.c.mailbox_id == mid, message.c.uid.in_(list(uids))
                )
            )
            for r in rows.all():
                merged = " ".join(sorted(_flags(r.flags) | flags))
                await conn.execute(
                    update(message).where(message.c.id == r.id).values(flags=merged)
                )
