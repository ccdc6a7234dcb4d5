"""What every mailstore operation stands on: a mailbox name turned into rows the user may
touch, their RFC 4314 rights, the shared body cache and the group-committed read audit.

A user only ever reaches the mailboxes whose owner is their own address, or,
under ``Shared/<address>/``, a shared mailbox the directory lets them act for
(``may_act_for``): a name is never a path, so no spelling of a name leads to
another user's rows. :class:`StoreBase` holds the state; the operations are in
``folders.py`` and ``messages.py``, combined by ``store.py``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from directory.base import Directory, may_act_for
from gateway.base.errors import MailboxNotFound, PermissionDenied
from gateway.core.ports import ALL_RIGHTS, DELEGATED_RIGHTS, INBOX, SHARED_PREFIX, Principal
from gateway.mailstore.accounts import Accounts
from gateway.mailstore.append import ensure_mailbox
from gateway.mailstore.notify import MailboxNotifier
from gateway.mailstore.tables import mailbox, mailbox_acl
from gateway.mailstore.throttle import LoginThrottle
from gateway.mailstore.views import ViewCache
from vault import audit
from vault.service import Vault

__all__ = ["Box", "ReadAudit", "StoreBase", "Structure", "flags_of"]

_CACHE_BYTES = 8 * 1024 * 1024  # decrypted bodies kept for a client's next section fetch


def flags_of(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True, slots=True)
class Box:
    id: int
    owner: str
    name: str  # the owner's own name for it
    shown: str  # the name this user sees (Shared/... for a delegated mailbox)
    rights: str = ALL_RIGHTS  # RFC 4314 rights of this user on it

    def need(self, rights: str, what: str) -> None:
        """RFC 4314 §4: refuse an operation the user's rights do not cover."""
        missing = [r for r in rights if r not in self.rights]
        if missing:
            raise PermissionDenied("NOPERM", f"Missing right {''.join(missing)} to {what}")


class ReadAudit:
    """Group commit of read audit entries: concurrent readers share one transaction (one
    fsync), and each body is still handed out only once its entry has committed."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._queue: list[tuple[audit.AuditEvent, asyncio.Future[None]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def append(self, event: audit.AuditEvent) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((event, fut))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="pli-read-audit")
        await asyncio.shield(fut)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:256], self._queue[256:]
            failure: Exception | None = None
            try:
                async with self._engine.begin() as conn:
                    await audit.append_many(conn, [e for e, _ in batch])
            except Exception as exc:  # every reader must get an answer, whatever failed
                failure = exc
            for _, fut in batch:
                if fut.done():
                    continue
                if failure is not None:
                    fut.set_exception(failure)
                else:
                    fut.set_result(None)


# (message bytes) -> (ENVELOPE, BODYSTRUCTURE) as IMAP writes them; the composition root
# passes the IMAP front end's function, so the mailstore imports no front end.
Structure = Callable[[bytes], tuple[bytes, bytes]]


class StoreBase:
    """The state every mailstore operation shares, and the name -> rows resolution."""

    def __init__(
        self,
        engine: AsyncEngine,
        vault: Vault,
        accounts: Accounts,
        *,
        structure: Structure,
        throttle: LoginThrottle | None = None,
        notifier: MailboxNotifier | None = None,
        directory: Directory | None = None,
    ) -> None:
        self._engine = engine
        self._vault = vault
        self._accounts = accounts
        self._structure = structure
        self._throttle = throttle or LoginThrottle()
        self.notifier = notifier or MailboxNotifier()
        self.directory = directory  # given: delegated users see shared mailboxes (RFC 4314)
        self._reads = ReadAudit(engine)
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cached = 0
        self._views = ViewCache()

    # --- names → rows ------------------------------------------------------------------
    async def _shared_owners(self, principal: Principal) -> list[str]:
        if self.directory is None:
            return []
        return sorted(await self.directory.delegated_mailboxes(principal.address))

    async def _split(self, principal: Principal, name: str) -> tuple[str, str, str]:
        """(owner, owner's name, shown name); the shared owner must be delegated to us."""
        if name.upper() == INBOX:
            return principal.address, INBOX, INBOX
        if not name.startswith(SHARED_PREFIX):
            return principal.address, name, name
        owner, _, rest = name[len(SHARED_PREFIX) :].partition("/")
        # RFC 4314 §6: a mailbox the user may not look up is reported as non-existent.
        if (
            not rest
            or self.directory is None
            or not await may_act_for(self.directory, principal.address, owner.lower())
        ):
            raise MailboxNotFound(name)
        rest = INBOX if rest.upper() == INBOX else rest
        return owner.lower(), rest, f"{SHARED_PREFIX}{owner.lower()}/{rest}"

    async def _rights(self, conn: AsyncConnection, principal: Principal, owner: str) -> str:
        if owner == principal.address:
            return ALL_RIGHTS
        found = (
            await conn.execute(
                select(mailbox_acl.c.rights).where(
                    mailbox_acl.c.owner == owner, mailbox_acl.c.identifier == principal.address
                )
            )
        ).scalar_one_or_none()
        return DELEGATED_RIGHTS if found is None else str(found)

    async def _box(self, conn: AsyncConnection, principal: Principal, name: str) -> Box:
        owner, own_name, shown = await self._split(principal, name)
        rights = await self._rights(conn, principal, owner)
        if "l" not in rights and "r" not in rights:  # RFC 4314 §6: not even its existence
            raise MailboxNotFound(name)
        if own_name == INBOX:
            return Box(await ensure_mailbox(conn, owner), owner, INBOX, shown, rights)
        found = (
            await conn.execute(
                select(mailbox.c.id).where(mailbox.c.owner == owner, mailbox.c.name == own_name)
            )
        ).scalar_one_or_none()
        if found is None:
            raise MailboxNotFound(name)
        return Box(int(found), owner, own_name, shown, rights)

    async def _open(self, principal: Principal, name: str) -> Box:
        try:
            async with self._engine.begin() as conn:
                return await self._box(conn, principal, name)
        except SqlIntegrityError:  # INBOX created concurrently by a delivery: read it again
            async with self._engine.begin() as conn:
                return await self._box(conn, principal, name)

    async def _body(self, blob: str) -> bytes:
        data = self._cache.get(blob)
        if data is None:
            # bytes: the cache is shared by every session, so what it holds must not change
            data = bytes(await self._vault.get(blob))
            self._remember(blob, data)
        else:
            self._cache.move_to_end(blob)
        return data

    def _remember(self, blob: str, data: bytes) -> None:
        """A bounded LRU of decrypted bodies: clients fetch a header, then the body."""
        if len(data) > _CACHE_BYTES // 8:
            return
        self._cache[blob] = data
        self._cached += len(data)
        while self._cached > _CACHE_BYTES:
            _, old = self._cache.popitem(last=False)
            self._cached -= len(old)
