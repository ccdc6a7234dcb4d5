"""The SQL directory on SQLite and PostgreSQL: lookups, search, synchronising imports."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from directory.base import Directory, DirectoryUnavailable, MailboxKind
from directory.sql import SqlDirectory
from directory.sql_import import SourceReadError, import_extraction, import_trustlist
from directory.tables import directory_entry, metadata
from directory.trustlist import TrustListError
from gateway.base.db import create_engine
from tests.directory.conftest import edited_sample
from tests.support.servers import free_port

FIX = Path(__file__).parent.parent / "fixtures" / "directory"
SAMPLE = FIX / "extraction-sample.txt"
BAD = FIX / "extraction-bad.txt"
SOPHIE = "sophie.bernard@ch-arras.mssante.fr"


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(directory_entry))).scalar_one()
        )


async def test_import_resolve_and_idempotent_reimport(engine: AsyncEngine) -> None:
    first = await import_extraction(engine, SAMPLE)
    assert (first.rows, first.added, first.changed, first.removed) == (200, 200, 0, 0)
    d = SqlDirectory(engine)
    assert isinstance(d, Directory)
    entry = await d.resolve(SOPHIE)
    assert entry is not None and entry.kind is MailboxKind.PER
    assert entry.display_name == "Dr Sophie BERNARD" and entry.id_nat_pp == "810990000027"
    assert await d.resolve("Sophie.Bernard@CH-Arras.mssante.fr") == entry  # normalised
    assert await d.resolve("nobody@ch-arras.mssante.fr") is None
    assert await d.resolve("not an address") is None
    again = await import_extraction(engine, str(SAMPLE))
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 0, 0, 200)
    assert again.ok and again.summary().endswith("committed")


async def test_reimport_reports_added_changed_removed(engine: AsyncEngine, tmp_path: Path) -> None:
    await import_extraction(engine, SAMPLE)
    rows = [x for x in SAMPLE.read_bytes().split(b"\n")[1:] if x]
    changed_addr = rows[5].split(b"|")[1].decode()
    removed_addr = rows[10].split(b"|")[1].decode()
    report = await import_extraction(engine, edited_sample(tmp_path), batch_size=7)
    assert (report.added, report.changed, report.removed, report.unchanged) == (1, 1, 1, 198)
    d = SqlDirectory(engine)
    assert await d.resolve("nouvelle.arrivee@ch-arras.mssante.fr") is not None
    assert await d.resolve(removed_addr) is None
    changed = await d.resolve(changed_addr)
    assert changed is not None and changed.service == "Service renommé"
    assert await _count(engine) == 200
    back = await import_extraction(engine, SAMPLE)
    assert (back.added, back.changed, back.removed) == (1, 1, 1)


async def test_too_many_errors_leave_directory_intact(engine: AsyncEngine) -> None:
    await import_extraction(engine, SAMPLE)
    report = await import_extraction(engine, BAD, max_errors=3)
    assert report.aborted and not report.ok and report.error_count == 4
    assert "more than 3 bad rows" in report.summary()
    assert await _count(engine) == 200
    assert await SqlDirectory(engine).resolve(SOPHIE) is not None


async def test_bad_header_or_empty_file_never_empties_directory(engine: AsyncEngine) -> None:
    await import_extraction(engine, SAMPLE)
    wrong = await import_extraction(engine, io.BytesIO(b"<html>oops</html>\n"))
    assert wrong.aborted and "not an extraction" in wrong.abort_reason
    header_only = SAMPLE.read_bytes().split(b"\n")[0] + b"\n"
    empty = await import_extraction(engine, io.BytesIO(header_only))
    assert empty.aborted and "no valid row" in empty.abort_reason
    assert await _count(engine) == 200


async def test_bad_rows_under_the_limit_import_the_rest(engine: AsyncEngine) -> None:
    report = await import_extraction(engine, BAD, max_errors=100, keep_errors=5)
    assert report.ok and report.rows == 4 and report.error_count == 10
    assert [e.line_no for e in report.errors] == [4, 5, 6, 7, 8]
    assert await _count(engine) == 4


async def test_dry_run_writes_nothing(engine: AsyncEngine, tmp_path: Path) -> None:
    report = await import_extraction(engine, SAMPLE, dry_run=True)
    assert report.added == 200 and report.dry_run and report.summary().endswith("written")
    assert await _count(engine) == 0
    await import_extraction(engine, SAMPLE)
    report = await import_extraction(engine, edited_sample(tmp_path), dry_run=True)
    assert (report.added, report.changed, report.removed, report.unchanged) == (1, 1, 1, 198)
    assert await _count(engine) == 200
    again = await import_extraction(engine, SAMPLE)
    assert (again.added, again.changed, again.removed) == (0, 0, 0)


async def test_failure_mid_import_rolls_back(engine: AsyncEngine) -> None:
    await import_extraction(engine, SAMPLE)

    class Broken(io.BytesIO):
        def readline(self, size: int | None = -1) -> bytes:
            if self.tell() > 20_000:
                raise OSError("disk vanished")
            return super().readline(size)

    data = SAMPLE.read_bytes().replace(b"Urgences", b"Urgence")  # changes to roll back
    with pytest.raises(SourceReadError, match="disk vanished"):
        await import_extraction(engine, Broken(data), batch_size=10)
    again = await import_extraction(engine, SAMPLE, dry_run=True)
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 0, 0, 200)


async def test_search_hides_liste_rouge(engine: AsyncEngine) -> None:
    await import_extraction(engine, SAMPLE)
    d = SqlDirectory(engine)
    found = await d.search("BERNARD")
    assert any(e.address == SOPHIE for e in found)
    assert [e.address for e in await d.search("gériatrie", limit=3)] != []
    assert len(await d.search("mssante", limit=5)) == 5
    async with engine.begin() as conn:
        await conn.execute(
            update(directory_entry)
            .where(directory_entry.c.address == SOPHIE)
            .values(liste_rouge=True)
        )
    assert all(e.address != SOPHIE for e in await d.search("bernard"))
    # liste rouge hides from search, not from delivery
    hidden = await d.resolve(SOPHIE)
    assert hidden is not None and hidden.liste_rouge
    assert await d.search("%") == [] and await d.search("_") == []  # wildcards are literal
    assert await d.search("   ") == []


async def test_trust_list(engine: AsyncEngine) -> None:
    count = await import_trustlist(engine, FIX / "liste-blanche-sample.xml")
    assert count == 20
    d = SqlDirectory(engine)
    assert await d.is_trusted_domain("ch-arras.mssante.fr")
    assert await d.is_trusted_domain("CH-Arras.mssante.fr.")
    assert not await d.is_trusted_domain("gmail.com")
    one = (
        b'<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema">'
        b"<Domaine><Nom>gmail.com</Nom></Domaine></ListeBlanche>"
    )
    assert await import_trustlist(engine, io.BytesIO(one)) == 1  # replaces, not merges
    assert await d.is_trusted_domain("gmail.com")
    assert not await d.is_trusted_domain("ch-arras.mssante.fr")
    with pytest.raises(TrustListError):
        await import_trustlist(engine, io.BytesIO(b"<!DOCTYPE x><x/>"))
    assert await d.is_trusted_domain("gmail.com")  # a refused list changes nothing


async def test_tables_metadata_creates_a_working_schema(db_engine: AsyncEngine) -> None:
    """directory/tables.py alone (what Alembic is generated from) is portable."""
    async with db_engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    report = await import_extraction(db_engine, SAMPLE)
    assert report.added == 200
    assert await SqlDirectory(db_engine).resolve(SOPHIE) is not None


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_unreachable_database_is_unavailable(kind: str, tmp_path: Path) -> None:
    url = (
        f"sqlite+aiosqlite:///{tmp_path}/gone/dir/pli.db"
        if kind == "sqlite"
        else f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/pli"
    )
    eng = create_engine(url)
    d = SqlDirectory(eng)
    try:
        with pytest.raises(DirectoryUnavailable) as caught:
            await d.resolve("a@b.fr")
        assert caught.value.__cause__ is not None  # chained from the driver's error
        with pytest.raises(DirectoryUnavailable):
            await d.search("durand")
        with pytest.raises(DirectoryUnavailable):
            await d.is_trusted_domain("b.fr")
        with pytest.raises(DirectoryUnavailable):
            await import_extraction(eng, SAMPLE)
        with pytest.raises(DirectoryUnavailable):
            await import_trustlist(eng, FIX / "liste-blanche-sample.xml")
    finally:
        await eng.dispose()


async def test_missing_table_is_unavailable(db_engine: AsyncEngine) -> None:
    """A database without the schema (not migrated) answers 'try later', not 'no one'."""
    with pytest.raises(DirectoryUnavailable):
        await SqlDirectory(db_engine).resolve(SOPHIE)


async def test_search_folds_case_accents_and_apostrophes(engine: AsyncEngine) -> None:
    await import_extraction(engine, SAMPLE)
    d = SqlDirectory(engine)
    plain = [e.address for e in await d.search("geriatrie arras", limit=500)]
    assert plain and plain == [e.address for e in await d.search("GÉRIATRIE  Arras", limit=500)]
    assert await d.search("d'") == await d.search("d")  # an apostrophe is not a word


async def test_delegations_certificates_and_stats(engine: AsyncEngine) -> None:
    from directory.base import DelegationRefused, NotInDirectory

    await import_extraction(engine, SAMPLE)
    d = SqlDirectory(engine)
    org, app = "secretariat.geriatrie@ch-arras.mssante.fr", "dpi@ch-arras.mssante.fr"
    generation = await d.generation()
    assert await d.set_delegation(org, SOPHIE) is True
    assert await d.generation() == generation + 1  # caches elsewhere will notice
    assert await d.set_delegation(org.upper(), SOPHIE) is False
    assert await d.set_delegation(app, SOPHIE) is True
    assert await d.delegates(org) == {SOPHIE}
    assert await d.delegated_mailboxes(SOPHIE) == {org, app}
    with pytest.raises(DelegationRefused, match="PER mailbox"):
        await d.set_delegation(SOPHIE, "jean.petit@medecin.mssante.fr")
    with pytest.raises(DelegationRefused, match="only a person"):
        await d.set_delegation(org, app)
    with pytest.raises(NotInDirectory):
        await d.set_delegation("nobody@ch-arras.mssante.fr", SOPHIE)
    assert await d.set_delegation(org, SOPHIE, revoke=True) is True
    assert await d.set_delegation(org, SOPHIE, revoke=True) is False
    assert await d.add_certificate(SOPHIE, b"\x30\x03der") is True
    assert await d.add_certificate(SOPHIE, b"\x30\x03der") is False
    assert await d.certificates(SOPHIE) == (b"\x30\x03der",)
    entry = await d.resolve(SOPHIE)
    assert entry is not None and entry.certificates == (b"\x30\x03der",)
    stats = await d.stats()
    assert stats.entries == 200 and stats.entries_by_kind == {
        "PER": 141,
        "ORG": 44,
        "APP": 7,
        "CAB": 8,
    }
    assert (stats.delegations, stats.certificates, stats.liste_rouge) == (1, 1, 0)
    assert stats.domains == len(
        {
            e.split("@")[1]
            for e in (line.split("|")[1] for line in SAMPLE.read_text().splitlines()[1:] if line)
        }
    )
