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

__all__ = ["TAG_SIZE", "ChunkDecryptor", "ChunkEncryptor", "new_data_key"]

TAG_SIZE = 16
_NONCE_SIZE = 12


def new_data_key() -> tuple[bytes, bytes]:
    """A fresh ``(data_key, nonce_base)`` for one object."""
    return AESGCM.generate_key(bit_length=256), os.urandom(_NONCE_SIZE)


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

    def _seal(self, index: int, data: bytes, last: bool) -> bytes:
        return self._aes.encrypt(_nonce(self._base, index), data, _aad(self._name, index, last))

    async def encrypt(self, plaintext: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        buf = bytearray()
        index = 0
        async for piece in plaintext:
            buf += piece
            # Keep at least one byte back so the final chunk is known to be final.
            while len(buf) > self._size:
                yield self._seal(index, bytes(buf[: self._size]), last=False)
                del buf[: self._size]
                index += 1
        yield self._seal(index, bytes(buf), last=True)


class ChunkDecryptor:
    """Opens a stream of sealed chunks, failing with IntegrityError on any tampering."""

    def __init__(self, name: str, key: bytes, nonce_base: bytes, chunk_size: int) -> None:
        self._aes = AESGCM(key)
        self._name = name
        self._base = nonce_base
        self._sealed = chunk_size + TAG_SIZE

    def _open(self, index: int, data: bytes, last: bool) -> bytes:
        try:
            return self._aes.decrypt(
                _nonce(self._base, index), data, _aad(self._name, index, last)
            )
        except InvalidTag:
            raise IntegrityError(
                f"object {self._name}: chunk {index} failed authentication"
            ) from None

    async def decrypt(self, ciphertext: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        buf = bytearray()
        index = 0
        async for piece in ciphertext:
            buf += piece
            while len(buf) > self._sealed:
                yield self._open(index, bytes(buf[: self._sealed]), last=False)
                del buf[: self._sealed]
                index += 1
        if len(buf) < TAG_SIZE:
            raise IntegrityError(f"object {self._name}: truncated")
        yield self._open(index, bytes(buf), last=True)
