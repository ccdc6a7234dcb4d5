"""Filesystem blob store: atomic, durable writes of opaque encrypted objects.

A write goes to a temporary file in the target directory, is fsynced, renamed
into place and the directory fsynced, so after a crash an object is either
whole or absent. All file I/O runs in a thread so the event loop never blocks.
Names are validated: nothing outside the root is ever touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

from vault.base import ObjectNotFound, VaultUnavailable

__all__ = ["FsBlobStore"]

_NAME_RE = re.compile(r"^[0-9a-f]{32}(\.[a-z0-9]{1,16})?$")
_READ_SIZE = 256 * 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FsBlobStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, name: str) -> Path:
        if not _NAME_RE.match(name):
            raise ValueError(f"invalid object name {name!r}")
        return self._root / name[:2] / name[2:4] / name

    async def put(self, name: str, chunks: AsyncIterator[bytes]) -> int:
        final = self._path(name)
        tmp = final.with_name(f".{name}.tmp{os.getpid()}")

        def _open() -> int:
            final.parent.mkdir(parents=True, exist_ok=True)
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

        try:
            fd = await asyncio.to_thread(_open)
        except OSError as exc:
            raise VaultUnavailable(f"cannot write to the vault: {exc.strerror}") from exc
        total = 0
        try:
            async for chunk in chunks:
                await asyncio.to_thread(os.write, fd, chunk)
                total += len(chunk)

            def _commit() -> None:
                os.fsync(fd)
                os.close(fd)
                os.rename(tmp, final)
                _fsync_dir(final.parent)

            await asyncio.to_thread(_commit)
        except BaseException as exc:

            def _cleanup() -> None:
                with contextlib.suppress(OSError):
                    os.close(fd)
                tmp.unlink(missing_ok=True)

            await asyncio.to_thread(_cleanup)
            if isinstance(exc, OSError):
                raise VaultUnavailable(f"cannot write to the vault: {exc.strerror}") from exc
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

    async def delete(self, name: str) -> None:
        path = self._path(name)
        await asyncio.to_thread(path.unlink, True)

    async def exists(self, name: str) -> bool:
        return await asyncio.to_thread(self._path(name).is_file)
