"""Chunked AES-256-GCM so that objects of any size stream through a fixed buffer.

Each object has its own 256-bit data key and a random 96-bit nonce base; chunk
``i`` is sealed with nonce ``base XOR i`` and associated data binding the
object name, the chunk index and a "last chunk" flag, so a chunk cannot be
altered, dropped, reordered, moved to another object or the object truncated
without decryption failing. This module never sees keys in logs or files.
"""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.base import IntegrityError

__all__ = [
    "TAG_SIZE",
    "BufferDecryptor",
    "ChunkDecryptor",
    "ChunkEncryptor",
    "new_data_key",
    "sealed_size",
]

TAG_SIZE = 16
_NONCE_SIZE = 12


def new_data_key() -> tuple[bytes, bytes]:
    """A fresh ``(data_key, nonce_base)`` for one object."""
    return AESGCM.generate_key(bit_length=256), os.urandom(_NONCE_SIZE)


def sealed_size(plain: int, chunk_size: int) -> int:
    """Bytes stored for ``plain`` bytes: one tag per chunk, at least one (empty) chunk."""
    chunks = max(1, -(-plain // chunk_size))
    return plain + chunks * TAG_SIZE


def _nonce(base: bytes, index: int) -> bytes:
    counter = int.from_bytes(base, "big") ^ index
    return counter.to_bytes(_NONCE_SIZE, "big")


def _aad(name: str, index: int, last: bool) -> bytes:
    return b"pli-vault-v1\x00" + name.encode() + struct.pack(">QB", index, 1 if last else 0)


class ChunkEncryptor:
    """Re-chunks plaintext into fixed-size sealed chunks (the last may be shorter)."""

    def __init__(self, name: str, key: bytes, nonce_base: bytes, chunk_size: int) -> None:
        self._aes = AESGCM(key)
        self._name = name
        self._base = nonce_base
        self._size = chunk_size

    def _seal(self, index: int, data: bytes | memoryview, last: bool) -> bytes:
        return self._aes.encrypt(_nonce(self._base, index), data, _aad(self._name, index, last))

    async def encrypt(self, plaintext: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for index, chunk, last in _frames(plaintext, self._size):
            yield self._seal(index, chunk, last)

    def seal(self, plaintext: bytes) -> bytearray:
        """The same sealed bytes as :meth:`encrypt`, in one buffer, for a caller that holds
        the plaintext whole: each chunk is encrypted into its place, no object per chunk."""
        count = max(1, -(-len(plaintext) // self._size))
        out = bytearray(sealed_size(len(plaintext), self._size))
        with memoryview(out) as view, memoryview(plaintext) as src:
            for index in range(count):
                chunk = src[index * self._size : (index + 1) * self._size]
                start = index * (self._size + TAG_SIZE)
                self._aes.encrypt_into(
                    _nonce(self._base, index),
                    chunk,
                    _aad(self._name, index, index == count - 1),
                    view[start : start + len(chunk) + TAG_SIZE],
                )
        return out


class ChunkDecryptor:
    """Opens a stream of sealed chunks, failing with IntegrityError on any tampering."""

    def __init__(self, name: str, key: bytes, nonce_base: bytes, chunk_size: int) -> None:
        self._aes = AESGCM(key)
        self._name = name
        self._base = nonce_base
        self._sealed = chunk_size + TAG_SIZE

    def _open(self, index: int, data: bytes | memoryview, last: bool) -> bytes:
        try:
            return self._aes.decrypt(_nonce(self._base, index), data, _aad(self._name, index, last))
        except InvalidTag:
            raise IntegrityError(
                f"object {self._name}: chunk {index} failed authentication"
            ) from None

    async def decrypt(self, ciphertext: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for index, chunk, last in _frames(ciphertext, self._sealed):
            if last and len(chunk) < TAG_SIZE:
                raise IntegrityError(f"object {self._name}: truncated")
            yield self._open(index, chunk, last)


class BufferDecryptor:
    """Opens a whole object straight into one buffer of its recorded plaintext size.

    :meth:`vault.service.Vault.get` reads an object in one pass on a store
    thread and :meth:`feed` authenticates and decrypts each sealed chunk into its
    place in the output: a 10 MB message then costs one plaintext buffer, as a
    plain S3 read does, instead of a bytes object per 64 KiB chunk and a join
    (fresh pages for every copy). The chunk count comes from the recorded size,
    so an object cut short or extended fails like a tampered one.
    """

    def __init__(
        self, name: str, key: bytes, nonce_base: bytes, chunk_size: int, size: int
    ) -> None:
        self._aes = AESGCM(key)
        self._name = name
        self._base = nonce_base
        self._chunk = chunk_size
        self._count = max(1, -(-size // chunk_size))
        self._last = size - (self._count - 1) * chunk_size + TAG_SIZE
        self._index = 0
        self._carry = bytearray()  # a chunk split across two reads (not with whole blocks)
        self._out = bytearray(size)
        self._view = memoryview(self._out)

    def block_size(self, target: int) -> int:
        """Whole sealed chunks near ``target`` bytes, at most the whole object: reads
        of that size hand :meth:`feed` only whole chunks, which it opens in place."""
        sealed = self._chunk + TAG_SIZE
        whole = sealed * (self._count - 1) + self._last
        return min(whole, sealed * max(1, target // sealed))

    def _frame(self) -> int:
        return self._last if self._index == self._count - 1 else self._chunk + TAG_SIZE

    def feed(self, data: memoryview) -> None:
        """Open the sealed chunks in ``data`` (called on the reading thread)."""
        if self._carry:
            need = self._frame() - len(self._carry)
            self._carry += data[:need]
            data = data[need:]
            if len(self._carry) < self._frame():
                return
            self._open(bytes(self._carry))
            self._carry.clear()
        while data:
            if self._index >= self._count:
                raise IntegrityError(f"object {self._name}: longer than recorded")
            frame = self._frame()
            if len(data) < frame:
                self._carry += data
                return
            self._open(data[:frame])
            data = data[frame:]

    def _open(self, frame: bytes | memoryview) -> None:
        index = self._index
        start = index * self._chunk
        try:
            self._aes.decrypt_into(
                _nonce(self._base, index),
                frame,
                _aad(self._name, index, index == self._count - 1),
                self._view[start : start + len(frame) - TAG_SIZE],
            )
        except InvalidTag:
            raise IntegrityError(
                f"object {self._name}: chunk {index} failed authentication"
            ) from None
        self._index += 1

    def result(self) -> bytearray:
        """The plaintext, once every recorded chunk was opened."""
        if self._index != self._count or self._carry:
            raise IntegrityError(f"object {self._name}: truncated")
        self._view.release()
        return self._out


async def _frames(
    pieces: AsyncIterator[bytes], size: int
) -> AsyncIterator[tuple[int, bytes | memoryview, bool]]:
    """Cut a stream into ``size``-byte frames, the last one flagged (and maybe shorter).

    At least one byte is always held back, so the final frame is known to be
    final. Frames inside a piece are zero-copy views; only a frame spanning
    two pieces is assembled, so a large object costs no quadratic copying.
    """
    index = 0
    carry = bytearray()  # the start of a frame that continues in the next piece
    pending: bytes | memoryview | None = None  # a full frame not yet known to be last
    async for piece in pieces:
        if not piece:
            continue
        view = memoryview(piece)
        if carry:
            take = min(size - len(carry), len(view))
            carry += view[:take]
            view = view[take:]
            if len(carry) < size:
                continue
            joined: bytes | memoryview = bytes(carry)
            carry.clear()
        else:
            joined = b""
        for frame in _split(joined, view, size, carry):
            if pending is not None:
                yield index, pending, False
                index += 1
            pending = frame
    if carry:
        if pending is not None:
            yield index, pending, False
            index += 1
        yield index, bytes(carry), True
    else:
        yield index, pending if pending is not None else b"", True


def _split(
    first: bytes | memoryview, view: memoryview, size: int, carry: bytearray
) -> list[bytes | memoryview]:
    """Whole frames of ``first`` + ``view``; the tail goes to ``carry``."""
    frames: list[bytes | memoryview] = [first] if len(first) else []
    whole = len(view) - len(view) % size
    frames.extend(view[i : i + size] for i in range(0, whole, size))
    carry += view[whole:]
    return frames
