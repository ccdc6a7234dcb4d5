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

__all__ = ["TAG_SIZE", "ChunkDecryptor", "ChunkEncryptor", "new_data_key", "sealed_size"]

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


class ChunkDecryptor:
    """Opens a stream of sealed chunks, failing with IntegrityError on any tampering."""

    def __init__(self, name: str, key: bytes, nonce_base: bytes, chunk_size: int) -> None:
        self._aes = AESGCM(key)
        self._name = name
        self._base = nonce_base
        self._sealed = chunk_size + TAG_SIZE

    def _open(self, index: int, data: bytes | memoryview, last: bool) -> bytes:
        try:
            return self._aes.decrypt(
                _nonce(self._base, index), data, _aad(self._name, index, last)
            )
        except InvalidTag:
            raise IntegrityError(
                f"object {self._name}: chunk {index} failed authentication"
            ) from None

    async def decrypt(self, ciphertext: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for index, chunk, last in _frames(ciphertext, self._sealed):
            if last and len(chunk) < TAG_SIZE:
                raise IntegrityError(f"object {self._name}: truncated")
            yield self._open(index, chunk, last)


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


def _split(first: bytes | memoryview, view: memoryview, size: int,
           carry: bytearray) -> list[bytes | memoryview]:
    """Whole frames of ``first`` + ``view``; the tail goes to ``carry``."""
    frames: list[bytes | memoryview] = [first] if len(first) else []
    whole = len(view) - len(view) % size
    frames.extend(view[i:i + size] for i in range(0, whole, size))
    carry += view[whole:]
    return frames
