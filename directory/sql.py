"""The SQL directory (embedded default): lookups, search and synchronising imports.

An import streams the extraction into a staging area and then, in the same
transaction, turns the live table into exactly the file's valid rows, counting
additions, changes and removals. Too many bad rows, or any failure, rolls the
whole import back: the previous directory stays intact. Database failures
surface as :class:`DirectoryUnavailable` so SMTP answers 451, never 5xx.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import IO, Any

from sqlalchemy import and_, delete, exists, func, insert, or_, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from directory.base import DirectoryUnavailable, Entry, MailboxKind
from directory.extraction import ParsedRow, RowError, parse_extraction
from directory.tables import directory_entry, directory_staging, directory_trusted_domain
from directory.trustlist import parse_trustlist

__all__ = ["ImportReport", "SqlDirectory", "import_extraction", "import_trustlist"]

_FIELDS = ("kind", "display_name", "id_nat_pp", "profession_code", "profession_label",
           "specialty_code", "specialty_label", "structure_id", "structure_name", "service",
           "postal_address", "postcode", "department", "liste_rouge")
_DB_ERRORS = (OperationalError, DBAPIError, OSError)


@dataclass
class ImportReport:
    rows: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)
    aborted: bool = False
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.aborted

    def summary(self) -> str:
        state = ("ABORTED, directory unchanged" if self.aborted
                 else "dry run, nothing written" if self.dry_run else "committed")
        return (f"{self.rows} valid rows: {self.added} added, {self.changed} changed, "
                f"{self.removed} removed, {self.unchanged} unchanged; "
                f"{self.error_count} bad rows; {state}")


def _row_values(entry: Entry) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(entry, name) for name in _FIELDS}
    values["kind"] = entry.kind.value
    digest = hashlib.blake2b(digest_size=16)
    for name in _FIELDS:
        digest.update(str(values[name]).encode() + b"\x1f")
    values["row_hash"] = digest.hexdigest()
    values["address"] = entry.address
    return values


def _entry(row: Any) -> Entry:
    return Entry(address=row.address, kind=MailboxKind(row.kind),
                 **{n: getattr(row, n) for n in _FIELDS if n != "kind"})


class SqlDirectory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def resolve(self, address: str) -> Entry | None:
        try:
            async with self._engine.connect() as conn:
                row = (await conn.execute(
                    select(directory_entry).where(directory_entry.c.address == address)
                )).one_or_none()
        except _DB_ERRORS as exc:
            raise DirectoryUnavailable("directory database unreachable") from exc
        return _entry(row) if row is not None else None

    async def is_trusted_domain(self, domain: str) -> bool:
        try:
            async with self._engine.connect() as conn:
                found = await conn.execute(select(directory_trusted_domain.c.domain).where(
                    directory_trusted_domain.c.domain == domain.lower()))
                return found.first() is not None
        except _DB_ERRORS as exc:
            raise DirectoryUnavailable("directory database unreachable") from exc

    async def search(self, text: str, limit: int = 50) -> list[Entry]:
        needle = text.strip().lower()
        if not needle:
            return []
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        cols = (directory_entry.c.display_name, directory_entry.c.profession_label,
                directory_entry.c.structure_name, directory_entry.c.postcode,
                directory_entry.c.address)
        stmt = (select(directory_entry)
                .where(directory_entry.c.liste_rouge.is_(False))  # liste rouge: never listed
                .where(or_(*(func.lower(c).like(pattern, escape="\\") for c in cols)))
                .order_by(directory_entry.c.address).limit(max(1, min(limit, 500))))
        try:
            async with self._engine.connect() as conn:
                return [_entry(r) for r in await conn.execute(stmt)]
        except _DB_ERRORS as exc:
            raise DirectoryUnavailable("directory database unreachable") from exc


def _take(it: Iterator[ParsedRow | RowError], n: int) -> list[ParsedRow | RowError]:
    out: list[ParsedRow | RowError] = []
    for item in it:
        out.append(item)
        if len(out) >= n:
            break
    return out


async def _count(conn: AsyncConnection, stmt: Any) -> int:
    return int((await conn.execute(stmt)).scalar_one())


async def _synchronise(conn: AsyncConnection, batch: str, report: ImportReport) -> None:
    s, e = directory_staging, directory_entry
    in_batch = s.c.batch == batch
    staged = exists().where(and_(in_batch, s.c.address == e.c.address))
    known = exists().where(e.c.address == s.c.address)
    differs = exists().where(and_(e.c.address == s.c.address, e.c.row_hash != s.c.row_hash))
    report.added = await _count(conn, select(func.count()).select_from(s)
                                .where(in_batch, ~known))
    report.changed = await _count(conn, select(func.count()).select_from(s)
                                  .where(in_batch, differs))
    report.removed = await _count(conn, select(func.count()).select_from(e).where(~staged))
    report.unchanged = report.rows - report.added - report.changed
    changed_addrs = select(s.c.address).where(in_batch, differs)
    await conn.execute(delete(e).where(~staged))
    await conn.execute(delete(e).where(e.c.address.in_(changed_addrs)))
    cols = ["address", *_FIELDS, "row_hash"]
    await conn.execute(insert(e).from_select(
        cols, select(*(s.c[c] for c in cols)).where(in_batch, ~known)))


async def import_extraction(
    engine: AsyncEngine,
    source: Path | IO[bytes],
    *,
    dry_run: bool = False,
    max_errors: int = 100,
    batch_size: int = 2000,
    keep_errors: int = 1000,
) -> ImportReport:
    """Make the directory exactly the file's valid rows, in one transaction."""
    report = ImportReport(dry_run=dry_run)
    fh: IO[bytes] = (await asyncio.to_thread(source.open, "rb")
                     if isinstance(source, Path) else source)
    batch = secrets.token_hex(8)
    try:
        rows = parse_extraction(fh)
        async with engine.connect() as conn:
            trans = await conn.begin()
            try:
                while items := await asyncio.to_thread(_take, rows, batch_size):
                    values = []
                    for item in items:
                        if isinstance(item, RowError):
                            report.error_count += 1
                            if len(report.errors) < keep_errors:
                                report.errors.append(item)
                        else:
                            values.append({"batch": batch, **_row_values(item.entry)})
                    if report.error_count > max_errors:
                        report.aborted = True
                        await trans.rollback()
                        return report
                    if values:
                        report.rows += len(values)
                        await conn.execute(insert(directory_staging), values)
                await _synchronise(conn, batch, report)
                await conn.execute(delete(directory_staging)
                                   .where(directory_staging.c.batch == batch))
                if dry_run:
                    await trans.rollback()
                else:
                    await trans.commit()
            except BaseException:
                if trans.is_active:
                    await trans.rollback()
                raise
    finally:
        if isinstance(source, Path):
            await asyncio.to_thread(fh.close)
    return report


async def import_trustlist(engine: AsyncEngine, source: Path | IO[bytes]) -> int:
    """Replace the trusted domains with the liste blanche's; return their count."""
    if isinstance(source, Path):
        domains = parse_trustlist(BytesIO(await asyncio.to_thread(source.read_bytes)))
    else:
        domains = parse_trustlist(source)
    async with engine.begin() as conn:
        await conn.execute(delete(directory_trusted_domain))
        if domains:
            await conn.execute(insert(directory_trusted_domain),
                               [{"domain": d} for d in domains])
    return len(domains)
