"""Rights on shared (ORG/APP/CAB) mailboxes granted by the operator (RFC 4314 rights).

IMAP's SETACL needs the "a" right, which nobody holds until an operator gives
it: this is where the operator does. The directory stays the authority on who
may act for a mailbox (its delegations); an ACL entry only narrows or widens
what a delegated user may do in it. Every change is audited.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from directory.base import Directory
from gateway.base.errors import InvalidInput, PermissionDenied
from gateway.core.ports import ALL_RIGHTS, DELEGATED_RIGHTS
from gateway.mailstore.tables import mailbox_acl
from vault import audit

__all__ = ["AclEntry", "canonical", "list_acl", "set_acl"]


@dataclass(frozen=True, slots=True)
class AclEntry:
    identifier: str
    rights: str
    explicit: bool  # False: the delegation's default rights


def canonical(rights: str) -> str:
    """Rights in RFC 4314 order; unknown letters are an error, not silently dropped."""
    unknown = sorted(set(rights) - set(ALL_RIGHTS))
    if unknown:
        raise InvalidInput(f"unknown rights {''.join(unknown)!r} (RFC 4314: {ALL_RIGHTS})")
    return "".join(r for r in ALL_RIGHTS if r in rights)


async def list_acl(engine: AsyncEngine, directory: Directory, owner: str) -> list[AclEntry]:
    """Each delegate of ``owner`` with the rights it holds (explicit entry or default)."""
    owner = owner.lower()
    async with engine.connect() as conn:
        rows = dict(
            (
                await conn.execute(
                    select(mailbox_acl.c.identifier, mailbox_acl.c.rights).where(
                        mailbox_acl.c.owner == owner
                    )
                )
            ).all()
        )
    delegates = await directory.delegates(owner)
    return [
        AclEntry(d, str(rows.get(d, DELEGATED_RIGHTS)), d in rows)
        for d in sorted(set(delegates) | set(rows))
    ]


async def set_acl(
    engine: AsyncEngine,
    directory: Directory,
    owner: str,
    identifier: str,
    rights: str | None,
    *,
    actor: str,
) -> None:
    """Give ``identifier`` exactly ``rights`` on ``owner``'s mailboxes (None: back to default)."""
    owner, ident = owner.lower(), identifier.lower()
    value = None if rights is None else canonical(rights)
    if rights is not None and ident not in await directory.delegates(owner):
        raise PermissionDenied(
            "CANNOT",
            f"{ident} is not a delegate of {owner} in the directory (pli directory delegate first)",
        )
    async with engine.begin() as conn:
        await conn.execute(
            delete(mailbox_acl).where(
                mailbox_acl.c.owner == owner, mailbox_acl.c.identifier == ident
            )
        )
        if value is not None:
            await conn.execute(
                insert(mailbox_acl).values(owner=owner, identifier=ident, rights=value)
            )
        await audit.append(
            conn,
            audit.AuditEvent(
                action="mailbox.acl",
                actor=actor,
                mailbox=owner,
                detail={"identifier": ident, "rights": value if value is not None else "-"},
            ),
        )
