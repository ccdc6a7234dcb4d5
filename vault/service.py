"""The vault service: every object encrypted with its own key, digested and recorded.

Storing is two steps so that "nothing lost" holds: :meth:`Vault.put` writes
the encrypted blob durably and returns a :class:`StoredObject`; the caller then
records it with :meth:`Vault.record` inside the same SQL transaction as its own
metadata and audit entry, or calls :meth:`Vault.discard` on abort. Reads check
every chunk's GCM tag before handing it out (``pli vault verify`` also the
plaintext SHA-256).
Object names are random: they reveal no address, subject or date. Each object
gets its retention date when stored (:mod:`vault.retention`); :meth:`Vault.delete`
is the only way out, and it refuses objects still retained or under a legal
hold, then audits what it removed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault import audit, retention
from vault.base import (
    BlobStore,
    IntegrityError,
    KeyProvider,
    LegalHoldActive,
    LockingStore,
    ObjectNotFound,
    RetentionLocked,
    VaultError,
    VaultUnavailable,
)
from vault.crypto import BufferDecryptor, ChunkDecryptor, ChunkEncryptor, new_data_key
from vault.retention import RetentionPolicy
from vault.tables import vault_object

__all__ = ["StoredObject", "Vault"]

_INLINE_SEAL = 256 * 1024  # smaller messages are sealed on the loop: a thread trip costs more
_READ_BLOCK = 1024 * 1024  # per read into the store's reused buffer (whole sealed chunks)


@dataclass(frozen=True, slots=True)
class StoredObject:
    name: str
    kek_id: str
    wrapped_key: bytes
    nonce_base: bytes
    chunk_size: int
    size: int
    sha256: str
    created_at: dt.datetime
    doc_type: str = "message"
    retain_until: dt.datetime | None = None


async def _iterate(data: bytearray) -> AsyncIterator[bytearray]:
    yield data


def _hexdigest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _MetaCache:
    """The rows of recently stored or read objects, so that a read needs no SQL.

    Mail is read soon after it is stored (the outbound queue relays it, an IDLE
    client fetches it), and a row never changes except for ``pli vault
    rotate-kek`` re-wrapping its data key: the data key itself stays the same,
    so a stale entry still opens the object while the old KEK is known, and
    once it is retired the read fails over to the fresh row (:meth:`Vault.stream`).
    Objects put but never recorded are dropped by :meth:`Vault.discard`; their
    random names are known to nobody else. Bounded, least recently used out.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._rows: OrderedDict[str, StoredObject] = OrderedDict()

    def get(self, name: str) -> StoredObject | None:
        obj = self._rows.get(name)
        if obj is not None:
            self._rows.move_to_end(name)
        return obj

    def put(self, obj: StoredObject) -> None:
        if self._size <= 0:
            return
        self._rows[obj.name] = obj
        self._rows.move_to_end(obj.name)
        while len(self._rows) > self._size:
            self._rows.popitem(last=False)

    def drop(self, name: str) -> None:
        self._rows.pop(name, None)


class Vault:
    def __init__(
        self,
        engine: AsyncEngine,
        store: BlobStore,
        keys: KeyProvider,
        chunk_size: int = 65536,
        retention: RetentionPolicy | None = None,
        meta_cache: int = 4096,
    ) -> None:
        self._engine = engine
        self._cache = _MetaCache(meta_cache)
        self._store = store
        self._keys = keys
        self._chunk = chunk_size
        self.retention = retention or RetentionPolicy()

    async def put(
        self,
        data: bytes | AsyncIterator[bytes],
        *,
        doc_type: str = "message",
        mailboxes: Iterable[str] = (),
    ) -> StoredObject:
        """Encrypt and store durably; not yet recorded (see :meth:`record`).

        ``mailboxes`` only choose the retention period; they are not stored.
        """
        name = secrets.token_hex(16)
        now = dt.datetime.now(dt.UTC)
        until = self.retention.until(now, doc_type, mailboxes)
        dek, nonce_base = new_data_key()
        kek_id, wrapped = await self._keys.wrap(dek)
        enc = ChunkEncryptor(name, dek, nonce_base, self._chunk)
        if isinstance(data, bytes):
            sealed, sha256 = await self._seal(enc, data)
            await self._store.put(name, _iterate(sealed), until, len(sealed))
            size = len(data)
        else:
            size, sha256 = await self._put_stream(name, enc, data, until)
        obj = StoredObject(
            name=name,
            kek_id=kek_id,
            wrapped_key=wrapped,
            nonce_base=nonce_base,
            chunk_size=self._chunk,
            size=size,
            sha256=sha256,
            created_at=now,
            doc_type=doc_type,
            retain_until=until,
        )
        self._cache.put(obj)
        return obj

    async def _put_stream(
        self, name: str, enc: ChunkEncryptor, data: AsyncIterator[bytes], until: dt.datetime | None
    ) -> tuple[int, str]:
        """Encrypt and store a stream; its size and plaintext SHA-256."""
        digest = hashlib.sha256()
        size = 0

        async def _counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for piece in data:
                digest.update(piece)
                size += len(piece)
                yield piece

        await self._store.put(name, enc.encrypt(_counted()), until)
        return size, digest.hexdigest()

    @staticmethod
    async def _seal(enc: ChunkEncryptor, data: bytes) -> tuple[bytearray, str]:
        """The sealed object and the plaintext's SHA-256 of a message held whole.

        A large one is hashed on another thread while it is encrypted on a third:
        hashlib releases the GIL, so on two cores the digest is hidden behind the
        encryption instead of added to it (docs/benchmarks.md), and the event loop
        waits on neither.
        """
        if len(data) < _INLINE_SEAL:
            return enc.seal(data), hashlib.sha256(data).hexdigest()
        loop = asyncio.get_running_loop()
        digest = loop.run_in_executor(None, _hexdigest, data)
        try:
            sealed = await asyncio.to_thread(enc.seal, data)
        finally:
            sha256 = await digest
        return sealed, sha256

    @staticmethod
    def row(obj: StoredObject) -> dict[str, object]:
        """The object's metadata row, for callers that insert many in one statement."""
        return {
            "name": obj.name,
            "kek_id": obj.kek_id,
            "wrapped_key": obj.wrapped_key,
            "nonce_base": obj.nonce_base,
            "chunk_size": obj.chunk_size,
            "size": obj.size,
            "sha256": obj.sha256,
            "created_at": obj.created_at,
            "doc_type": obj.doc_type,
            "retain_until": obj.retain_until,
        }

    async def record(self, conn: AsyncConnection, obj: StoredObject) -> None:
        """Insert the object's row in the caller's transaction."""
        await conn.execute(vault_object.insert().values(**self.row(obj)))

    async def record_many(self, conn: AsyncConnection, objs: Sequence[StoredObject]) -> None:
        """Insert several objects' rows in one statement, in the caller's transaction."""
        if objs:
            await conn.execute(vault_object.insert(), [self.row(o) for o in objs])

    async def any_object(self) -> str | None:
        """The name of some stored object (readiness probes read it), None when empty."""
        async with self._engine.connect() as conn:
            value = (await conn.execute(select(vault_object.c.name).limit(1))).scalar()
        return str(value) if value is not None else None

    async def discard(self, obj: StoredObject) -> None:
        """Remove a blob whose transaction did not commit."""
        self._cache.drop(obj.name)
        await self._store.delete(obj.name)

    async def is_recorded(self, name: str) -> bool:
        """Whether an object's row was committed (raises if the database cannot say)."""
        async with self._engine.connect() as conn:
            found = await conn.execute(
                select(vault_object.c.name).where(vault_object.c.name == name)
            )
            return found.first() is not None

    async def _meta(self, name: str, *, fresh: bool = False) -> StoredObject:
        cached = None if fresh else self._cache.get(name)
        if cached is not None:
            return cached
        try:
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(select(vault_object).where(vault_object.c.name == name))
                ).one_or_none()
        except (OperationalError, DBAPIError, OSError) as exc:
            raise VaultUnavailable("vault metadata unreachable") from exc
        if row is None:
            self._cache.drop(name)
            raise ObjectNotFound(name)
        obj = StoredObject(**row._asdict())
        self._cache.put(obj)
        return obj

    async def _data_key(self, name: str) -> tuple[StoredObject, bytes]:
        meta = await self._meta(name)
        try:
            return meta, await self._keys.unwrap(meta.kek_id, meta.wrapped_key)
        except VaultError:
            # A cached row may predate `pli vault rotate-kek --settle` in another
            # process: its old KEK is gone, the re-wrapped key is in the table.
            meta = await self._meta(name, fresh=True)
            return meta, await self._keys.unwrap(meta.kek_id, meta.wrapped_key)

    async def stream(self, name: str, *, check_digest: bool = False) -> AsyncIterator[bytes]:
        """Decrypted bytes, each chunk authenticated (GCM) before it is handed out.

        The GCM tags bind every chunk to this object, its position and whether it
        is the last, so a modified, reordered, truncated or swapped object fails
        on read. ``check_digest`` also recomputes the plaintext SHA-256 recorded
        at put (``pli vault verify``); the final chunk is then withheld until it
        matched.
        """
        meta, dek = await self._data_key(name)
        dec = ChunkDecryptor(name, dek, meta.nonce_base, meta.chunk_size)
        if not check_digest:
            async for piece in dec.decrypt(self._store.get(name)):
                yield piece
            return
        digest = hashlib.sha256()
        pending: bytes | None = None
        async for piece in dec.decrypt(self._store.get(name)):
            if pending is not None:
                yield pending
            digest.update(piece)
            pending = piece
        if digest.hexdigest() != meta.sha256:
            raise IntegrityError(f"object {name}: digest mismatch")
        if pending:
            yield pending

    async def get(self, name: str) -> bytearray:
        """The whole object, every chunk authenticated: a fresh buffer the caller owns.

        One pass on a store thread decrypts each chunk straight into its place
        (:class:`vault.crypto.BufferDecryptor`). It is a bytearray because bytes
        would cost one more copy of the whole object into fresh pages: for a
        10 MB message, about as long as the read itself.
        """
        meta, dek = await self._data_key(name)
        opener = BufferDecryptor(name, dek, meta.nonce_base, meta.chunk_size, meta.size)
        await self._store.read_blocks(name, opener.feed, opener.block_size(_READ_BLOCK))
        return opener.result()

    @property
    def store(self) -> BlobStore:
        """The blob store underneath (maintenance lists it; nobody else should need it)."""
        return self._store

    async def set_holds(self, names: Sequence[str], on: bool) -> None:
        """Mirror legal holds into a store that enforces them itself (S3 Object Lock)."""
        if isinstance(self._store, LockingStore):
            for name in names:
                await self._store.set_legal_hold(name, on)

    async def delete(
        self,
        name: str,
        *,
        actor: str,
        reason: str,
        remote: str = "",
        now: dt.datetime | None = None,
    ) -> None:
        """Delete an object for good: refused while retained or held; audited.

        The blob goes first (a store with object lock may still refuse), then the
        row and the audit entry in one transaction; a failure in between leaves a
        row without blob, which ``pli vault verify`` reports and a retry finishes.
        """
        now = now or dt.datetime.now(dt.UTC)
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(vault_object.c.retain_until, vault_object.c.doc_type).where(
                        vault_object.c.name == name
                    )
                )
            ).one_or_none()
            if row is None:
                raise ObjectNotFound(name)
            until = row.retain_until
            if until is not None and until.tzinfo is None:
                until = until.replace(tzinfo=dt.UTC)  # SQLite returns naive UTC
            if until is not None and until > now:
                raise RetentionLocked(
                    f"object {name} is retained until {until.isoformat(timespec='seconds')}"
                )
            if await retention.held(conn, [name]):
                raise LegalHoldActive(f"object {name} is under legal hold")
        self._cache.drop(name)
        await self._store.delete(name)
        async with self._engine.begin() as conn:
            await conn.execute(delete(vault_object).where(vault_object.c.name == name))
            await audit.append(
                conn,
                audit.AuditEvent(
                    action="vault.delete",
                    actor=actor,
                    remote=remote,
                    result="ok",
                    reason=reason[:64],
                    detail={"object": name, "doc_type": row.doc_type},
                ),
            )
