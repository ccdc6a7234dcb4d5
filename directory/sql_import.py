"""Imports into the SQL directory: the national extraction and the liste blanche.

An import streams the extraction in batches, compares each batch with the
stored rows by digest, writes only what differs and finally removes the
mailboxes the file no longer lists, all in one transaction: too many bad
rows, a bad header or any failure rolls everything back, so the previous
directory stays intact. A committed import bumps the change generation, so
every instance's read cache forgets what it held.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import IO, Any

from sqlalchemy import bindparam, delete, func, insert, select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from directory.base import DirectoryError
from directory.extraction import AddressIndex, Record, RowError, iter_records
from directory.sql import DB_ERRORS, bump_generation, unavailable
from directory.tables import directory_entry, directory_trusted_domain
from directory.trustlist import parse_trustlist

__all__ = [
    "ImportReport",
    "Progress",
    "SourceReadError",
    "import_extraction",
    "import_trustlist",
]

_COLS = tuple(c.name for c in directory_entry.c)  # address … row_hash, search_text
_HASH = _COLS.index("row_hash")
_MAX_BATCH = 10_000  # one bound parameter per row in lookups: SQLite/asyncpg allow 32766
_SQLITE_IMPORT_CACHE = -49152  # KiB: 48 MiB, only as much as used (RSS budget 200 MB)

# Called after each batch with (bytes read so far, valid rows so far).
Progress = Callable[[int, int], None]


class SourceReadError(DirectoryError):
    """The import file could not be read (the directory was left unchanged)."""


@dataclass
class ImportReport:
    """What an import found and did (or would do, for a dry run)."""

    rows: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)
    aborted: bool = False
    abort_reason: str = ""
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.aborted

    def summary(self) -> str:
        state = (
            f"ABORTED ({self.abort_reason}), directory unchanged"
            if self.aborted
            else "dry run, nothing written"
            if self.dry_run
            else "committed"
        )
        return (
            f"{self.rows} valid rows: {self.added} added, {self.changed} changed, "
            f"{self.removed} removed, {self.unchanged} unchanged; "
            f"{self.error_count} bad rows; {state}"
        )


def _values(rec: Record) -> tuple[Any, ...]:
    """The stored row of a record, in column order, with its change-detection digest."""
    return (*rec[1:], False, rec.digest(), rec.search_text())


def _take(items: Iterator[Record | RowError], n: int) -> list[tuple[Any, ...] | RowError]:
    """Read and parse up to ``n`` lines (runs in a worker thread)."""
    out: list[tuple[Any, ...] | RowError] = []
    try:
        for item in items:
            out.append(item if isinstance(item, RowError) else _values(item))
            if len(out) >= n:
                break
    except OSError as exc:
        raise SourceReadError(f"cannot read the extraction: {exc}") from exc
    return out


class _EntryRows:
    """Batched lookups, inserts and deletes of entry rows on one connection.

    Statements are compiled once and run at driver level when the dialect is
    positional (SQLite, asyncpg): per-row Core processing halves the speed at 1M rows.
    """

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._sql = self._positional_insert(conn.dialect)
        self._lookup_sql: dict[int, str] = {}

    async def stored_hashes(self, addresses: Sequence[str]) -> dict[str, str]:
        """``{address: row_hash}`` of the given addresses that are stored."""
        e, n = directory_entry, len(addresses)
        sql = self._lookup_sql.get(n)
        if sql is None:
            stmt = select(e.c.address, e.c.row_hash).where(
                e.c.address.in_([bindparam(f"a{i}") for i in range(n)])
            )
            compiled = stmt.compile(dialect=self._conn.dialect)
            if not compiled.positional:
                result = await self._conn.execute(
                    select(e.c.address, e.c.row_hash).where(e.c.address.in_(addresses))
                )
                return {address: digest for address, digest in result}
            sql = self._lookup_sql[n] = str(compiled)
        result = await self._conn.exec_driver_sql(sql, tuple(addresses))
        return {str(row[0]): str(row[1]) for row in result}

    @staticmethod
    def _positional_insert(dialect: Dialect) -> str | None:
        compiled = insert(directory_entry).compile(dialect=dialect)
        if compiled.positional and tuple(compiled.positiontup or ()) == _COLS:
            return str(compiled)
        return None

    async def insert(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self._sql is not None:
            await self._conn.exec_driver_sql(self._sql, list(rows))
        else:
            await self._conn.execute(
                insert(directory_entry), [dict(zip(_COLS, r, strict=True)) for r in rows]
            )

    async def delete(self, addresses: Sequence[str]) -> None:
        if addresses:
            await self._conn.execute(
                delete(directory_entry).where(directory_entry.c.address.in_(addresses))
            )


async def _apply_batch(
    writer: _EntryRows, rows: list[tuple[Any, ...]], report: ImportReport, check_stored: bool
) -> None:
    stored = await writer.stored_hashes([r[0] for r in rows]) if check_stored else {}
    new = [r for r in rows if r[0] not in stored]
    changed = [r for r in rows if r[0] in stored and stored[r[0]] != r[_HASH]]
    report.rows += len(rows)
    report.added += len(new)
    report.changed += len(changed)
    report.unchanged += len(rows) - len(new) - len(changed)
    if not report.dry_run:
        await writer.delete([r[0] for r in changed])
        await writer.insert(changed + new)


async def _remove_unlisted(
    conn: AsyncConnection, writer: _EntryRows, index: AddressIndex, count: int
) -> None:
    """Delete the ``count`` stored mailboxes the file does not list (keyset scan)."""
    e, last = directory_entry, ""
    while count > 0:
        page = (
            (
                await conn.execute(
                    select(e.c.address).where(e.c.address > last).order_by(e.c.address).limit(5000)
                )
            )
            .scalars()
            .all()
        )
        if not page:
            break
        last = page[-1]
        gone = [a for a in page if a not in index]
        await writer.delete(gone)
        count -= len(gone)


async def _count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(directory_entry))).scalar_one())


def _abort(report: ImportReport, reason: str) -> ImportReport:
    report.aborted, report.abort_reason = True, reason
    return report


async def _run_import(
    conn: AsyncConnection,
    fh: IO[bytes],
    report: ImportReport,
    max_errors: int,
    batch_size: int,
    keep_errors: int,
    progress: Progress | None,
) -> bool:
    """Stream the file into the open transaction; False if the import must roll back."""
    if conn.dialect.name == "postgresql" and not report.dry_run:
        # One import at a time; readers (SMTP lookups) are not blocked.
        await conn.execute(text("LOCK TABLE directory_entry IN SHARE ROW EXCLUSIVE MODE"))
    before = await _count(conn)
    index = AddressIndex(expected=_expected_rows(fh))
    items = iter_records(fh, index)
    writer = _EntryRows(conn)
    while batch := await asyncio.to_thread(_take, items, batch_size):
        rows: list[tuple[Any, ...]] = []
        for item in batch:
            if isinstance(item, RowError):
                report.error_count += 1
                if len(report.errors) < keep_errors:
                    report.errors.append(item)
                if item.line_no == 1:
                    _abort(report, f"not an extraction: {item.reason}")
                    return False
                if report.error_count > max_errors:
                    _abort(report, f"more than {max_errors} bad rows")
                    return False
            else:
                rows.append(item)
        if rows:
            # First import into an empty table: nothing stored to compare with.
            await _apply_batch(writer, rows, report, check_stored=before > 0)
        if progress is not None:
            progress(fh.tell(), report.rows)
    if report.rows == 0 and before > 0:
        _abort(report, "no valid row: refusing to empty the directory")
        return False
    report.removed = before - report.changed - report.unchanged
    if not report.dry_run:
        await _remove_unlisted(conn, writer, index, report.removed)
        await bump_generation(conn)
    return not report.dry_run


def _expected_rows(fh: IO[bytes]) -> int:
    """A row count guess from the file size (rows are 150-300 bytes), to size the index."""
    try:
        return os.fstat(fh.fileno()).st_size // 200
    except (OSError, AttributeError, ValueError):
        return 0  # a pipe or an in-memory stream: the index grows as it goes


@asynccontextmanager
async def _sqlite_cache(conn: AsyncConnection) -> AsyncIterator[None]:
    """On SQLite, a big page cache for this connection while it imports.

    Keys arrive in random order: with the default 2 MiB cache the address index
    spills to the WAL again and again, and a national-size import slows down
    markedly (docs/benchmarks.md). Restored afterwards, since the connection goes
    back to the pool.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    previous = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar_one()
    await conn.exec_driver_sql(f"PRAGMA cache_size={_SQLITE_IMPORT_CACHE}")
    await conn.commit()
    try:
        yield
    finally:
        await conn.exec_driver_sql(f"PRAGMA cache_size={int(previous)}")
        await conn.commit()


async def import_extraction(
    engine: AsyncEngine,
    source: str | os.PathLike[str] | IO[bytes],
    *,
    dry_run: bool = False,
    max_errors: int = 100,
    batch_size: int = 2000,
    keep_errors: int = 1000,
    progress: Progress | None = None,
) -> ImportReport:
    """Make the directory exactly the file's valid rows, in one transaction.

    Aborts (report.aborted, nothing written) on a bad header, on more than
    ``max_errors`` bad rows or on a file without any valid row; a dry run
    computes the same report and writes nothing. At most ``keep_errors`` row
    errors are kept in the report (all are counted); ``progress`` is called after
    each batch (a terminal progress bar). Raises
    :class:`DirectoryUnavailable` if the database fails, :class:`SourceReadError`
    or :class:`OSError` if the file cannot be read.
    """
    if not 1 <= batch_size <= _MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {_MAX_BATCH}")
    report = ImportReport(dry_run=dry_run)
    if isinstance(source, str | os.PathLike):
        fh: IO[bytes] = await asyncio.to_thread(Path(source).open, "rb")
    else:
        fh = source
    try:
        async with engine.connect() as conn, _sqlite_cache(conn):
            trans = await conn.begin()
            try:
                commit = await _run_import(
                    conn, fh, report, max_errors, batch_size, keep_errors, progress
                )
            except BaseException:
                await trans.rollback()
                raise
            await (trans.commit() if commit else trans.rollback())
    except DB_ERRORS as exc:
        raise unavailable(exc) from exc
    finally:
        if fh is not source:
            await asyncio.to_thread(fh.close)
    return report


async def import_trustlist(engine: AsyncEngine, source: str | os.PathLike[str] | IO[bytes]) -> int:
    """Replace the trusted domains with the liste blanche's; return their count.

    Raises :class:`~directory.trustlist.TrustListError` (nothing changed) if the
    XML is unsafe or malformed, :class:`DirectoryUnavailable` if the database fails.
    """
    if isinstance(source, str | os.PathLike):
        data = await asyncio.to_thread(Path(source).read_bytes)
        domains = await asyncio.to_thread(parse_trustlist, BytesIO(data))
    else:
        domains = await asyncio.to_thread(parse_trustlist, source)
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(directory_trusted_domain))
            await conn.execute(insert(directory_trusted_domain), [{"domain": d} for d in domains])
            await bump_generation(conn)
    except DB_ERRORS as exc:
        raise unavailable(exc) from exc
    return len(domains)
