"""Filesystem blob store: atomic, durable writes of opaque encrypted objects.

A write goes to a temporary file in the target directory, is fsynced, renamed
into place and the directory fsynced, so after a crash an object is either
whole or absent. All file I/O runs in a thread so the event loop never blocks.
Names are validated: nothing outside the root is ever touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from vault.base import ObjectNotFound, VaultUnavailable, pump

__all__ = ["FsBlobStore"]

_NAME_RE = re.compile(r"^[0-9a-f]{32}(\.[a-z0-9]{1,16})?$")
_READ_SIZE = 256 * 1024
_WRITE_BATCH = 1024 * 1024
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(path: Path) -> None:
    """mkdir -p, each new directory made durable in its parent: the fsync of the
    object's own directory would not save a fan-out directory created for it."""
    missing: list[Path] = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another writer made it meanwhile
            os.mkdir(directory, 0o700)
        _fsync_dir(directory.parent)


class FsBlobStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, name: str) -> Path:
        if not _NAME_RE.match(name):
            raise ValueError(f"invalid object name {name!r}")
        return self._root / name[:2] / name[2:4] / name

    async def put(
        self,
        name: str,
        chunks: AsyncIterator[bytes | bytearray],
        retain_until: dt.datetime | None = None,
        size: int | None = None,
    ) -> int:
        # A filesystem cannot lock a file against its own root: retention is
        # enforced by pli (vault.service.Vault.delete), not here.
        final = self._path(name)
        tmp = final.with_name(f".{name}.tmp{os.getpid()}")
        # Bytes are gathered up to _WRITE_BATCH before each trip to a thread: a
        # typical message is opened, written, fsynced and renamed in one trip,
        # while a large object still streams through a bounded buffer.
        fd: int | None = None
        pending: list[bytes | bytearray] = []
        size = total = 0

        def _flush(data: list[bytes | bytearray], last: bool) -> None:
            nonlocal fd
            if fd is None:
                try:  # the fan-out directory nearly always exists: no mkdir per put
                    fd = os.open(tmp, _CREATE, 0o600)
                except FileNotFoundError:
                    _make_dirs(final.parent)
                    fd = os.open(tmp, _CREATE, 0o600)
            for piece in data:
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view) :]
            if last:
                os.fsync(fd)
                os.close(fd)
                fd = None
                os.rename(tmp, final)
                _fsync_dir(final.parent)

        def _cleanup() -> None:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
            tmp.unlink(missing_ok=True)

        try:
            async for chunk in chunks:
                pending.append(chunk)
                size += len(chunk)
                total += len(chunk)
                if size >= _WRITE_BATCH:
                    batch, pending, size = pending, [], 0
                    await asyncio.to_thread(_flush, batch, False)
            await asyncio.to_thread(_flush, pending, True)
        except OSError as exc:
            await asyncio.to_thread(_cleanup)
            raise VaultUnavailable(f"cannot write to the vault: {exc.strerror}") from exc
        except BaseException:
            await asyncio.to_thread(_cleanup)
            raise
        return total

    async def get(self, name: str) -> AsyncIterator[bytes]:
        path = self._path(name)
        try:
            fh = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise ObjectNotFound(name) from None
        except OSError as exc:
            raise VaultUnavailable(f"cannot read the vault: {exc.strerror}") from exc
        try:
            while True:
                data = await asyncio.to_thread(fh.read, _READ_SIZE)
                if not data:
                    break
                yield data
        finally:
            await asyncio.to_thread(fh.close)

    async def read_blocks(self, name: str, sink: Callable[[memoryview], None], block: int) -> int:
        path = self._path(name)

        def _read() -> int:
            try:
                with open(path, "rb", buffering=0) as fh:  # unbuffered: reads land in the block
                    return pump(fh.readinto, sink, block)
            except FileNotFoundError:
                raise ObjectNotFound(name) from None

        try:
            return await asyncio.to_thread(_read)
        except OSError as exc:
            raise VaultUnavailable(f"cannot read the vault: {exc.strerror}") from exc

    async def delete(self, name: str) -> None:
        path = self._path(name)
        await asyncio.to_thread(path.unlink, True)

    async def exists(self, name: str) -> bool:
        return await asyncio.to_thread(self._path(name).is_file)

    async def listing(self) -> AsyncIterator[tuple[str, dt.datetime]]:
        def _list(top: Path) -> list[tuple[str, dt.datetime]]:
            found = []
            for p in top.glob("*/*"):
                if _NAME_RE.match(p.name):
                    with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                        found.append((p.name, dt.datetime.fromtimestamp(p.stat().st_mtime, dt.UTC)))
            return found

        if not self._root.is_dir():
            return
        tops = await asyncio.to_thread(lambda: sorted(self._root.iterdir()))
        for top in tops:  # one directory level per thread trip: bounded lists
            if top.is_dir() and len(top.name) == 2:
                for item in await asyncio.to_thread(_list, top):
                    yield item
