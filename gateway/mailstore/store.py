"""Mailboxes and their messages, as IMAP users see them: SQL rows plus vault bodies.

Implements :class:`gateway.core.ports.ImapBackend`. Every body read, login,
append, copy, move and expunge is an audit entry; every flag change gets a new
MODSEQ (RFC 7162). A user only ever reaches the mailboxes whose owner is their
own address, or, under ``Shared/<address>/``, a shared mailbox the directory
lets them act for (``may_act_for``): a name is never a path, so no spelling of
a name leads to another user's rows. Bodies stay in the vault after an
expunge (retention decides); only the mailbox row goes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from directory.base import Directory, InvalidAddress, may_act_for, normalize_address
from gateway.base.db import utc as _utc
from gateway.base.errors import (
    LoginThrottled,
    MailboxExists,
    MailboxNotFound,
    MessageNotFound,
    PermissionDenied,
)
from gateway.core.ports import (
    ALL_RIGHTS,
    DELEGATED_RIGHTS,
    INBOX,
    SENT,
    SHARED_PREFIX,
    CopyResult,
    MailboxDrop,
    MailboxEntry,
    MailboxView,
    MessageInfo,
    Principal,
    StoreMode,
    StoreResult,
)
from gateway.mailstore.accounts import Accounts
from gateway.mailstore.append import allocate, append_message, copy_rows, ensure_mailbox
from gateway.mailstore.append import deliver as deliver_rows
from gateway.mailstore.notify import MailboxNotifier
from gateway.mailstore.tables import mailbox, mailbox_acl, message
from gateway.mailstore.throttle import LoginThrottle
from gateway.mailstore.views import ViewCache
from vault import audit
from vault.service import Vault

__all__ = ["SPECIAL_USE", "MailStore", "ensure_mailbox"]

# RFC 6154 §2: the special-use mailboxes every user gets, by their (English) names.
SPECIAL_USE = {SENT: "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk"}
_FAILED_LOGIN_DELAY = 1.0  # seconds; slows password guessing on one connection
_CACHE_BYTES = 8 * 1024 * 1024  # decrypted bodies kept for a client's next section fetch


def _flags(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True, slots=True)
class _Box:
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


class _ReadAudit:
    """Group commit of read audit entries: concurrent readers share one transaction (one
    fsync), and each body is still handed out only once its entry has committed."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._queue: list[tuple[audit.AuditEvent, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def append(self, event: audit.AuditEvent) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((event, fut))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="pli-read-audit")
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


class MailStore:
    """Implements :class:`~gateway.core.ports.ImapBackend` and, for the core's commit,
    :class:`~gateway.core.ports.MailboxWriter`."""

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
        self._reads = _ReadAudit(engine)
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cached = 0
        self._views = ViewCache()

    async def deliver(self, conn: AsyncConnection, drops: Sequence[MailboxDrop]) -> None:
        await deliver_rows(conn, drops)

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
                    action="login",
                    actor=address or "(invalid)",
                    mailbox=address,
                    result="ok" if ok else "fail",
                    reason=reason,
                    remote=remote,
                    detail={"protocol": protocol},
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

    async def _box(self, conn: AsyncConnection, principal: Principal, name: str) -> _Box:
        owner, own_name, shown = await self._split(principal, name)
        rights = await self._rights(conn, principal, owner)
        if "l" not in rights and "r" not in rights:  # RFC 4314 §6: not even its existence
            raise MailboxNotFound(name)
        if own_name == INBOX:
            return _Box(await ensure_mailbox(conn, owner), owner, INBOX, shown, rights)
        found = (
            await conn.execute(
                select(mailbox.c.id).where(mailbox.c.owner == owner, mailbox.c.name == own_name)
            )
        ).scalar_one_or_none()
        if found is None:
            raise MailboxNotFound(name)
        return _Box(int(found), owner, own_name, shown, rights)

    async def _open(self, principal: Principal, name: str) -> _Box:
        try:
            async with self._engine.begin() as conn:
                return await self._box(conn, principal, name)
        except SqlIntegrityError:  # INBOX created concurrently by a delivery: read it again
            async with self._engine.begin() as conn:
                return await self._box(conn, principal, name)

    # --- mailboxes ---------------------------------------------------------------------
    async def list_mailboxes(self, principal: Principal) -> list[MailboxEntry]:
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(mailbox.c.name, mailbox.c.subscribed).where(
                        mailbox.c.owner == principal.address
                    )
                )
            ).all()
            own = {str(r.name): bool(r.subscribed) for r in rows}
            for name in (INBOX, *SPECIAL_USE):  # RFC 6154: found by attribute, not by name
                if name not in own:
                    await ensure_mailbox(conn, principal.address, name)
                    own[name] = True
        out = [MailboxEntry(INBOX)] + [
            MailboxEntry(n, SPECIAL_USE.get(n, ""), sub)
            for n, sub in sorted(own.items())
            if n != INBOX
        ]
        for owner in await self._shared_owners(principal):
            async with self._engine.connect() as conn:
                names = (
                    (await conn.execute(select(mailbox.c.name).where(mailbox.c.owner == owner)))
                    .scalars()
                    .all()
                )
            for n in sorted({str(x) for x in names} | {INBOX}):
                out.append(MailboxEntry(f"{SHARED_PREFIX}{owner}/{n}"))
        return out

    async def create(self, principal: Principal, name: str) -> None:
        owner, own_name, _ = await self._split(principal, name)
        async with self._engine.begin() as conn:
            if "k" not in await self._rights(conn, principal, owner):
                raise PermissionDenied("NOPERM", "Missing right k to create")
            exists = (
                await conn.execute(
                    select(mailbox.c.id).where(mailbox.c.owner == owner, mailbox.c.name == own_name)
                )
            ).first()
            if exists is not None or own_name == INBOX:
                raise MailboxExists(name)
            await ensure_mailbox(conn, owner, own_name)
            await audit.append(
                conn,
                audit.AuditEvent(action="mailbox.created", actor=principal.address, mailbox=owner),
            )

    async def delete(self, principal: Principal, name: str) -> None:
        async with self._engine.begin() as conn:
            box = await self._box(conn, principal, name)
            box.need("x", "delete")
            if box.name == INBOX:  # RFC 3501 §6.3.4
                raise PermissionDenied("CANNOT", "INBOX cannot be deleted")
            gone = await conn.execute(delete(message).where(message.c.mailbox_id == box.id))
            await conn.execute(delete(mailbox).where(mailbox.c.id == box.id))
            await audit.append(
                conn,
                audit.AuditEvent(
                    action="mailbox.deleted",
                    actor=principal.address,
                    mailbox=box.owner,
                    detail={"messages": gone.rowcount or 0},
                ),
            )
        self.notifier.notify([box.owner])

    async def rename(self, principal: Principal, old: str, new: str) -> None:
        owner_new, name_new, _ = await self._split(principal, new)
        async with self._engine.begin() as conn:
            box = await self._box(conn, principal, old)
            box.need("xk", "rename")
            if owner_new != box.owner:
                raise PermissionDenied("CANNOT", "Cannot rename across namespaces")
            taken = (
                await conn.execute(
                    select(mailbox.c.id).where(
                        mailbox.c.owner == box.owner, mailbox.c.name == name_new
                    )
                )
            ).first()
            if taken is not None or name_new == INBOX:
                raise MailboxExists(new)
            if box.name == INBOX:  # RFC 3501 §6.3.5: move INBOX's messages, INBOX stays
                target = await ensure_mailbox(conn, box.owner, name_new)
                await copy_rows(conn, box.id, target, None)
            else:
                children = (
                    await conn.execute(
                        select(mailbox.c.id, mailbox.c.name).where(
                            mailbox.c.owner == box.owner,
                            mailbox.c.name.startswith(box.name + "/", autoescape=True),
                        )
                    )
                ).all()
                await conn.execute(
                    update(mailbox).where(mailbox.c.id == box.id).values(name=name_new)
                )
                for child in children:
                    await conn.execute(
                        update(mailbox)
                        .where(mailbox.c.id == child.id)
                        .values(name=name_new + str(child.name)[len(box.name) :])
                    )
            await audit.append(
                conn,
                audit.AuditEvent(
                    action="mailbox.renamed", actor=principal.address, mailbox=box.owner
                ),
            )
        self.notifier.notify([box.owner])

    async def subscribe(self, principal: Principal, name: str, subscribed: bool) -> None:
        async with self._engine.begin() as conn:
            box = await self._box(conn, principal, name)
            await conn.execute(
                update(mailbox).where(mailbox.c.id == box.id).values(subscribed=subscribed)
            )

    async def select(self, principal: Principal, mailbox_name: str) -> MailboxView:
        box = await self._open(principal, mailbox_name)
        box.need("r", "read")
        async with self._engine.connect() as conn:
            head = (await conn.execute(select(mailbox).where(mailbox.c.id == box.id))).one()
            rows = (
                await conn.execute(
                    select(
                        message.c.uid,
                        message.c.flags,
                        message.c.size,
                        message.c.internal_date,
                        message.c.modseq,
                    )
                    .where(message.c.mailbox_id == box.id)
                    .order_by(message.c.uid)
                )
            ).all()
        msgs = self._views.messages(box.id, rows)  # shared by sessions seeing the same state
        return MailboxView(
            box.shown,
            int(head.uid_validity),
            int(head.uid_next),
            msgs,
            highest_modseq=int(head.highest_modseq),
            owner=box.owner,
            writable=bool(set("swte") & set(box.rights)),
            rights=box.rights,
        )

    # --- messages ----------------------------------------------------------------------
    async def fetch_body(
        self, principal: Principal, mailbox_name: str, uid: int, remote: str, purpose: str = "fetch"
    ) -> bytes:
        box = await self._open(principal, mailbox_name)
        box.need("r", "read")
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(message.c.blob, message.c.msg_ref).where(
                        message.c.mailbox_id == box.id, message.c.uid == uid
                    )
                )
            ).one_or_none()
        if row is None:
            raise MessageNotFound(f"UID {uid}")
        data = await self._body(row.blob)
        await self._reads.append(
            audit.AuditEvent(
                action="message.read",
                actor=principal.address,
                mailbox=box.owner,
                msg_id=row.msg_ref,
                remote=remote,
                detail={"protocol": "imap", "uid": uid, "purpose": purpose},
            )
        )
        return data

    async def _body(self, blob: str) -> bytes:
        data = self._cache.get(blob)
        if data is None:
            # bytes: the cache is shared by every session, so what it holds must not change
            data = bytes(await self._vault.get(blob))
            self._remember(blob, data)
        else:
            self._cache.move_to_end(blob)
        return data

    async def fetch_structure(
        self, principal: Principal, mailbox_name: str, uid: int, remote: str
    ) -> tuple[bytes, bytes]:
        """ENVELOPE and BODYSTRUCTURE from their columns; computed on first use and kept
        for every row of the same body, so a client listing a mailbox decrypts nothing."""
        box = await self._open(principal, mailbox_name)
        box.need("r", "read")
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        message.c.blob,
                        message.c.msg_ref,
                        message.c.envelope,
                        message.c.bodystructure,
                    ).where(message.c.mailbox_id == box.id, message.c.uid == uid)
                )
            ).one_or_none()
        if row is None:
            raise MessageNotFound(f"UID {uid}")
        env, tree = row.envelope, row.bodystructure
        if env is None or tree is None:
            env, tree = (p.decode("latin-1") for p in self._structure(await self._body(row.blob)))
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(message)
                    .where(message.c.blob == row.blob)
                    .values(envelope=env, bodystructure=tree)
                )
        await self._reads.append(
            audit.AuditEvent(
                action="message.read",
                actor=principal.address,
                mailbox=box.owner,
                msg_id=row.msg_ref,
                remote=remote,
                detail={"protocol": "imap", "uid": uid, "purpose": "structure"},
            )
        )
        return str(env).encode("latin-1"), str(tree).encode("latin-1")

    def _remember(self, blob: str, data: bytes) -> None:
        """A bounded LRU of decrypted bodies: clients fetch a header, then the body."""
        if len(data) > _CACHE_BYTES // 8:
            return
        self._cache[blob] = data
        self._cached += len(data)
        while self._cached > _CACHE_BYTES:
            _, old = self._cache.popitem(last=False)
            self._cached -= len(old)

    async def store_flags(
        self,
        principal: Principal,
        mailbox_name: str,
        uids: Sequence[int],
        mode: StoreMode,
        flags: frozenset[str],
        unchanged_since: int | None = None,
    ) -> StoreResult:
        changed: list[MessageInfo] = []
        refused: list[int] = []
        async with self._engine.begin() as conn:
            box = await self._box(conn, principal, mailbox_name)
            # RFC 4314 §4: s for \Seen, t for \Deleted, w for the others.
            box.need(
                "".join(
                    sorted(
                        {"s" if f == "\\Seen" else "t" if f == "\\Deleted" else "w" for f in flags}
                    )
                ),
                "change these flags",
            )
            rows = (
                await conn.execute(
                    select(message)
                    .where(message.c.mailbox_id == box.id, message.c.uid.in_(list(uids)))
                    .order_by(message.c.uid)
                )
            ).all()
            updates: list[tuple[int, frozenset[str], Row[Any]]] = []
            for r in rows:
                if unchanged_since is not None and int(r.modseq) > unchanged_since:
                    refused.append(int(r.uid))  # RFC 7162 §3.2: MODIFIED
                    continue
                old = _flags(r.flags)
                new = (
                    old | flags
                    if mode is StoreMode.ADD
                    else old - flags
                    if mode is StoreMode.REMOVE
                    else flags
                )
                if new != old:
                    updates.append((int(r.id), new, r))
            if updates:
                alloc = await allocate(conn, box.id, 0)
                for row_id, new, r in updates:
                    await conn.execute(
                        update(message)
                        .where(message.c.id == row_id)
                        .values(flags=" ".join(sorted(new)), modseq=alloc.modseq)
                    )
                    changed.append(_info(r, new, alloc.modseq))
        if changed:
            self.notifier.notify([box.owner])
        return StoreResult(changed, refused)

    async def expunge(
        self, principal: Principal, mailbox_name: str, uids: Sequence[int] | None, remote: str
    ) -> list[int]:
        async with self._engine.begin() as conn:
            box = await self._box(conn, principal, mailbox_name)
            box.need("e", "expunge")
            q = select(message.c.id, message.c.uid, message.c.flags, message.c.msg_ref).where(
                message.c.mailbox_id == box.id
            )
            if uids is not None:
                q = q.where(message.c.uid.in_(list(uids)))
            doomed = [r for r in (await conn.execute(q)).all() if "\\Deleted" in _flags(r.flags)]
            if not doomed:
                return []
            await conn.execute(delete(message).where(message.c.id.in_([r.id for r in doomed])))
            await allocate(conn, box.id, 0)
            await audit.append_many(
                conn,
                [
                    audit.AuditEvent(
                        action="message.expunged",
                        actor=principal.address,
                        mailbox=box.owner,
                        msg_id=r.msg_ref,
                        remote=remote,
                        detail={"protocol": "imap", "uid": int(r.uid)},
                    )
                    for r in doomed
                ],
            )
        self.notifier.notify([box.owner])
        return sorted(int(r.uid) for r in doomed)

    async def copy(
        self,
        principal: Principal,
        mailbox_name: str,
        uids: Sequence[int],
        dest: str,
        remote: str,
        *,
        move: bool = False,
    ) -> CopyResult:
        async with self._engine.begin() as conn:
            src = await self._box(conn, principal, mailbox_name)
            # RFC 3501 §6.4.7 / RFC 5530: [TRYCREATE] when the destination does not exist.
            try:
                dst = await self._box(conn, principal, dest)
            except MailboxNotFound:
                raise PermissionDenied("TRYCREATE", "No such destination mailbox") from None
            src.need("rte" if move else "r", "move" if move else "copy")
            dst.need("i", "insert")
            pairs, validity = await copy_rows(conn, src.id, dst.id, list(uids), keep=not move)
            if pairs:
                action = "message.moved" if move else "message.copied"
                refs = {
                    int(r.uid): str(r.msg_ref)
                    for r in await conn.execute(
                        select(message.c.uid, message.c.msg_ref).where(
                            message.c.mailbox_id == dst.id, message.c.uid.in_([d for _, d in pairs])
                        )
                    )
                }
                await audit.append_many(
                    conn,
                    [
                        audit.AuditEvent(
                            action=action,
                            actor=principal.address,
                            mailbox=dst.owner,
                            msg_id=str(refs.get(d, "")),
                            remote=remote,
                            detail={"protocol": "imap", "from_owner": src.owner, "uid": d},
                        )
                        for _, d in pairs
                    ],
                )
        self.notifier.notify({src.owner, dst.owner})
        return CopyResult(validity, pairs)

    async def append(
        self,
        principal: Principal,
        mailbox_name: str,
        data: bytes,
        flags: frozenset[str],
        internal_date: dt.datetime | None,
        remote: str,
    ) -> tuple[int, int]:
        try:
            box = await self._open(principal, mailbox_name)
        except MailboxNotFound:  # RFC 3501 §6.3.11
            raise PermissionDenied("TRYCREATE", "No such mailbox") from None
        box.need("i", "append")
        env, tree = self._structure(data)  # computed once, at the message's arrival
        result = await append_message(
            self._engine,
            self._vault,
            mailbox_id=box.id,
            owner=box.owner,
            actor=principal.address,
            data=data,
            flags=" ".join(sorted(flags)),
            internal_date=internal_date,
            remote=remote,
            structure=(env.decode("latin-1"), tree.decode("latin-1")),
        )
        self.notifier.notify([box.owner])
        return result

    # --- RFC 4314 access control on shared mailboxes ------------------------------------
    async def get_acl(
        self, principal: Principal, mailbox_name: str
    ) -> tuple[str, list[tuple[str, str]]]:
        async with self._engine.begin() as conn:
            box = await self._box(conn, principal, mailbox_name)
            rows = (
                await conn.execute(
                    select(mailbox_acl.c.identifier, mailbox_acl.c.rights).where(
                        mailbox_acl.c.owner == box.owner
                    )
                )
            ).all()
        entries = [
            (box.owner, ALL_RIGHTS),
            *sorted((str(r.identifier), str(r.rights)) for r in rows),
        ]
        return box.rights, entries

    async def set_acl(
        self, principal: Principal, mailbox_name: str, identifier: str, rights: str | None
    ) -> None:
        """ACLs apply to the owner's whole tree (pli shares mailboxes, not folders)."""
        async with self._engine.begin() as conn:
            box = await self._box(conn, principal, mailbox_name)
            box.need("a", "administer")
            if box.owner == principal.address:
                raise PermissionDenied("CANNOT", "Personal mailboxes are not shared")
            ident = identifier.lower()
            if self.directory is None or ident not in await self.directory.delegates(
                box.owner
            ):  # the directory decides who may act for a shared mailbox
                raise PermissionDenied("CANNOT", "Only delegated users can hold rights")
            await conn.execute(
                delete(mailbox_acl).where(
                    mailbox_acl.c.owner == box.owner, mailbox_acl.c.identifier == ident
                )
            )
            if rights is not None:
                await conn.execute(
                    insert(mailbox_acl).values(owner=box.owner, identifier=ident, rights=rights)
                )
            await audit.append(
                conn,
                audit.AuditEvent(
                    action="mailbox.acl",
                    actor=principal.address,
                    mailbox=box.owner,
                    detail={"identifier": ident, "rights": rights or "-"},
                ),
            )


def _info(row: Row[Any], flags: frozenset[str], modseq: int) -> MessageInfo:
    return MessageInfo(
        uid=int(row.uid),
        flags=flags,
        size=int(row.size),
        internal_date=_utc(row.internal_date),
        modseq=modseq,
    )
