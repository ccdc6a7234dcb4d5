"""Mailboxes and their messages, as IMAP users see them: SQL rows plus vault bodies.

:class:`MailStore` implements :class:`gateway.core.ports.ImapBackend` (the
folder operations in ``folders.py``, the message operations in
``messages.py``, the name -> rows resolution they share in ``access.py``) and,
for the core's commit, :class:`gateway.core.ports.MailboxWriter`. Every body
read, login, append, copy, move and expunge is an audit entry; every flag
change gets a new MODSEQ (RFC 7162).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from directory.base import InvalidAddress, normalize_address
from gateway.base.errors import LoginThrottled
from gateway.core.model import Channel
from gateway.core.ports import MailboxDrop, Principal
from gateway.mailstore.append import deliver as deliver_rows
from gateway.mailstore.append import ensure_mailbox
from gateway.mailstore.folders import SPECIAL_USE, FolderOps
from gateway.mailstore.messages import MessageOps
from vault import audit

__all__ = ["SPECIAL_USE", "MailStore", "ensure_mailbox"]

_FAILED_LOGIN_DELAY = 1.0  # seconds; slows password guessing on one connection


class MailStore(FolderOps, MessageOps):
    """Implements :class:`~gateway.core.ports.ImapBackend` and, for the core's commit,
    :class:`~gateway.core.ports.MailboxWriter`."""

    async def deliver(self, conn: AsyncConnection, drops: Sequence[MailboxDrop]) -> None:
        await deliver_rows(conn, drops)

    async def authenticate(self, username: str, password: str, remote: str) -> Principal | None:
        return await self.login(username, password, remote, Channel.IMAP)

    async def login(
        self, username: str, password: str, remote: str, channel: Channel
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
                    action="login",
                    actor=address or "(invalid)",
                    mailbox=address,
                    result="ok" if ok else "fail",
                    reason=reason,
                    remote=remote,
                    detail={"protocol": channel.value},
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
