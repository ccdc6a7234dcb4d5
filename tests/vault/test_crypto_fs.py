"""Vault encryption and filesystem store: round trips, tampering, atomicity, names."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.profiles import examples
from vault.base import IntegrityError, ObjectNotFound
from vault.crypto import ChunkDecryptor, ChunkEncryptor, new_data_key
from vault.fs import FsBlobStore
from vault.keys import KeyFileProvider, create_kek_file


async def _aiter(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


async def _collect(it: AsyncIterator[bytes]) -> list[bytes]:
    return [x async for x in it]


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096, 50_000])
async def test_chunked_roundtrip(size: int) -> None:
    key, base = new_data_key()
    data = os.urandom(size)
    enc = ChunkEncryptor("obj", key, base, 4096)
    sealed = await _collect(enc.encrypt(_aiter(data[: size // 3], data[size // 3 :])))
    assert b"".join(sealed) != data or size == 0
    dec = ChunkDecryptor("obj", key, base, 4096)
    assert b"".join(await _collect(dec.decrypt(_aiter(*sealed)))) == data


async def _sealed(data: bytes) -> tuple[bytes, bytes, list[bytes]]:
    key, base = new_data_key()
    return key, base, await _collect(ChunkEncryptor("o", key, base, 4096).encrypt(_aiter(data)))


async def test_tampering_truncation_reordering_and_moving_are_detected() -> None:
    key, base, chunks = await _sealed(os.urandom(3 * 4096 + 10))
    assert len(chunks) == 4

    async def opens(parts: list[bytes], name: str = "o") -> None:
        await _collect(ChunkDecryptor(name, key, base, 4096).decrypt(_aiter(*parts)))

    flipped = bytearray(chunks[1])
    flipped[5] ^= 1
    cases = {
        "modified": [chunks[0], bytes(flipped), *chunks[2:]],
        "truncated at a chunk boundary": chunks[:3],
        "reordered": [chunks[1], chunks[0], *chunks[2:]],
        "chunk dropped": [chunks[0], *chunks[2:]],
        "tail cut": [*chunks[:3], chunks[3][:8]],
    }
    for label, parts in cases.items():
        with pytest.raises(IntegrityError):
            await opens(parts)
        assert label
    with pytest.raises(IntegrityError):  # the same bytes under another object's name
        await opens(chunks, name="other")


async def test_kek_wrap_unwrap_and_wrong_key(tmp_path: Path) -> None:
    create_kek_file(tmp_path / "kek")
    keys = KeyFileProvider.from_file(tmp_path / "kek")
    kek_id, wrapped = await keys.wrap(b"k" * 32)
    assert await keys.unwrap(kek_id, wrapped) == b"k" * 32
    assert b"k" * 32 not in wrapped
    tampered = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    with pytest.raises(IntegrityError):
        await keys.unwrap(kek_id, tampered)
    assert (tmp_path / "kek").stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):  # never overwrite a key
        create_kek_file(tmp_path / "kek")


async def test_fs_store_put_get_delete(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path)
    name = "0123456789abcdef0123456789abcdef"
    assert await store.put(name, _aiter(b"abc", b"def")) == 6
    assert b"".join(await _collect(store.get(name))) == b"abcdef"
    assert await store.exists(name)
    await store.delete(name)
    assert not await store.exists(name)
    with pytest.raises(ObjectNotFound):
        await _collect(store.get(name))


async def test_fs_store_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path)
    name = "f" * 32

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        await store.put(name, broken())
    assert not await store.exists(name)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "", "X" * 32, "0" * 31, "0" * 32 + "/"])
async def test_fs_store_refuses_unsafe_names(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        await FsBlobStore(tmp_path).put(bad, _aiter(b"x"))


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


async def _each(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for p in pieces:
        yield p


@settings(max_examples=examples(200), deadline=None)
@given(
    size=st.integers(0, 700),
    chunk=st.sampled_from([1, 7, 64, 100]),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
    recuts=st.lists(st.integers(0, 10_000), max_size=12),
)
def test_framing_is_independent_of_how_the_stream_is_cut(
    size: int, chunk: int, cuts: list[int], recuts: list[int]
) -> None:
    """Same ciphertext whatever the producer's piece sizes; same plaintext back."""
    import asyncio

    data = os.urandom(size)
    key, base = b"k" * 32, b"n" * 12

    async def run() -> None:
        whole = [c async for c in ChunkEncryptor("o", key, base, chunk).encrypt(_each([data]))]
        cut = [
            c async for c in ChunkEncryptor("o", key, base, chunk).encrypt(_each(_cut(data, cuts)))
        ]
        assert [bytes(c) for c in cut] == [bytes(c) for c in whole]
        sealed = b"".join(whole)
        back = [
            bytes(p)
            async for p in ChunkDecryptor("o", key, base, chunk).decrypt(
                _each(_cut(sealed, recuts))
            )
        ]
        assert b"".join(back) == data
        if len(whole) > 1:  # dropping the final frame is noticed
            with pytest.raises(IntegrityError):
                _ = [
                    p
                    async for p in ChunkDecryptor("o", key, base, chunk).decrypt(
                        _each([b"".join(whole[:-1])])
                    )
                ]

    asyncio.run(run())


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 128, 1000])
async def test_sealed_size_matches_what_is_written(size: int) -> None:
    from vault.crypto import sealed_size

    sealed = [
        c
        async for c in ChunkEncryptor("o", b"k" * 32, b"n" * 12, 64).encrypt(
            _each([os.urandom(size)])
        )
    ]
    assert sum(len(c) for c in sealed) == sealed_size(size, 64)


@settings(max_examples=examples(100), deadline=None)
@given(size=st.integers(0, 700), chunk=st.sampled_from([1, 7, 64, 100]))
def test_sealing_a_whole_message_gives_the_streamed_bytes(size: int, chunk: int) -> None:
    """Vault.put seals a message held whole in one buffer; reads cannot tell the difference."""
    import asyncio

    data = os.urandom(size)
    key, base = os.urandom(32), os.urandom(12)

    async def streamed() -> bytes:
        enc = ChunkEncryptor("o", key, base, chunk)
        return b"".join([c async for c in enc.encrypt(_each([data]))])

    sealed = ChunkEncryptor("o", key, base, chunk).seal(data)
    assert isinstance(sealed, bytearray)
    assert bytes(sealed) == asyncio.run(streamed())


@pytest.mark.parametrize("size", [300_000, 3 * 1024 * 1024 + 5])
async def test_large_whole_messages_seal_and_open_through_the_vault(
    tmp_path: Path, size: int
) -> None:
    """Above the inline limit a message is sealed on one thread and hashed on another."""
    import hashlib

    from gateway.base.db import create_engine
    from gateway.migrations import migrate
    from vault.service import Vault

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'v.db'}")
    await migrate(engine)
    create_kek_file(tmp_path / "kek")
    vault = Vault(engine, FsBlobStore(tmp_path / "v"), KeyFileProvider.from_file(tmp_path / "kek"))
    data = os.urandom(size)
    obj = await vault.put(data)
    assert obj.size == size and obj.sha256 == hashlib.sha256(data).hexdigest()
    async with engine.begin() as conn:
        await vault.record(conn, obj)
    assert await vault.get(obj.name) == data
    streamed = b"".join([p async for p in vault.stream(obj.name, check_digest=True)])
    assert streamed == data
    await engine.dispose()
