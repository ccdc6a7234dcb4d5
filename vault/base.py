"""The vault's seams: where bytes live (BlobStore) and who holds the key-encryption key.

Blob stores only move opaque, already-encrypted bytes under opaque names;
encryption, digests and retention live above them in ``vault/service.py`` so
every backend gets them for free. Backends translate their own failures to
:class:`VaultUnavailable` (a temporary failure: SMTP answers 451).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Protocol, runtime_checkable

__all__ = [
    "BlobStore",
    "IntegrityError",
    "KeyProvider",
    "LegalHoldActive",
    "LockingStore",
    "ObjectNotFound",
    "RetentionLocked",
    "VaultError",
    "VaultUnavailable",
    "pump",
]


class VaultError(Exception):
    """Base class of vault errors."""


class VaultUnavailable(VaultError):
    """Storage cannot be reached or written now; retry later."""


class ObjectNotFound(VaultError):
    """No object of that name."""


class IntegrityError(VaultError):
    """An object failed authentication on read: modified, truncated or reordered."""


class RetentionLocked(VaultError):
    """The object's retention date is not reached: neither pli nor the store deletes it."""


class LegalHoldActive(VaultError):
    """A legal hold covers the object: no deletion until every hold on it is released."""


class BlobStore(Protocol):
    async def put(
        self,
        name: str,
        chunks: AsyncIterator[bytes | bytearray],
        retain_until: dt.datetime | None = None,
        size: int | None = None,
    ) -> int:
        """Store atomically (all or nothing, durable on return); return the byte count.

        ``retain_until`` is the object's retention date: a store that can lock
        objects (S3 Object Lock) locks it until then; pli itself refuses early
        deletions on every backend. ``size``, when the caller knows it, lets a
        store pick a cheaper upload.
        """
        ...

    def get(self, name: str) -> AsyncIterator[bytes]:
        """Stream an object's bytes; raises ObjectNotFound."""
        ...

    async def read_blocks(self, name: str, sink: Callable[[memoryview], None], block: int) -> int:
        """Read a whole object in one pass off the event loop; return the byte count.

        ``sink`` gets every ``block`` bytes in turn (only the last piece may be
        shorter), on the store's own thread, in a buffer that is reused: it must
        consume the view before returning. An exception from ``sink`` ends the
        read and propagates (an OSError as VaultUnavailable, like the store's
        own). One thread trip and no allocation per block, for
        callers that want the object whole (:meth:`vault.service.Vault.get`).
        Raises ObjectNotFound.
        """
        ...

    async def delete(self, name: str) -> None:
        """Remove an object; missing objects are not an error."""
        ...

    async def exists(self, name: str) -> bool: ...

    def listing(self) -> AsyncIterator[tuple[str, dt.datetime]]:
        """Every object's name and last-modified time (for the orphan sweep), any order."""
        ...


@runtime_checkable
class LockingStore(Protocol):
    """A store that enforces holds itself (S3 Object Lock), beyond pli's own refusal."""

    async def set_legal_hold(self, name: str, on: bool) -> None: ...


class KeyProvider(Protocol):
    """Wraps per-object data keys with a key-encryption key held apart from the data.

    Asynchronous because the key may live in an HSM (PKCS#11) whose calls block.
    """

    def current_kek_id(self) -> str: ...

    async def wrap(self, dek: bytes) -> tuple[str, bytes]:
        """Return ``(kek_id, wrapped_dek)``."""
        ...

    async def unwrap(self, kek_id: str, wrapped: bytes) -> bytes: ...


def _fill(readinto: Callable[[memoryview], int | None], view: memoryview) -> int:
    """Fill ``view`` from a ``readinto`` that may read short; fewer bytes only at the end."""
    got = 0
    while got < len(view):
        n = readinto(view[got:])
        if not n:
            break
        got += n
    return got


def pump(
    readinto: Callable[[memoryview], int | None], sink: Callable[[memoryview], None], block: int
) -> int:
    """The loop behind every store's :meth:`BlobStore.read_blocks`: one reused buffer."""
    view = memoryview(bytearray(block))
    total = 0
    while True:
        got = _fill(readinto, view)
        if got:
            sink(view[:got])
            total += got
        if got < block:
            return total
