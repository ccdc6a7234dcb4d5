"""Messages in a mailbox: bodies and structures (audited reads), flags with their MODSEQ
(RFC 7162), expunge, copy and move, and APPEND through the core's storage rules.
Bodies stay in the vault after an expunge (retention decides); only the row goes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, delete, select, update

from gateway.base.db import utc
from gateway.base.errors import MailboxNotFound, MessageNotFound, PermissionDenied
from gateway.core.model import Channel
from gateway.core.ports import CopyResult, MessageInfo, Principal, StoreMode, StoreResult
from gateway.mailstore.access import Box, StoreBase, flags_of
from gateway.mailstore.append import allocate, append_message, copy_rows
from gateway.mailstore.tables import message
from vault import audit

__all__ = ["MessageOps"]


class MessageOps(StoreBase):
    async def _readable_row(
        self, principal: Principal, mailbox_name: str, uid: int, *columns: Any
    ) -> tuple[Box, Row[Any]]:
        """The mailbox (``r`` right checked) and the message row's ``columns`` (blob and
        msg_ref always first); raises MessageNotFound."""
        box = await self._open(principal, mailbox_name)
        box.need("r", "read")
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(message.c.blob, message.c.msg_ref, *columns).where(
                        message.c.mailbox_id == box.id, message.c.uid == uid
                    )
                )
            ).one_or_none()
        if row is None:
            raise MessageNotFound(f"UID {uid}")
        return box, row

    async def _audit_read(
        self,
        principal: Principal,
        box: Box,
        msg_ref: str,
        uid: int,
        remote: str,
        purpose: str,
        channel: Channel = Channel.IMAP,
    ) -> None:
        """Every read is an audit entry, committed before the data is handed out."""
        await self._reads.append(
            audit.AuditEvent(
                action="message.read",
                actor=principal.address,
                mailbox=box.owner,
                msg_id=msg_ref,
                remote=remote,
                detail={"protocol": channel.value, "uid": uid, "purpose": purpose},
            )
        )

    async def fetch_body(
        self,
        principal: Principal,
        mailbox_name: str,
        uid: int,
        remote: str,
        purpose: str = "fetch",
        channel: Channel = Channel.IMAP,
    ) -> bytes:
        box, row = await self._readable_row(principal, mailbox_name, uid)
        data = await self._body(row.blob)
        await self._audit_read(principal, box, row.msg_ref, uid, remote, purpose, channel)
        return data

    async def fetch_structure(
        self, principal: Principal, mailbox_name: str, uid: int, remote: str
    ) -> tuple[bytes, bytes]:
        """ENVELOPE and BODYSTRUCTURE from their columns; computed on first use and kept
        for every row of the same body, so a client listing a mailbox decrypts nothing."""
        box, row = await self._readable_row(
            principal, mailbox_name, uid, message.c.envelope, message.c.bodystructure
        )
        env, tree = row.envelope, row.bodystructure
        if env is None or tree is None:
            env, tree = (p.decode("latin-1") for p in self._structure(await self._body(row.blob)))
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(message)
                    .where(message.c.blob == row.blob)
                    .values(envelope=env, bodystructure=tree)
                )
        await self._audit_read(principal, box, row.msg_ref, uid, remote, "structure")
        return str(env).encode("latin-1"), str(tree).encode("latin-1")

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
                old = flags_of(r.flags)
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
            doomed = [r for r in (await conn.execute(q)).all() if "\\Deleted" in flags_of(r.flags)]
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
                        detail={"protocol": Channel.IMAP.value, "uid": int(r.uid)},
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
                            detail={
                                "protocol": Channel.IMAP.value,
                                "from_owner": src.owner,
                                "uid": d,
                            },
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


def _info(row: Row[Any], flags: frozenset[str], modseq: int) -> MessageInfo:
    return MessageInfo(
        uid=int(row.uid),
        flags=flags,
        size=int(row.size),
        internal_date=utc(row.internal_date),
        modseq=modseq,
    )
