"""The S3 blob store against a real S3 endpoint (moto's server, a subprocess on loopback).

Streaming is checked by memory (a 64 MiB object moves through a few 5 MiB
parts), atomicity by sources that fail or are cancelled half-way, outages by
stopping or freezing the server, and object lock by deleting a retained object.
moto implements no GetObjectRetention, so retention is read from HEAD headers.
Every test of a path where minio's private calls (vault/s3_direct.py) replace its
public ones (puts, object lock after a put, whole reads) runs on both paths.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.moto_s3 import MotoS3Server
from vault.base import ObjectNotFound, VaultError, VaultUnavailable
from vault.keys import KeyFileProvider, create_kek_file
from vault.s3 import RetentionLocked, S3BlobStore
from vault.service import Vault

MiB = 1024 * 1024
PART = 5 * MiB


def _store(moto: MotoS3Server, bucket: str, **kw: Any) -> S3BlobStore:
    return S3BlobStore(
        moto.endpoint, moto.access_key, moto.secret_key, bucket, secure=False, part_size=PART, **kw
    )


# On minio's private calls (the default) and on its public put_object/get_object.
BOTH_PATHS = pytest.mark.parametrize("direct", [True, False], ids=["direct", "stock"])


@pytest.fixture
def direct() -> bool:
    return True


@pytest.fixture
async def store(moto: MotoS3Server, direct: bool) -> AsyncIterator[S3BlobStore]:
    s = _store(moto, f"pli-{secrets.token_hex(4)}", prefix="vault", direct=direct)
    await s.ensure_bucket()
    yield s
    await s.aclose()


def _name() -> str:
    return secrets.token_hex(16)


async def _aiter(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


async def _generated(
    size: int, digest: hashlib._Hash, chunk: int = 64 * 1024
) -> AsyncIterator[bytes]:
    """``size`` pseudo-random bytes made on the fly, so the test itself holds no object."""
    seed = os.urandom(chunk)
    for i in range(0, size, chunk):
        piece = (seed[i % 251 :] + seed[: i % 251])[: min(chunk, size - i)]
        digest.update(piece)
        yield piece


async def _collect(store: S3BlobStore, name: str) -> bytes:
    return b"".join([p async for p in store.get(name)])


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} missing from /proc/self/status")


def _reset_peak() -> None:
    """Start a new VmHWM window (Linux clear_refs 5) so earlier tests' peaks do not count."""
    Path("/proc/self/clear_refs").write_text("5")


@BOTH_PATHS
@pytest.mark.parametrize("size", [0, 1, 4096, PART - 1, PART, PART + 1, 2 * PART + 3])
async def test_put_get_roundtrip(store: S3BlobStore, size: int) -> None:
    data = os.urandom(size)
    name = _name()
    cut = size // 3
    assert await store.put(name, _aiter(data[:cut], b"", data[cut:])) == size
    assert await store.exists(name)
    assert await _collect(store, name) == data


@BOTH_PATHS
async def test_large_object_streams_in_bounded_memory(store: S3BlobStore) -> None:
    size = 64 * MiB
    name = _name()
    sent = hashlib.sha256()
    base = _rss_kib("VmRSS")
    _reset_peak()
    assert await store.put(name, _generated(size, sent)) == size
    put_growth = (_rss_kib("VmHWM") - base) * 1024

    base = _rss_kib("VmRSS")
    _reset_peak()
    received, total = hashlib.sha256(), 0
    async for piece in store.get(name):
        received.update(piece)
        total += len(piece)
    get_growth = (_rss_kib("VmHWM") - base) * 1024

    assert total == size and received.digest() == sent.digest()
    # About three parts whatever the size (minio keeps the previous part while the
    # next one is gathered and copies it once), never the object.
    assert put_growth < 6 * PART, f"put grew RSS by {put_growth / MiB:.1f} MiB"
    assert get_growth < 4 * MiB, f"get grew RSS by {get_growth / MiB:.1f} MiB"


async def test_a_reader_that_stops_early_leaves_the_pool_healthy(store: S3BlobStore) -> None:
    """A get reads one megabyte ahead: a reader that stops (an IMAP client gone) must
    neither race the read still in flight nor leak its connection or its error."""
    data = os.urandom(6 * MiB)
    name = _name()
    await store.put(name, _aiter(data))
    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, ctx: unretrieved.append(ctx))
    for _ in range(12):  # more than the pool's 8 connections and workers
        reader = store.get(name)
        assert isinstance(reader, AsyncGenerator)  # so that it can be closed half-read
        first = await anext(reader)
        assert first == data[: len(first)]
        await reader.aclose()
    assert await _collect(store, name) == data
    await asyncio.sleep(0.2)  # the abandoned read-aheads have finished by now
    gc.collect()
    assert unretrieved == []
    loop.set_exception_handler(None)


async def test_missing_delete_exists(store: S3BlobStore) -> None:
    name = _name()
    assert not await store.exists(name)
    with pytest.raises(ObjectNotFound):
        await _collect(store, name)
    await store.delete(name)  # missing: not an error
    await store.put(name, _aiter(b"abc"))
    await store.delete(name)
    await store.delete(name)
    assert not await store.exists(name)
    with pytest.raises(ObjectNotFound):
        await _collect(store, name)


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "", "X" * 32, "0" * 31])
async def test_unsafe_names_refused(store: S3BlobStore, bad: str) -> None:
    with pytest.raises(ValueError):
        await store.put(bad, _aiter(b"x"))


@BOTH_PATHS
@pytest.mark.parametrize("size", [1000, 3 * PART])  # one PUT, and a multipart upload
async def test_failed_source_leaves_no_object(store: S3BlobStore, size: int) -> None:
    name = _name()

    async def broken() -> AsyncIterator[bytes]:
        async for piece in _generated(size, hashlib.sha256()):
            yield piece
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="client went away"):  # the source's own error
        await store.put(name, broken())
    assert not await store.exists(name)
    await store.put(name, _aiter(b"retry"))  # the store is still usable
    assert await _collect(store, name) == b"retry"


@BOTH_PATHS
async def test_cancelled_put_leaves_no_object(store: S3BlobStore) -> None:
    name = _name()
    started = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        async for piece in _generated(2 * PART, hashlib.sha256()):
            yield piece
        started.set()
        await asyncio.sleep(3600)
        yield b"never"

    task = asyncio.create_task(store.put(name, slow()))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await store.exists(name)
    await asyncio.wait_for(store.aclose(), 5)  # the upload thread gave up: nothing hangs


@BOTH_PATHS
async def test_vault_over_s3(engine: AsyncEngine, store: S3BlobStore, tmp_path: Path) -> None:
    create_kek_file(tmp_path / "kek")
    vault = Vault(engine, store, KeyFileProvider.from_file(tmp_path / "kek"), chunk_size=4096)
    data = b"Subject: secret\r\n\r\n" + os.urandom(6 * MiB)
    obj = await vault.put(data)
    async with engine.begin() as conn:
        await vault.record(conn, obj)
    assert await vault.get(obj.name) == data
    raw = await _collect(store, obj.name)
    assert b"secret" not in raw and data[-4096:] not in raw  # encrypted at rest
    await vault.discard(obj)
    assert not await store.exists(obj.name)


@BOTH_PATHS
async def test_outage_gives_vault_unavailable_quickly(moto: MotoS3Server, direct: bool) -> None:
    store = _store(moto, f"pli-{secrets.token_hex(4)}", direct=direct)
    await store.ensure_bucket()
    name = _name()
    await store.put(name, _aiter(b"before the outage"))
    moto.stop()
    try:
        for attempt in (
            lambda: store.put(_name(), _aiter(b"x" * 1000)),
            lambda: store.put(_name(), _generated(2 * PART, hashlib.sha256())),
            lambda: _collect(store, name),
            lambda: store.exists(name),
            lambda: store.delete(name),
        ):
            started = time.monotonic()
            with pytest.raises(VaultUnavailable):
                await attempt()
            assert time.monotonic() - started < 10
    finally:
        moto.start()
    await store.ensure_bucket()  # moto forgets everything on restart
    await store.put(name, _aiter(b"after"))
    assert await _collect(store, name) == b"after"
    await store.aclose()


@BOTH_PATHS
async def test_hung_server_times_out(moto: MotoS3Server, direct: bool) -> None:
    store = _store(moto, f"pli-{secrets.token_hex(4)}", read_timeout=1.0, direct=direct)
    await store.ensure_bucket()
    name = _name()
    await store.put(name, _aiter(b"before"))
    moto.pause()
    try:
        for attempt in (lambda: store.put(_name(), _aiter(b"x")), lambda: _collect(store, name)):
            started = time.monotonic()
            with pytest.raises(VaultUnavailable):
                await attempt()
            assert time.monotonic() - started < 5  # one read timeout, not retried
    finally:
        moto.resume()
    assert await _collect(store, name) == b"before"
    await store.aclose()


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
@BOTH_PATHS
async def test_object_lock_refuses_early_delete(
    moto: MotoS3Server, mode: str, direct: bool
) -> None:
    bucket = f"pli-lock-{secrets.token_hex(4)}"
    store = _store(moto, bucket, object_lock=mode, retention_days=1, direct=direct)
    await store.ensure_bucket()
    name = _name()
    await store.put(name, _aiter(b"kept for a day"))
    head = store._client.stat_object(bucket, name).metadata or {}
    assert head["x-amz-object-lock-mode"] == mode
    with pytest.raises(RetentionLocked, match=f"under {mode} retention until"):
        await store.delete(name)
    assert await _collect(store, name) == b"kept for a day"
    # What the store avoids: a DELETE by name only hides a retained object behind
    # a delete marker, and S3 accepts it.
    other = _name()
    await store.put(other, _aiter(b"hidden"))
    store._client.remove_object(bucket, other)
    assert not await store.exists(other)
    await store.aclose()


async def test_lock_needs_a_lock_enabled_bucket(moto: MotoS3Server) -> None:
    bucket = f"pli-{secrets.token_hex(4)}"
    plain = _store(moto, bucket)
    await plain.ensure_bucket()
    locked = _store(moto, bucket, object_lock="GOVERNANCE", retention_days=1)
    with pytest.raises(VaultError, match="no object lock"):
        await locked.ensure_bucket()
    await plain.aclose()
    await locked.aclose()


@BOTH_PATHS
async def test_whole_objects_go_up_in_one_put_streams_in_parts(
    engine: AsyncEngine, store: S3BlobStore, tmp_path: Path
) -> None:
    """A message held in memory costs one request; an unknown-length stream stays bounded."""
    create_kek_file(tmp_path / "kek")
    vault = Vault(engine, store, KeyFileProvider.from_file(tmp_path / "kek"))
    whole = await vault.put(os.urandom(3 * PART))

    async def stream() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield os.urandom(PART)

    parted = await vault.put(stream())
    etag = {
        o.name: (store._client.stat_object(store._bucket, store._key(o.name)).etag or "")
        for o in (whole, parted)
    }
    assert "-" not in etag[whole.name]  # a single PUT's ETag is a plain MD5
    assert "-" in etag[parted.name]  # multipart: an MD5 of the parts, then "-N"
