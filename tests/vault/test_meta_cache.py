"""The vault's row cache: a read right after a put needs no SQL, and forgets what goes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.base import ObjectNotFound
from vault.fs import FsBlobStore
from vault.keys import KeyFileProvider, create_kek_file
from vault.service import Vault


def _vault(engine: AsyncEngine, tmp_path: Path, cache: int = 4096) -> Vault:
    create_kek_file(tmp_path / "kek")
    return Vault(
        engine,
        FsBlobStore(tmp_path / "blobs"),
        KeyFileProvider.from_file(tmp_path / "kek"),
        4096,
        meta_cache=cache,
    )


def _count_statements(engine: AsyncEngine) -> list[str]:
    seen: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _seen(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(statement)

    return seen


@pytest.mark.parametrize("cache", [4096, 0])
async def test_a_read_after_a_put_needs_no_sql_only_when_cached(
    engine: AsyncEngine, tmp_path: Path, cache: int
) -> None:
    vault = _vault(engine, tmp_path, cache)
    obj = await vault.put(b"compte rendu" * 1000)
    async with engine.begin() as conn:
        await vault.record(conn, obj)
    statements = _count_statements(engine)
    assert await vault.get(obj.name) == b"compte rendu" * 1000
    assert len(statements) == (0 if cache else 1)


async def test_a_row_read_once_is_cached_and_the_cache_is_bounded(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    writer = _vault(engine, tmp_path)
    names = []
    for i in range(3):
        obj = await writer.put(bytes([i]) * 100)
        async with engine.begin() as conn:
            await writer.record(conn, obj)
        names.append(obj.name)
    reader = Vault(
        engine,
        FsBlobStore(tmp_path / "blobs"),
        KeyFileProvider.from_file(tmp_path / "kek"),
        4096,
        meta_cache=2,
    )
    statements = _count_statements(engine)
    for name in names:
        await reader.get(name)
    assert len(statements) == 3
    await reader.get(names[2])  # still cached
    assert len(statements) == 3
    await reader.get(names[0])  # pushed out by the bound of 2
    assert len(statements) == 4


async def test_discarded_and_deleted_objects_are_forgotten(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    vault = _vault(engine, tmp_path)
    dropped = await vault.put(b"never recorded")
    await vault.discard(dropped)
    with pytest.raises(ObjectNotFound):
        await vault.get(dropped.name)
    kept = await vault.put(b"recorded then deleted")
    async with engine.begin() as conn:
        await vault.record(conn, kept)
    await vault.delete(
        kept.name, actor="ops@pli", reason="test", now=dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    )  # past its retention
    with pytest.raises(ObjectNotFound):
        await vault.get(kept.name)
