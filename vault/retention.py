"""How long each object is kept, and legal holds that keep it longer.

Retention is decided when an object is stored, from its document type and the
mailboxes it belongs to: the longest applicable period wins, because deleting
too early is the one mistake that cannot be undone (medical records: 20 years
is common; access logs: at least 6 months). The date is recorded beside the
object and handed to the store, which locks it where it can (S3 Object Lock);
pli refuses early deletions itself on every backend. A legal hold freezes a set
of objects regardless of dates until it is released. This module never deletes
anything: deletions go through :meth:`vault.service.Vault.delete`, which checks
both and audits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import and_, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.base import VaultError
from vault.tables import vault_hold, vault_hold_object, vault_object

__all__ = [
    "DEFAULT_DAYS",
    "Hold",
    "HoldNotFound",
    "RetentionPolicy",
    "expired",
    "held",
    "list_holds",
    "place_hold",
    "release_hold",
    "unknown_objects",
]

DEFAULT_DAYS = 7300  # 20 years: the common hospital rule for medical records


class HoldNotFound(VaultError, LookupError):
    """No active legal hold with that id."""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Days to keep, per document type and per mailbox (``addr`` or ``@domain``).

    ``0`` days means "no retention date": the object may be deleted at any time
    (never automatically). The default applies when no rule names the object.
    """

    default_days: int = DEFAULT_DAYS
    doc_types: Mapping[str, int] = field(default_factory=dict)
    mailboxes: Mapping[str, int] = field(default_factory=dict)

    def days_for(self, doc_type: str, mailboxes: Iterable[str] = ()) -> int:
        found: list[int] = []
        if doc_type in self.doc_types:
            found.append(self.doc_types[doc_type])
        for address in mailboxes:
            address = address.lower()
            domain = "@" + address.rpartition("@")[2]
            found.extend(self.mailboxes[k] for k in (address, domain) if k in self.mailboxes)
        return max(found) if found else self.default_days

    def until(
        self, now: dt.datetime, doc_type: str, mailboxes: Iterable[str] = ()
    ) -> dt.datetime | None:
        days = self.days_for(doc_type, mailboxes)
        return now + dt.timedelta(days=days) if days > 0 else None


@dataclass(frozen=True, slots=True)
class Hold:
    id: int
    reason: str
    placed_by: str
    placed_at: dt.datetime
    released_by: str | None
    released_at: dt.datetime | None
    objects: int


async def place_hold(
    conn: AsyncConnection, names: Sequence[str], reason: str, actor: str, now: dt.datetime
) -> int:
    """Record a hold over ``names`` (in the caller's transaction); return its id."""
    hold_id = (
        await conn.execute(
            insert(vault_hold)
            .values(reason=reason, placed_by=actor, placed_at=now)
            .returning(vault_hold.c.id)
        )
    ).scalar_one()
    if names:
        await conn.execute(
            insert(vault_hold_object), [{"hold_id": hold_id, "name": n} for n in sorted(set(names))]
        )
    return int(hold_id)


async def release_hold(
    conn: AsyncConnection, hold_id: int, actor: str, now: dt.datetime
) -> list[str]:
    """Release a hold; return the names it covered that no other active hold covers."""
    done = await conn.execute(
        update(vault_hold)
        .where(vault_hold.c.id == hold_id, vault_hold.c.released_at.is_(None))
        .values(released_by=actor, released_at=now)
    )
    if done.rowcount != 1:
        raise HoldNotFound(f"no active legal hold {hold_id}")
    names = (
        (
            await conn.execute(
                select(vault_hold_object.c.name).where(vault_hold_object.c.hold_id == hold_id)
            )
        )
        .scalars()
        .all()
    )
    still = await held(conn, names)
    return [n for n in names if n not in still]


async def held(conn: AsyncConnection, names: Sequence[str]) -> set[str]:
    """The subset of ``names`` under at least one active hold."""
    if not names:
        return set()
    h, ho = vault_hold.c, vault_hold_object.c
    found: set[str] = set()
    for i in range(0, len(names), 500):  # bound the IN list (SQLite's variable limit)
        rows = await conn.execute(
            select(ho.name)
            .join(vault_hold, h.id == ho.hold_id)
            .where(h.released_at.is_(None), ho.name.in_(names[i : i + 500]))
            .distinct()
        )
        found.update(rows.scalars())
    return found


async def expired(conn: AsyncConnection, now: dt.datetime, limit: int = 1000) -> list[str]:
    """Objects whose retention date has passed and that no active hold covers."""
    o, h, ho = vault_object.c, vault_hold.c, vault_hold_object.c
    under_hold = exists().where(
        and_(ho.name == o.name, ho.hold_id == h.id, h.released_at.is_(None))
    )
    rows = await conn.execute(
        select(o.name)
        .where(o.retain_until.is_not(None), o.retain_until <= now, ~under_hold)
        .order_by(o.retain_until)
        .limit(limit)
    )
    return list(rows.scalars())


async def list_holds(conn: AsyncConnection, active_only: bool = True) -> list[Hold]:
    h, ho = vault_hold.c, vault_hold_object.c
    query = (
        select(
            h.id,
            h.reason,
            h.placed_by,
            h.placed_at,
            h.released_by,
            h.released_at,
            func.count(ho.name),
        )
        .select_from(vault_hold.outerjoin(vault_hold_object, ho.hold_id == h.id))
        .group_by(h.id)
        .order_by(h.id)
    )
    if active_only:
        query = query.where(h.released_at.is_(None))
    return [Hold(*row) for row in (await conn.execute(query)).all()]


async def unknown_objects(conn: AsyncConnection, names: Sequence[str]) -> list[str]:
    """Those of ``names`` the vault holds no object of (a hold on them would be a lie)."""
    known: set[str] = set()
    wanted = list(names)
    for start in range(0, len(wanted), 1000):  # SQLite and asyncpg cap bound parameters
        chunk = wanted[start : start + 1000]
        known |= set(
            (
                await conn.execute(
                    select(vault_object.c.name).where(vault_object.c.name.in_(chunk))
                )
            ).scalars()
        )
    return [n for n in names if n not in known]
