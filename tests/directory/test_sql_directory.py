"""The SQL directory on SQLite and PostgreSQL: lookups, search, synchronising imports."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from directory.base import DirectoryUnavailable, MailboxKind
from directory.sql import SqlDirectory, import_extraction, import_trustlist
from directory.tables import directory_entry
from directory.trustlist import TrustListError, parse_trustlist
from gateway.db import create_engine

FIX = Path(__file__).parent.parent / "fixtures" / "directory"
SAMPLE = FIX / "extraction-sample.txt"


async def test_import_resolve_and_idempotent_reimport(engine: AsyncEngine) -> None:
    first = await import_extraction(engine, SAMPLE)
    assert (first.rows, first.added, first.changed, first.removed) == (200, 200, 0, 0)
    d = SqlDirectory(engine)
    entry = await d.resolve("sophie.bernard@ch-arras.mssante.fr")
    assert entry is not None and entry.kind is MailboxKind.PER
    assert entry.display_name == "Dr Sophie BERNARD"
    assert await d.resolve("nobody@ch-arras.mssante.fr") is None
    again = await import_extraction(engine, SAMPLE)
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 0, 0, 200)


async def test_reimport_reports_changes(engine: AsyncEngine, tmp_path: Path) -> None:
    await import_extraction(engine, SAMPLE)
    lines = SAMPLE.read_bytes().split(b"\n")
    header, rows = lines[0], [x for x in lines[1:] if x]
    fields = rows[5].split(b"|")
    fields[7] = b"Service renomm\xc3\xa9"  # Service de rattachement: a stored field
    rows[5] = b"|".join(fields)
    del rows[10]  # removed
    rows.append(rows[20].replace(rows[20].split(b"|")[1],
                                 b"nouvelle.arrivee@ch-arras.mssante.fr"))  # added
    changed_file = tmp_path / "changed.txt"
    changed_file.write_bytes(b"\n".join([header, *rows]) + b"\n")
    report = await import_extraction(engine, changed_file)
    assert (report.added, report.changed, report.removed) == (1, 1, 1), report.summary()
    assert await SqlDirectory(engine).resolve("nouvelle.arrivee@ch-arras.mssante.fr")


async def test_failed_import_leaves_directory_intact(engine: AsyncEngine) -> None:
    await import_extraction(engine, SAMPLE)
    report = await import_extraction(engine, FIX / "extraction-bad.txt", max_errors=3)
    assert report.aborted and not report.ok and report.error_count > 3
    again = await import_extraction(engine, SAMPLE, dry_run=True)
    assert (again.added, again.removed, again.unchanged) == (0, 0, 200)


async def test_bad_rows_under_limit_import_the_rest(engine: AsyncEngine) -> None:
    report = await import_extraction(engine, FIX / "extraction-bad.txt", max_errors=100)
    assert report.ok and report.rows == 4 and report.error_count == 10
    assert [e.line_no for e in report.errors] == [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]


async def test_dry_run_writes_nothing(engine: AsyncEngine) -> None:
    report = await import_extraction(engine, SAMPLE, dry_run=True)
    assert report.added == 200 and report.dry_run
    assert await SqlDirectory(engine).resolve("sophie.bernard@ch-arras.mssante.fr") is None


async def test_search_hides_liste_rouge(engine: AsyncEngine) -> None:
    await import_extraction(engine, SAMPLE)
    d = SqlDirectory(engine)
    found = await d.search("bernard")
    assert any(e.address == "sophie.bernard@ch-arras.mssante.fr" for e in found)
    async with engine.begin() as conn:
        await conn.execute(update(directory_entry)
                           .where(directory_entry.c.address == "sophie.bernard@ch-arras.mssante.fr")
                           .values(liste_rouge=True))
    found = await d.search("bernard")
    assert all(e.address != "sophie.bernard@ch-arras.mssante.fr" for e in found)
    # still resolvable for mail: liste rouge hides from search, not from delivery
    assert await d.resolve("sophie.bernard@ch-arras.mssante.fr") is not None
    assert await d.search("%") == [] or all("%" in e.display_name for e in await d.search("%"))


async def test_trust_list(engine: AsyncEngine) -> None:
    count = await import_trustlist(engine, FIX / "liste-blanche-sample.xml")
    assert count == 20
    d = SqlDirectory(engine)
    assert await d.is_trusted_domain("ch-arras.mssante.fr")
    assert not await d.is_trusted_domain("gmail.com")


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema">
<Domaine><Nom>&e;</Nom></Domaine></ListeBlanche>"""
BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema">
<Domaine><Nom>&b;</Nom></Domaine></ListeBlanche>"""


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (XXE, "unsafe"),
        (BOMB, "unsafe"),
        (b"<ListeBlanche", "malformed"),
        (b"<Other/>", "root element"),
        (b'<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema"><Domaine><Nom>'
         b"not a domain</Nom></Domaine></ListeBlanche>", "Domaine #1"),
    ],
)
def test_trust_list_refuses_unsafe_or_bad_xml(doc: bytes, message: str) -> None:
    with pytest.raises(TrustListError, match=message):
        parse_trustlist(io.BytesIO(doc))


async def test_unreachable_database_is_unavailable(tmp_path: Path) -> None:
    eng = create_engine(f"sqlite+aiosqlite:///{tmp_path}/gone/dir/pli.db")
    try:
        with pytest.raises(DirectoryUnavailable):
            await SqlDirectory(eng).resolve("a@b.fr")
    finally:
        await eng.dispose()
    shutil.rmtree(tmp_path, ignore_errors=True)
