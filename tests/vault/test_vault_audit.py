"""The vault service and the audit chain on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vault import audit
from vault.base import IntegrityError
from vault.fs import FsBlobStore
from vault.keys import KeyFileProvider, create_kek_file
from vault.service import Vault
from vault.tables import audit_event


@pytest.fixture
def vault_parts(tmp_path: Path) -> tuple[FsBlobStore, KeyFileProvider]:
    create_kek_file(tmp_path / "kek")
    return FsBlobStore(tmp_path / "blobs"), KeyFileProvider.from_file(tmp_path / "kek")


async def test_vault_put_record_get(
    engine: AsyncEngine, vault_parts: tuple[FsBlobStore, KeyFileProvider], tmp_path: Path
) -> None:
    store, keys = vault_parts
    v = Vault(engine, store, keys, chunk_size=4096)
    data = b"Subject: secret\r\n\r\n" + b"x" * 20_000
    obj = await v.put(data)
    async with engine.begin() as conn:
        await v.record(conn, obj)
    assert await v.get(obj.name) == data
    raw = b"".join([p async for p in store.get(obj.name)])
    assert b"secret" not in raw and b"xxxx" not in raw  # encrypted at rest
    blob = next(p for p in (tmp_path / "blobs").rglob("*") if p.is_file())
    corrupted = bytearray(blob.read_bytes())
    corrupted[100] ^= 0xFF
    blob.write_bytes(bytes(corrupted))
    with pytest.raises(IntegrityError):
        await v.get(obj.name)


async def _fill(engine: AsyncEngine, n: int) -> None:
    for i in range(n):
        async with engine.begin() as conn:
            await audit.append(
                conn, audit.AuditEvent(action="test", actor=f"a{i}@x.fr", detail={"i": i})
            )


async def test_audit_chain_verifies(engine: AsyncEngine) -> None:
    await _fill(engine, 5)
    report = await audit.verify(engine)
    assert report.ok and report.entries == 5
    rows = [r async for r in audit.query(engine, audit.AuditFilter(actor="a3@x.fr"))]
    assert [r.seq for r in rows] == [4]


async def test_audit_rolled_back_append_leaves_chain_intact(engine: AsyncEngine) -> None:
    await _fill(engine, 2)
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await audit.append(conn, audit.AuditEvent(action="doomed"))
            raise RuntimeError("crash before commit")
    await _fill(engine, 1)
    report = await audit.verify(engine)
    assert report.ok and report.entries == 3


@pytest.mark.parametrize(
    ("tamper", "first_bad"),
    [
        ("modify", 3),
        ("delete-middle", 3),
        ("delete-last", 5),
        ("reorder", 2),
    ],
)
async def test_audit_tampering_named(engine: AsyncEngine, tamper: str, first_bad: int) -> None:
    await _fill(engine, 5)
    async with engine.begin() as conn:
        if tamper == "modify":
            await conn.execute(
                update(audit_event).where(audit_event.c.seq == 3).values(actor="someone-else@x.fr")
            )
        elif tamper == "delete-middle":
            await conn.execute(delete(audit_event).where(audit_event.c.seq == 3))
        elif tamper == "delete-last":
            await conn.execute(delete(audit_event).where(audit_event.c.seq == 5))
        else:  # swap entries 2 and 3, renumbered so that seq stays contiguous
            await conn.execute(update(audit_event).where(audit_event.c.seq == 2).values(seq=-2))
            await conn.execute(update(audit_event).where(audit_event.c.seq == 3).values(seq=2))
            await conn.execute(update(audit_event).where(audit_event.c.seq == -2).values(seq=3))
    report = await audit.verify(engine)
    assert not report.ok
    assert report.first_bad_seq == first_bad, report


async def test_patient_trail_refuses_pattern_characters(engine: AsyncEngine) -> None:
    """The pseudonym goes into a LIKE pattern: only hex is accepted."""
    with pytest.raises(ValueError, match="hexadecimal"):
        _ = [r async for r in audit.patient_trail(engine, "%")]
