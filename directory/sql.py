"""The SQL directory (SQLite embedded, PostgreSQL scale-out): lookups, search, delegations.

It owns reading the directory's tables over an ``AsyncEngine`` it is given,
and the operator's changes (delegations, certificates) that bump the shared
change generation read caches watch. Imports live in ``directory.sql_import``.
Database failures surface as :class:`DirectoryUnavailable` (chained) so SMTP
answers 451, never 5xx. It never holds global state, never reads another
package's tables.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from directory.base import (
    DELEGABLE_KINDS,
    DelegationRefused,
    DirectoryStats,
    DirectoryUnavailable,
    Entry,
    InvalidAddress,
    MailboxKind,
    NotInDirectory,
    normalize_address,
)
from directory.searchtext import words
from directory.tables import (
    directory_certificate,
    directory_delegation,
    directory_entry,
    directory_state,
    directory_trusted_domain,
)

__all__ = ["DB_ERRORS", "SqlDirectory", "bump_generation", "unavailable"]

DB_ERRORS = (OperationalError, DBAPIError, OSError)
ENTRY_FIELDS = (
    "display_name",
    "id_nat_pp",
    "profession_code",
    "profession_label",
    "specialty_code",
    "specialty_label",
    "structure_id",
    "structure_name",
    "service",
    "postal_address",
    "postcode",
    "department",
)
_SEARCH_LIMIT = 500
_MAX_WORDS = 8


def _entry(row: Row[Any], certificates: tuple[bytes, ...] = ()) -> Entry:
    m = row._mapping
    return Entry(
        address=m["address"],
        kind=MailboxKind(m["kind"]),
        liste_rouge=bool(m["liste_rouge"]),
        certificates=certificates,
        **{n: m[n] for n in ENTRY_FIELDS},
    )


def unavailable(exc: BaseException) -> DirectoryUnavailable:
    return DirectoryUnavailable(f"directory database unavailable: {type(exc).__name__}")


async def bump_generation(conn: AsyncConnection) -> None:
    """Mark the directory changed (in the caller's transaction): caches drop what they hold."""
    await conn.execute(
        update(directory_state)
        .where(directory_state.c.id == 1)
        .values(generation=directory_state.c.generation + 1, changed_at=datetime.now(UTC))
    )


def _key(address: str) -> str | None:
    try:
        return normalize_address(address)
    except InvalidAddress:
        return None  # a malformed address holds no mailbox and is nobody's delegate


class SqlDirectory:
    """:class:`~directory.base.Directory` and ``DirectoryAdmin`` over one engine."""

    name = "sql"

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _rows(self, stmt: Any) -> list[Row[Any]]:
        try:
            async with self._engine.connect() as conn:
                return list(await conn.execute(stmt))
        except DB_ERRORS as exc:
            raise unavailable(exc) from exc

    async def resolve(self, address: str) -> Entry | None:
        key = _key(address)
        if key is None:
            return None
        e, c = directory_entry, directory_certificate
        # One statement (a row per certificate): each round trip to the driver counts.
        stmt = (
            select(e, c.c.der)
            .select_from(e.outerjoin(c, c.c.address == e.c.address))
            .where(e.c.address == key)
            .order_by(c.c.sha256)
        )
        rows = await self._rows(stmt)
        if not rows:
            return None
        return _entry(rows[0], tuple(r.der for r in rows if r.der is not None))

    async def is_trusted_domain(self, domain: str) -> bool:
        key = domain.strip().lower().rstrip(".")
        t = directory_trusted_domain
        return bool(await self._rows(select(t.c.domain).where(t.c.domain == key)))

    async def search(self, text: str, limit: int = 50) -> list[Entry]:
        needles = words(text)[:_MAX_WORDS]
        if not needles:
            return []
        e = directory_entry
        likes = [e.c.search_text.like(f"%{w}%") for w in needles]  # folded: no % or _ left
        stmt = (
            select(e)
            .where(e.c.liste_rouge.is_(False))  # liste rouge: never listed, still delivered
            .where(and_(*likes))
            .order_by(e.c.address)
            .limit(max(1, min(limit, _SEARCH_LIMIT)))
        )
        return [_entry(r) for r in await self._rows(stmt)]

    async def certificates(self, address: str) -> tuple[bytes, ...]:
        key = _key(address)
        if key is None:
            return ()
        c = directory_certificate
        rows = await self._rows(select(c.c.der).where(c.c.address == key).order_by(c.c.sha256))
        return tuple(r[0] for r in rows)

    async def delegates(self, mailbox: str) -> frozenset[str]:
        key = _key(mailbox)
        if key is None:
            return frozenset()
        d = directory_delegation
        rows = await self._rows(select(d.c.user_address).where(d.c.mailbox == key))
        return frozenset(r[0] for r in rows)

    async def delegated_mailboxes(self, user: str) -> frozenset[str]:
        key = _key(user)
        if key is None:
            return frozenset()
        d = directory_delegation
        rows = await self._rows(select(d.c.mailbox).where(d.c.user_address == key))
        return frozenset(r[0] for r in rows)

    async def generation(self) -> int:
        """The change counter (see :func:`bump_generation`)."""
        s = directory_state
        rows = await self._rows(select(s.c.generation).where(s.c.id == 1))
        return int(rows[0][0]) if rows else 0

    # --- operator changes ---------------------------------------------------------

    async def set_delegation(self, mailbox: str, user: str, *, revoke: bool = False) -> bool:
        org, person = normalize_address(mailbox), normalize_address(user)
        d = directory_delegation
        try:
            async with self._engine.begin() as conn:
                if revoke:
                    result = await conn.execute(
                        delete(d).where(d.c.mailbox == org).where(d.c.user_address == person)
                    )
                    changed = bool(result.rowcount)
                else:
                    await _check_delegation(conn, org, person)
                    exists = (
                        await conn.execute(
                            select(d.c.mailbox)
                            .where(d.c.mailbox == org)
                            .where(d.c.user_address == person)
                        )
                    ).first()
                    changed = exists is None
                    if changed:
                        await conn.execute(
                            insert(d).values(
                                mailbox=org, user_address=person, granted_at=datetime.now(UTC)
                            )
                        )
                if changed:
                    await bump_generation(conn)
        except IntegrityError:
            return False  # granted concurrently by another instance: same end state
        except DB_ERRORS as exc:
            raise unavailable(exc) from exc
        return changed

    async def add_certificate(self, address: str, der: bytes) -> bool:
        """Publish a DER certificate for a directory address; False if already there."""
        key = normalize_address(address)
        fingerprint = hashlib.sha256(der).hexdigest()
        c, e = directory_certificate, directory_entry
        try:
            async with self._engine.begin() as conn:
                if (
                    await conn.execute(select(e.c.address).where(e.c.address == key))
                ).first() is None:
                    raise NotInDirectory(f"{key} is not in the directory")
                if (
                    await conn.execute(
                        select(c.c.sha256)
                        .where(c.c.address == key)
                        .where(c.c.sha256 == fingerprint)
                    )
                ).first():
                    return False
                await conn.execute(insert(c).values(address=key, sha256=fingerprint, der=der))
                await bump_generation(conn)
        except DB_ERRORS as exc:
            raise unavailable(exc) from exc
        return True

    async def stats(self) -> DirectoryStats:
        e = directory_entry

        def count(table: Any) -> Any:
            return select(func.count()).select_from(table)

        try:
            async with self._engine.connect() as conn:
                kinds = {
                    str(k): int(n)
                    for k, n in await conn.execute(
                        select(e.c.kind, func.count()).group_by(e.c.kind)
                    )
                }
                rouge = await conn.execute(count(e).where(e.c.liste_rouge.is_(True)))
                domain = (
                    func.substr(e.c.address, func.instr(e.c.address, "@") + 1)
                    if conn.dialect.name == "sqlite"
                    else func.split_part(e.c.address, "@", 2)
                )
                domains = await conn.execute(select(func.count(func.distinct(domain))))
                trusted = await conn.execute(count(directory_trusted_domain))
                delegations = await conn.execute(count(directory_delegation))
                certs = await conn.execute(count(directory_certificate))
                gen = (
                    await conn.execute(
                        select(directory_state.c.generation).where(directory_state.c.id == 1)
                    )
                ).scalar()
                return DirectoryStats(
                    backend=self.name,
                    entries_by_kind=kinds,
                    liste_rouge=int(rouge.scalar_one()),
                    domains=int(domains.scalar_one()),
                    trusted_domains=int(trusted.scalar_one()),
                    delegations=int(delegations.scalar_one()),
                    certificates=int(certs.scalar_one()),
                    generation=int(gen or 0),
                )
        except DB_ERRORS as exc:
            raise unavailable(exc) from exc


async def _check_delegation(conn: AsyncConnection, mailbox: str, user: str) -> None:
    e = directory_entry
    kinds = dict(
        (
            await conn.execute(
                select(e.c.address, e.c.kind).where(e.c.address.in_([mailbox, user]))
            )
        ).all()
    )
    if mailbox not in kinds:
        raise NotInDirectory(f"{mailbox} is not in the directory")
    if kinds[mailbox] not in DELEGABLE_KINDS:
        raise DelegationRefused(
            f"{mailbox} is a {kinds[mailbox]} mailbox: only ORG, APP and CAB mailboxes are shared"
        )
    if user not in kinds:
        raise NotInDirectory(f"{user} is not in the directory")
    if kinds[user] != "PER":
        raise DelegationRefused(
            f"{user} is a {kinds[user]} mailbox: only a person (PER) acts for a shared mailbox"
        )
