"""The vault's seams: where bytes live (BlobStore) and who holds the key-encryption key.

Blob stores only move opaque, already-encrypted bytes under opaque names;
encryption, digests and retention live above them in ``vault/service.py`` so
every backend gets them for free. Backends translate their own failures to
:class:`VaultUnavailable` (a temporary failure: SMTP answers 451).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

__all__ = [
    "BlobStore",
    "IntegrityError",
    "KeyProvider",
    "ObjectNotFound",
    "VaultError",
    "VaultUnavailable",
]


class VaultError(Exception):
    """Base class of vault errors."""


class VaultUnavailable(VaultError):
    """Storage cannot be reached or written now; retry later."""


class ObjectNotFound(VaultError):
    """No object of that name."""


class IntegrityError(VaultError):
    """An object failed authentication on read: modified, truncated or reordered."""


class BlobStore(Protocol):
    async def put(self, name: str, chunks: AsyncIterator[bytes]) -> int:
        """Store atomically (all or nothing, durable on return); return the byte count."""
        ...

    def get(self, name: str) -> AsyncIterator[bytes]:
        """Stream an object's bytes; raises ObjectNotFound."""
        ...

    async def delete(self, name: str) -> None:
        """Remove an object; missing objects are not an error."""
        ...

    async def exists(self, name: str) -> bool: ...


class KeyProvider(Protocol):
    """Wraps per-object data keys with a key-encryption key held apart from the data."""

    def current_kek_id(self) -> str: ...

    def wrap(self, dek: bytes) -> tuple[str, bytes]:
        """Return ``(kek_id, wrapped_dek)``."""
        ...

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes: ...
