"""Mailboxes (folders) as users see them: list, create, delete, rename, subscribe, select,
and the RFC 4314 access control of shared mailboxes. Every change is audited and
wakes the owner's IDLE sessions."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update

from gateway.base.errors import MailboxExists, PermissionDenied
from gateway.core.ports import (
    ALL_RIGHTS,
    INBOX,
    SENT,
    SHARED_PREFIX,
    MailboxEntry,
    MailboxView,
    Principal,
)
from gateway.mailstore.access import StoreBase
from gateway.mailstore.append import copy_rows, ensure_mailbox
from gateway.mailstore.tables import mailbox, mailbox_acl, message
from vault import audit

__all__ = ["SPECIAL_USE", "FolderOps"]

# RFC 6154 §2: the special-use mailboxes every user gets, by their (English) names.
SPECIAL_USE = {SENT: "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk"}


class FolderOps(StoreBase):
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
