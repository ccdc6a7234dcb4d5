"""Operator work on the vault: KEK rotation (re-wrap, never rewrite) and integrity sweeps.

Rotation writes a new key-encryption key in front of the key file (the old
ones stay for unwrapping), then re-wraps every data key still under an older
KEK, in batches, each batch in its own transaction: an interrupted rotation
is resumed by running it again, and no object is ever rewritten. Once nothing
references an old KEK, ``drop_unused_keks`` removes it from the file.

The sweep decrypts every recorded object and checks its GCM tags and SHA-256,
reporting each failure by name (never by content) without stopping. The orphan
sweep removes blobs that no row records (a crash between the blob write and
the commit leaves one: SMTP had answered 4xx, so nothing accepted is lost); a
blob younger than the grace period may belong to a transaction still running
and is left alone.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.base import KeyProvider, RetentionLocked, VaultError
from vault.keys import KeyFileProvider, kek_id_of
from vault.service import Vault
from vault.tables import vault_object

__all__ = [
    "OrphanReport",
    "RewrapReport",
    "VerifyReport",
    "count_by_kek",
    "drop_unused_keks",
    "rewrap",
    "rotate_kek_file",
    "sweep_orphans",
    "verify_objects",
]

_BATCH = 500


@dataclass
class RewrapReport:
    new_kek_id: str
    rewrapped: int = 0


@dataclass
class VerifyReport:
    checked: int = 0
    bytes: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (object name, reason)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class OrphanReport:
    listed: int = 0
    orphans: list[str] = field(default_factory=list)
    removed: int = 0
    kept_locked: list[str] = field(default_factory=list)  # the store refused (object lock)


def _write_key_file(path: Path, lines: list[str]) -> None:
    """Atomically replace the key file (0600 from the first byte, fsynced)."""
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _key_lines(path: Path) -> list[str]:
    try:
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except FileNotFoundError:
        raise VaultError(f"key-encryption key file missing: {path}") from None


def rotate_kek_file(path: Path) -> KeyFileProvider:
    """Put a new random KEK first in the file; return the provider over all of them."""
    lines = [os.urandom(32).hex(), *_key_lines(path)]
    provider = KeyFileProvider(lines)  # validates the old lines before anything is written
    _write_key_file(path, lines)
    return provider


async def rewrap(
    engine: AsyncEngine, keys: KeyProvider, progress: Callable[[int], None] | None = None
) -> RewrapReport:
    """Re-wrap every data key not under the current KEK (resumable, batch by batch)."""
    current = keys.current_kek_id()
    report = RewrapReport(new_kek_id=current)
    o = vault_object.c
    last = ""
    while True:
        async with engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(o.name, o.kek_id, o.wrapped_key)
                    .where(o.kek_id != current, o.name > last)
                    .order_by(o.name)
                    .limit(_BATCH)
                )
            ).all()
            if not rows:
                return report
            for name, kek_id, wrapped in rows:
                new_id, new_wrapped = await keys.wrap(await keys.unwrap(kek_id, wrapped))
                await conn.execute(
                    update(vault_object)
                    .where(o.name == name)
                    .where(o.kek_id == kek_id)
                    .values(kek_id=new_id, wrapped_key=new_wrapped)
                )
        report.rewrapped += len(rows)
        last = rows[-1][0]
        if progress is not None:
            progress(report.rewrapped)


async def drop_unused_keks(engine: AsyncEngine, path: Path) -> list[str]:
    """Remove from the key file the KEKs no object references; return their ids."""
    lines = _key_lines(path)
    async with engine.connect() as conn:
        used = set(
            (
                await conn.execute(select(vault_object.c.kek_id).group_by(vault_object.c.kek_id))
            ).scalars()
        )
    keep = [lines[0]] + [ln for ln in lines[1:] if kek_id_of(ln) in used]
    dropped = [kek_id_of(ln) for ln in lines[1:] if kek_id_of(ln) not in used]
    if dropped:
        _write_key_file(path, keep)
    return dropped


async def verify_objects(
    engine: AsyncEngine, vault: Vault, progress: Callable[[int], None] | None = None
) -> VerifyReport:
    """Decrypt every recorded object; list the ones that fail, and why."""
    report = VerifyReport()
    o = vault_object.c
    last = ""
    while True:
        async with engine.connect() as conn:
            names = (
                (
                    await conn.execute(
                        select(o.name).where(o.name > last).order_by(o.name).limit(_BATCH)
                    )
                )
                .scalars()
                .all()
            )
        if not names:
            return report
        for name in names:
            try:
                async for piece in vault.stream(name, check_digest=True):
                    report.bytes += len(piece)
            except VaultError as exc:
                report.failures.append((name, f"{type(exc).__name__}: {exc}"))
            report.checked += 1
        last = names[-1]
        if progress is not None:
            progress(report.checked)


async def count_by_kek(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            str(k): int(n)
            for k, n in await conn.execute(
                select(vault_object.c.kek_id, func.count()).group_by(vault_object.c.kek_id)
            )
        }


async def sweep_orphans(
    engine: AsyncEngine, vault: Vault, grace: dt.timedelta, dry_run: bool = False
) -> OrphanReport:
    """Remove blobs that no ``vault_object`` row records and older than ``grace``."""
    report = OrphanReport()
    cutoff = dt.datetime.now(dt.UTC) - grace
    candidates: list[str] = []

    async def _check(batch: list[str]) -> None:
        async with engine.connect() as conn:
            known = set(
                (
                    await conn.execute(
                        select(vault_object.c.name).where(vault_object.c.name.in_(batch))
                    )
                ).scalars()
            )
        report.orphans.extend(n for n in batch if n not in known)

    async for name, modified in vault.store.listing():
        report.listed += 1
        if modified < cutoff:
            candidates.append(name)
            if len(candidates) >= _BATCH:
                await _check(candidates)
                candidates = []
    if candidates:
        await _check(candidates)
    if dry_run:
        return report
    for name in report.orphans:
        try:
            await vault.store.delete(name)
        except RetentionLocked:
            report.kept_locked.append(name)
        else:
            report.removed += 1
    return report
