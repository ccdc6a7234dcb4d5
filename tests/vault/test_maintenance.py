"""KEK rotation (re-wrap only, resumable, picked up by running processes) and the sweep."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from vault import keys as keys_module
from vault import maintenance
from vault.fs import FsBlobStore
from vault.keys import KeyFileProvider, create_kek_file, kek_id_of
from vault.service import Vault


async def _stored(engine: AsyncEngine, vault: Vault, n: int) -> dict[str, bytes]:
    out = {}
    for i in range(n):
        data = f"Subject: objet {i}\r\n\r\n".encode() + bytes([i]) * (5000 + i)
        obj = await vault.put(data)
        async with engine.begin() as conn:
            await vault.record(conn, obj)
        out[obj.name] = data
    return out


async def test_rotation_rewraps_without_rewriting(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kek = tmp_path / "kek"
    create_kek_file(kek)
    old_id = kek_id_of(kek.read_text())
    store = FsBlobStore(tmp_path / "blobs")
    running = Vault(
        engine, store, KeyFileProvider.from_file(kek), 4096, meta_cache=0
    )  # a live pli serve that reads every row afresh
    cached = Vault(engine, store, KeyFileProvider.from_file(kek), 4096)  # and one that caches
    objects = await _stored(engine, running, 3)
    for name, data in objects.items():
        assert await cached.get(name) == data  # rows cached under the old KEK
    blobs_before = {p: p.read_bytes() for p in (tmp_path / "blobs").rglob("*") if p.is_file()}

    keys = maintenance.rotate_kek_file(kek)
    assert keys.current_kek_id() != old_id and len(kek.read_text().split()) == 2
    assert kek.stat().st_mode & 0o077 == 0
    report = await maintenance.rewrap(engine, keys)
    assert report.rewrapped == 3
    assert await maintenance.count_by_kek(engine) == {keys.current_kek_id(): 3}
    assert (await maintenance.rewrap(engine, keys)).rewrapped == 0  # resumable, idempotent
    blobs_after = {p: p.read_bytes() for p in (tmp_path / "blobs").rglob("*") if p.is_file()}
    assert blobs_after == blobs_before  # objects untouched: only their data keys moved

    # The running process meets the new KEK id, re-reads the key file, and goes on.
    for name, data in objects.items():
        assert await running.get(name) == data
    newer = await _stored(engine, running, 1)
    assert await maintenance.count_by_kek(engine) == {keys.current_kek_id(): 4}

    assert await maintenance.drop_unused_keks(engine, kek) == [old_id]
    assert len(kek.read_text().split()) == 1
    # A process still holding rows cached under the retired KEK, once it has followed
    # the key file (which no longer has that KEK), falls back to the re-wrapped rows.
    monkeypatch.setattr(keys_module, "FOLLOW_INTERVAL", 0.0)
    await cached.put(b"wrapped after the file was re-read")
    for name, data in objects.items():
        assert await cached.get(name) == data
    fresh = Vault(engine, store, KeyFileProvider.from_file(kek), 4096)
    for name, data in {**objects, **newer}.items():
        assert await fresh.get(name) == data


async def test_sweep_names_every_bad_object(engine: AsyncEngine, tmp_path: Path) -> None:
    create_kek_file(tmp_path / "kek")
    store = FsBlobStore(tmp_path / "blobs")
    vault = Vault(engine, store, KeyFileProvider.from_file(tmp_path / "kek"), 4096)
    objects = await _stored(engine, vault, 4)
    clean = await maintenance.verify_objects(engine, vault)
    assert clean.ok and clean.checked == 4 and clean.bytes == sum(map(len, objects.values()))
    names = sorted(objects)
    damaged = store._path(names[0])
    raw = bytearray(damaged.read_bytes())
    raw[60] ^= 0x01
    damaged.write_bytes(bytes(raw))
    store._path(names[2]).unlink()
    report = await maintenance.verify_objects(engine, vault)
    assert report.checked == 4 and not report.ok
    assert {(n, r.split(":")[0]) for n, r in report.failures} == {
        (names[0], "IntegrityError"),
        (names[2], "ObjectNotFound"),
    }


async def test_a_running_provider_wraps_with_the_rotated_key_within_a_second(
    tmp_path: Path,
) -> None:
    """Otherwise a server would keep wrapping with a key that --drop-unused removes."""
    import asyncio

    from vault.keys import FOLLOW_INTERVAL

    create_kek_file(tmp_path / "kek")
    running = KeyFileProvider.from_file(tmp_path / "kek")
    old, _ = await running.wrap(b"k" * 32)
    rotated = maintenance.rotate_kek_file(tmp_path / "kek")
    await asyncio.sleep(FOLLOW_INTERVAL + 0.1)
    new, wrapped = await running.wrap(b"k" * 32)
    assert new == rotated.current_kek_id() != old
    assert await rotated.unwrap(new, wrapped) == b"k" * 32
