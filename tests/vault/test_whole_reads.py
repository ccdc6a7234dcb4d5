"""Whole-object reads: BufferDecryptor, BlobStore.read_blocks and Vault.get.

Vault.get does not stream: it reads the sealed object in one pass through
``read_blocks`` (one reused block) and BufferDecryptor opens every chunk straight into
one buffer of the recorded size. These tests pin what that path must keep from the
streaming one and what it adds: the exact plaintext whatever the read sizes (chunks split
across reads, from a block the store overwrites), IntegrityError naming the object for
every kind of tampering and for a recorded size that does not match the object, sink
errors that propagate unchanged and leave the S3 pool healthy, and HTTP keep-alive after
whole reads but never reuse of a half-read socket. moto's server closes every connection,
so S3 goes through a keep-alive relay that counts the connections the client opens. The S3
tests run on both of the store's paths: reading from the socket under urllib3's response
(vault/s3_direct.py) and through urllib3's own readinto (``direct=False``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.moto_s3 import MotoS3Server
from tests.support.profiles import examples
from vault.base import BlobStore, IntegrityError, ObjectNotFound
from vault.crypto import TAG_SIZE, BufferDecryptor, ChunkEncryptor, new_data_key
from vault.fs import FsBlobStore
from vault.keys import KeyFileProvider, create_kek_file
from vault.s3 import S3BlobStore
from vault.service import Vault

MiB = 1024 * 1024
CHUNK = 4096


class SinkFailed(Exception):
    """Raised by a test sink; must come out of read_blocks as is."""


async def _aiter(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


def _seal(name: str, key: bytes, base: bytes, data: bytes, chunk: int = CHUNK) -> list[bytes]:
    async def run() -> list[bytes]:
        cut = len(data) // 3
        enc = ChunkEncryptor(name, key, base, chunk)
        return [bytes(c) async for c in enc.encrypt(_aiter(data[:cut], data[cut:]))]

    return asyncio.run(run())


def _feed(dec: BufferDecryptor, pieces: list[bytes]) -> bytearray:
    """Feed like a store does: each piece from one reused block, scribbled over afterwards."""
    block = bytearray(max([len(p) for p in pieces] + [1]))
    for piece in pieces:
        block[: len(piece)] = piece
        dec.feed(memoryview(block)[: len(piece)])
        block[:] = b"\xa5" * len(block)
    return dec.result()


def _blocks(data: bytes, block: int) -> list[bytes]:
    return [data[i : i + block] for i in range(0, len(data), block)]


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 10])
def test_buffer_decryptor_round_trip_in_whole_chunk_blocks(size: int) -> None:
    name, data = secrets.token_hex(16), os.urandom(size)
    key, base = new_data_key()
    sealed = b"".join(_seal(name, key, base, data))
    for target in (1, 5000, 10**6):
        dec = BufferDecryptor(name, key, base, CHUNK, size)
        block = dec.block_size(target)
        assert 0 < block <= len(sealed)
        assert block % (CHUNK + TAG_SIZE) == 0 or block == len(sealed)  # whole chunks
        out = _feed(dec, _blocks(sealed, block))
        assert type(out) is bytearray and out == data


@settings(max_examples=examples(200), deadline=None)
@given(
    size=st.integers(0, 700),
    chunk=st.sampled_from([1, 7, 64, 100]),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
)
def test_buffer_decryptor_is_independent_of_how_the_stream_is_cut(
    size: int, chunk: int, cuts: list[int]
) -> None:
    data = os.urandom(size)
    key, base = b"k" * 32, b"n" * 12
    sealed = b"".join(_seal("o", key, base, data, chunk))
    out = _feed(BufferDecryptor("o", key, base, chunk, size), _cut(sealed, cuts))
    assert out == data


def test_buffer_decryptor_detects_tampering_and_a_wrong_size() -> None:
    name, other = secrets.token_hex(16), secrets.token_hex(16)
    size = 3 * CHUNK + 10
    key, base = new_data_key()
    c = _seal(name, key, base, os.urandom(size))
    assert len(c) == 4
    flipped = bytearray(c[1])
    flipped[5] ^= 1
    cases: dict[str, tuple[bytes, str, int]] = {
        "modified": (b"".join([c[0], flipped, *c[2:]]), name, size),
        "chunk dropped": (b"".join([c[0], *c[2:]]), name, size),
        "swapped": (b"".join([c[1], c[0], *c[2:]]), name, size),
        "truncated at a chunk boundary": (b"".join(c[:3]), name, size),
        "tail cut": (b"".join([*c[:3], c[3][:8]]), name, size),
        "extra trailing bytes": (b"".join(c) + b"\0" * 7, name, size),
        "extra trailing chunk": (b"".join([*c, c[3]]), name, size),
        "another object's name": (b"".join(c), other, size),
    }
    for wrong in (size + 1, size - 1, size + CHUNK, size - CHUNK, 4 * CHUNK, 0):
        cases[f"recorded size {wrong}"] = (b"".join(c), name, wrong)
    for label, (sealed, opened_as, recorded) in cases.items():
        for block in (None, 1000):  # whole chunks, and chunks split across reads
            dec = BufferDecryptor(opened_as, key, base, CHUNK, recorded)
            pieces = _blocks(sealed, block or dec.block_size(MiB))
            try:
                _feed(dec, pieces)
            except IntegrityError as exc:
                assert opened_as in str(exc), label
            else:
                pytest.fail(f"{label} not detected (block {block})")


async def _read_pieces(store: BlobStore, name: str, block: int) -> tuple[list[bytes], int]:
    pieces: list[bytes] = []
    count = await store.read_blocks(name, lambda view: pieces.append(bytes(view)), block)
    return pieces, count


def _check_pieces(pieces: list[bytes], count: int, data: bytes, block: int) -> None:
    assert b"".join(pieces) == data and count == len(data)
    assert all(len(p) == block for p in pieces[:-1])
    assert all(0 < len(p) <= block for p in pieces)


def _failing_sink(after: int) -> tuple[Callable[[memoryview], None], SinkFailed]:
    error = SinkFailed("sink gave up")
    calls = itertools.count(1)

    def sink(view: memoryview) -> None:
        if next(calls) > after:
            raise error

    return sink, error


@pytest.mark.parametrize(
    ("size", "block"), [(0, 4096), (1, 4096), (4096, 4096), (3 * 4096 + 7, 4096), (300_000, 65536)]
)
async def test_fs_read_blocks(tmp_path: Path, size: int, block: int) -> None:
    store, name, data = FsBlobStore(tmp_path), secrets.token_hex(16), os.urandom(size)
    await store.put(name, _aiter(data))
    _check_pieces(*await _read_pieces(store, name, block), data, block)
    with pytest.raises(ObjectNotFound):
        await _read_pieces(store, secrets.token_hex(16), block)
    if size:
        sink, error = _failing_sink(after=0)
        with pytest.raises(SinkFailed) as caught:
            await store.read_blocks(name, sink, block)
        assert caught.value is error


class KeepAliveRelay:
    """HTTP/1.1 keep-alive in front of moto, whose Werkzeug server closes every connection.

    Each request goes to moto on a fresh connection and its response comes back without
    ``Connection: close`` (moto always sends a Content-Length), so the client decides whether
    to reuse its connection, as with real S3; ``accepted`` counts the client's connections.
    """

    def __init__(self, moto: MotoS3Server, server: asyncio.Server | None = None) -> None:
        self.accepted, self.endpoint, self._moto, self._server = 0, "", moto, server
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.endpoint = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                size = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
                body = await reader.readexactly(int(size[1]) if size else 0)
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._moto.port)
                up_writer.write(head + body)
                answer = await up_reader.read()  # until moto closes
                up_writer.close()
                writer.write(
                    re.sub(rb"\r\nconnection: close(?=\r\n)", b"", answer, count=1, flags=re.I)
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client closed its connection, between requests or mid-response
        finally:
            writer.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


S3 = tuple[S3BlobStore, KeepAliveRelay]


async def _s3(moto: MotoS3Server, direct: bool) -> S3:
    relay = KeepAliveRelay(moto)
    await relay.start()
    store = S3BlobStore(
        relay.endpoint,
        moto.access_key,
        moto.secret_key,
        f"pli-{secrets.token_hex(4)}",
        secure=False,
        prefix="vault",
        direct=direct,
    )
    await store.ensure_bucket()
    return store, relay


@pytest.fixture(params=[True, False], ids=["direct", "stock"])
async def s3(moto: MotoS3Server, request: pytest.FixtureRequest) -> AsyncIterator[S3]:
    store, relay = await _s3(moto, request.param)
    yield store, relay
    await store.aclose()
    await relay.close()


def _pool(s3: S3) -> Any:
    return s3[0]._http.connection_from_url(f"http://{s3[1].endpoint}")


def _open_idle(pool: Any) -> int:
    """Idle pooled connections that still hold a socket."""
    return sum(c is not None and c.sock is not None for c in list(pool.pool.queue))


async def _settled(pool: Any) -> None:
    """Wait until every connection the pool made is back (abandoned reads finished)."""
    for _ in range(200):
        if sum(c is not None for c in list(pool.pool.queue)) == pool.num_connections:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("a connection never came back to the pool")


@pytest.mark.parametrize(("size", "block"), [(3 * MiB + 123, MiB), (10, 4), (0, MiB)])
async def test_s3_read_blocks(s3: S3, size: int, block: int) -> None:
    store, _ = s3
    name, data = secrets.token_hex(16), os.urandom(size)
    await store.put(name, _aiter(data))
    _check_pieces(*await _read_pieces(store, name, block), data, block)
    with pytest.raises(ObjectNotFound):
        await _read_pieces(store, secrets.token_hex(16), block)


async def test_s3_sink_error_propagates_and_the_store_stays_usable(s3: S3) -> None:
    store, pool = s3[0], _pool(s3)
    name, data = secrets.token_hex(16), os.urandom(3 * MiB + 123)
    await store.put(name, _aiter(data))
    made = pool.num_connections
    for _ in range(12):  # more than the pool's 8 connections and workers
        sink, error = _failing_sink(after=1)
        with pytest.raises(SinkFailed) as caught:
            await asyncio.wait_for(store.read_blocks(name, sink, MiB), 20)
        assert caught.value is error
        assert _open_idle(pool) == 0, "a half-read socket went back to the pool"
        _check_pieces(*await asyncio.wait_for(_read_pieces(store, name, MiB), 20), data, MiB)
        assert _open_idle(pool) == 1, "a whole read did not keep its connection"
    assert pool.num_connections == made  # every connection went back to the pool


async def test_s3_whole_reads_keep_the_connection_alive(s3: S3) -> None:
    (store, relay), pool = s3, _pool(s3)
    objects = {secrets.token_hex(16): os.urandom(n) for n in (0, 100, MiB + 1, 2 * MiB + 5)}
    for name, data in objects.items():
        await store.put(name, _aiter(data))
    made, opened = pool.num_connections, relay.accepted
    for _ in range(3):
        for name, data in objects.items():
            # A read that closes its connection shows as a reconnect of the next request.
            _check_pieces(*await _read_pieces(store, name, MiB), data, MiB)
            assert relay.accepted == opened, f"reconnected at read_blocks of {len(data)} B"
            assert b"".join([p async for p in store.get(name)]) == data
            assert relay.accepted == opened, f"reconnected at get of {len(data)} B"
    assert pool.num_connections == made

    big, data = secrets.token_hex(16), os.urandom(6 * MiB)
    await store.put(big, _aiter(data))
    opened = relay.accepted
    reader = store.get(big)
    assert isinstance(reader, AsyncGenerator)  # so that it can be closed half-read
    first = await anext(reader)
    assert first == data[: len(first)]
    await reader.aclose()
    await _settled(pool)  # the read-ahead in flight has ended and released its connection
    assert _open_idle(pool) == 0, "a half-read socket went back to the pool"
    _check_pieces(*await _read_pieces(store, big, MiB), data, MiB)
    assert relay.accepted == opened + 1  # the half-read socket was dropped, not reused
    assert b"".join([p async for p in store.get(big)]) == data
    assert relay.accepted == opened + 1


@pytest.fixture(params=["fs", "s3", "s3-stock"])
async def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "fs":
        yield FsBlobStore(tmp_path / "blobs")
        return
    store, relay = await _s3(request.getfixturevalue("moto"), request.param == "s3")
    yield store
    await store.aclose()
    await relay.close()


def _vault(engine: AsyncEngine, store: BlobStore, tmp_path: Path) -> Vault:
    create_kek_file(tmp_path / "kek")
    return Vault(engine, store, KeyFileProvider.from_file(tmp_path / "kek"), chunk_size=4096)


async def _stored(vault: Vault, engine: AsyncEngine, data: bytes) -> str:
    obj = await vault.put(data)
    async with engine.begin() as conn:
        await vault.record(conn, obj)
    return obj.name


async def _replace(store: BlobStore, name: str, change: Callable[[bytes], bytes]) -> None:
    """Rewrite a stored blob behind the vault's back (on disk for the filesystem store)."""
    if isinstance(store, FsBlobStore):
        path = store._root / name[:2] / name[2:4] / name
        path.write_bytes(change(path.read_bytes()))
        return
    raw = b"".join([p async for p in store.get(name)])
    await store.put(name, _aiter(change(raw)))


async def test_vault_get_returns_the_whole_object(
    engine: AsyncEngine, blob_store: BlobStore, tmp_path: Path
) -> None:
    vault = _vault(engine, blob_store, tmp_path)
    for size in (0, 100_000, 3 * MiB + 5):
        data = os.urandom(size)
        got = await vault.get(await _stored(vault, engine, data))
        assert type(got) is bytearray and got == data


async def test_vault_get_detects_a_damaged_or_missing_blob(
    engine: AsyncEngine, blob_store: BlobStore, tmp_path: Path
) -> None:
    vault = _vault(engine, blob_store, tmp_path)
    data = os.urandom(100_000)
    changes: list[Callable[[bytes], bytes]] = [
        lambda raw: raw[:-10],  # tail cut
        lambda raw: raw[: (CHUNK + TAG_SIZE) * 5],  # truncated at a chunk boundary
        lambda raw: raw[:5000] + bytes([raw[5000] ^ 0x40]) + raw[5001:],  # one bit flipped
        lambda raw: raw + b"\0" * 3,  # longer than recorded
    ]
    for change in changes:
        name = await _stored(vault, engine, data)
        await _replace(blob_store, name, change)
        with pytest.raises(IntegrityError, match=name):
            await vault.get(name)
    name = await _stored(vault, engine, data)
    await blob_store.delete(name)
    with pytest.raises(ObjectNotFound):
        await vault.get(name)
