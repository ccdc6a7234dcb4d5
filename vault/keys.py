"""Key-encryption keys held apart from the data: a key file (default) or an env variable.

The KEK wraps each object's data key with AES-256-GCM; its id is a digest
prefix, stored beside each wrapped key so that rotation can find which KEK
wrapped what. The KEK itself is never logged, printed or stored with the data.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.base import IntegrityError, VaultError

__all__ = ["KeyFileProvider", "create_kek_file", "kek_id_of"]


FOLLOW_INTERVAL = 1.0  # seconds between checks for a rotated key (file or HSM)


def _kek_id(kek: bytes) -> str:
    return hashlib.sha256(b"pli-kek-id" + kek).hexdigest()[:16]


def kek_id_of(hex_line: str) -> str:
    """The id of a KEK written as hex (what vault_object.kek_id stores)."""
    return _kek_id(bytes.fromhex(hex_line.strip()))


def create_kek_file(path: Path) -> None:
    """Create a random 256-bit KEK (hex) with mode 0600; never overwrite one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(os.urandom(32).hex() + "\n")


class KeyFileProvider:
    """KEKs from hex strings: the current one first, older ones kept for unwrapping."""

    def __init__(self, keys_hex: list[str], path: Path | None = None) -> None:
        # Re-read when an unknown KEK id shows up, and at most every second when wrapping
        # if the file changed: a rotation run elsewhere is followed within ~1 s.
        self._path = path
        self._seen = self._stamp(path) if path is not None else None
        self._checked = time.monotonic()
        self._load(keys_hex)

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_ino

    async def _follow_rotation(self) -> None:
        if self._path is None or time.monotonic() - self._checked < FOLLOW_INTERVAL:
            return
        self._checked = time.monotonic()
        stamp = await asyncio.to_thread(self._stamp, self._path)
        if stamp is not None and stamp != self._seen:
            self._load(await asyncio.to_thread(self._read, self._path))
            self._seen = stamp

    def _load(self, keys_hex: list[str]) -> None:
        if not keys_hex:
            raise VaultError("no key-encryption key configured")
        keys: dict[str, bytes] = {}
        for i, text in enumerate(keys_hex):
            try:
                kek = bytes.fromhex(text.strip())
            except ValueError:
                raise VaultError(f"key-encryption key #{i + 1} is not hex") from None
            if len(kek) != 32:
                raise VaultError(f"key-encryption key #{i + 1} must be 32 bytes")
            keys[_kek_id(kek)] = kek
        self._keys = keys  # all or nothing: a bad file leaves the keys in use untouched
        self._current = _kek_id(bytes.fromhex(keys_hex[0].strip()))

    @classmethod
    def from_file(cls, path: Path, env_hex: str | None = None) -> KeyFileProvider:
        if env_hex:
            return cls([env_hex])
        return cls(cls._read(path), path)

    @staticmethod
    def _read(path: Path) -> list[str]:
        try:
            return [ln for ln in path.read_text().splitlines() if ln.strip()]
        except FileNotFoundError:
            raise VaultError(f"key-encryption key file missing: {path}") from None

    def current_kek_id(self) -> str:
        return self._current

    async def wrap(self, dek: bytes) -> tuple[str, bytes]:
        await self._follow_rotation()
        nonce = os.urandom(12)
        return self._current, nonce + AESGCM(self._keys[self._current]).encrypt(
            nonce, dek, b"pli-dek"
        )

    async def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        kek = self._keys.get(kek_id)
        if kek is None and self._path is not None:
            # `pli vault rotate-kek` ran while this process was up: pick the new file up,
            # and wrap new objects with the new KEK from now on too.
            self._load(await asyncio.to_thread(self._read, self._path))
            kek = self._keys.get(kek_id)
        if kek is None:
            raise VaultError(f"unknown key-encryption key id {kek_id}")
        try:
            return AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], b"pli-dek")
        except InvalidTag:
            raise IntegrityError("wrapped data key failed authentication") from None
