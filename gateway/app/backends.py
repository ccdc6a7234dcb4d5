"""Backends by name: configuration keys in, the concrete directory, blob store, key
provider and vault out, each registered on the caller's exit stack.

The only module that names concrete backend classes (the CLI opens the same
ones for its commands); everything above sees the ``typing.Protocol``s of
``directory.base`` and ``vault.base``, and :class:`DirectoryChanges` for the
operator's directory changes, whose implementation differs per backend.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from directory.base import Directory, DirectoryAdmin
from directory.ldap import LdapConfig, LdapDirectory
from directory.sql import SqlDirectory, bump_generation
from gateway.base.config import Settings, read_secret
from gateway.base.errors import ConfigError
from vault.base import BlobStore, KeyProvider
from vault.fs import FsBlobStore
from vault.keys import KeyFileProvider
from vault.retention import RetentionPolicy
from vault.service import Vault

if TYPE_CHECKING:  # imported when used: python-pkcs11 only for an HSM, importers by the CLI
    from directory.sql_import import ImportReport, Progress
    from vault.pkcs11 import Pkcs11KeyProvider

__all__ = [
    "DirectoryBackend",
    "DirectoryChanges",
    "ldap_config",
    "open_blob_store",
    "open_directory",
    "open_directory_changes",
    "open_key_provider",
    "open_pkcs11_key_provider",
    "open_vault",
]


class DirectoryBackend(Directory, DirectoryAdmin, Protocol):
    """What the configured backend offers: lookups and operator changes."""

    name: str


def ldap_config(settings: Settings) -> LdapConfig:
    cfg = settings.directory.ldap
    password = cfg.bind_password
    if cfg.bind_password_file:
        try:
            password = Path(cfg.bind_password_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                "invalid configuration key 'directory.ldap.bind_password_file': "
                f"cannot read it: {exc.strerror}"
            ) from None
    return LdapConfig(
        url=cfg.url,
        base_dn=cfg.base_dn,
        bind_dn=cfg.bind_dn,
        bind_password=password,
        pool_size=cfg.pool_size,
        timeout=cfg.timeout,
        start_tls=cfg.start_tls,
        ca_file=cfg.ca_file,
    )


def _open_ldap(settings: Settings, stack: AsyncExitStack) -> LdapDirectory:
    if not settings.directory.ldap.url:
        raise ConfigError(
            "invalid configuration key 'directory.ldap.url': empty, "
            "and the LDAP directory was asked for"
        )
    ldap_dir = LdapDirectory(ldap_config(settings))
    stack.push_async_callback(ldap_dir.aclose)
    return ldap_dir


def open_directory(
    settings: Settings, engine: AsyncEngine, stack: AsyncExitStack, backend: str | None = None
) -> DirectoryBackend:
    """The configured directory backend (or ``backend``), closed with the stack."""
    if (backend or settings.directory.backend) == "ldap":
        return _open_ldap(settings, stack)
    return SqlDirectory(engine)


class DirectoryChanges(Protocol):
    """An operator's changes to a directory backend (``pli directory import|delegate``).

    Every change that wrote something has bumped the SQL change generation when
    the call returns, whatever the backend: the caches of running instances
    drop stale answers within a second.
    """

    async def import_extraction(
        self, source: Path, *, dry_run: bool, max_errors: int, progress: Progress | None
    ) -> ImportReport: ...

    async def import_trustlist(self, source: Path) -> int: ...

    async def set_delegation(self, mailbox: str, user: str, *, revoke: bool = False) -> bool: ...


class _SqlChanges:
    """The SQL directory bumps the generation in each change's own transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._directory = SqlDirectory(engine)

    async def import_extraction(
        self, source: Path, *, dry_run: bool, max_errors: int, progress: Progress | None
    ) -> ImportReport:
        from directory.sql_import import import_extraction

        return await import_extraction(
            self._engine, source, dry_run=dry_run, max_errors=max_errors, progress=progress
        )

    async def import_trustlist(self, source: Path) -> int:
        from directory.sql_import import import_trustlist

        return await import_trustlist(self._engine, source)

    async def set_delegation(self, mailbox: str, user: str, *, revoke: bool = False) -> bool:
        return await self._directory.set_delegation(mailbox, user, revoke=revoke)


class _LdapChanges:
    """LDAP keeps no generation: the shared SQL one is bumped after each change that wrote
    (LDAP has no transaction to bump it in)."""

    def __init__(self, directory: LdapDirectory, engine: AsyncEngine) -> None:
        self._directory, self._engine = directory, engine

    async def _bump(self) -> None:
        async with self._engine.begin() as conn:
            await bump_generation(conn)

    async def import_extraction(
        self, source: Path, *, dry_run: bool, max_errors: int, progress: Progress | None
    ) -> ImportReport:
        from directory.ldap_import import import_extraction_ldap

        report = await import_extraction_ldap(
            self._directory, source, dry_run=dry_run, max_errors=max_errors, progress=progress
        )
        if report.ok and not dry_run:
            await self._bump()
        return report

    async def import_trustlist(self, source: Path) -> int:
        from directory.ldap_import import import_trustlist_ldap
        from directory.trustlist import parse_trustlist

        def parse() -> list[str]:
            with source.open("rb") as fh:
                return parse_trustlist(fh)

        count = await import_trustlist_ldap(self._directory, await asyncio.to_thread(parse))
        await self._bump()
        return count

    async def set_delegation(self, mailbox: str, user: str, *, revoke: bool = False) -> bool:
        changed = await self._directory.set_delegation(mailbox, user, revoke=revoke)
        if changed:
            await self._bump()
        return changed


def open_directory_changes(
    settings: Settings, engine: AsyncEngine, stack: AsyncExitStack, backend: str | None = None
) -> DirectoryChanges:
    """The operator's changes to the configured directory backend (or ``backend``)."""
    if (backend or settings.directory.backend) == "ldap":
        return _LdapChanges(_open_ldap(settings, stack), engine)
    return _SqlChanges(engine)


async def open_blob_store(settings: Settings, stack: AsyncExitStack) -> BlobStore:
    """The configured store of encrypted objects (filesystem, or S3 such as MinIO)."""
    if settings.vault.backend != "s3":
        return FsBlobStore(settings.vault_path())
    from vault.s3 import S3BlobStore

    c = settings.vault.s3
    store = S3BlobStore(
        c.endpoint,
        c.access_key,
        c.secret_key,
        c.bucket,
        secure=c.secure,
        region=c.region or None,
        prefix=c.prefix,
        object_lock=c.object_lock,
        retention_days=c.retention_days,
        part_size=c.part_size,
        direct=settings.tuning.s3_direct,
    )
    stack.push_async_callback(store.aclose)
    await store.ensure_bucket()
    return store


async def open_key_provider(settings: Settings, stack: AsyncExitStack) -> KeyProvider:
    """The key-encryption key: a key file (or PLI_VAULT_KEK_HEX), or an HSM over PKCS#11."""
    if settings.vault.kek != "pkcs11":
        return KeyFileProvider.from_file(settings.kek_path(), os.environ.get("PLI_VAULT_KEK_HEX"))
    return await open_pkcs11_key_provider(settings, stack)


async def open_pkcs11_key_provider(
    settings: Settings,
    stack: AsyncExitStack,
) -> Pkcs11KeyProvider:
    """The HSM key provider itself (``pli vault rotate-kek`` needs its HSM-only calls)."""
    from vault.pkcs11 import Pkcs11KeyProvider

    c = settings.vault.pkcs11
    pin = await asyncio.to_thread(
        read_secret, c.pin, c.pin_file, "vault.pkcs11.pin", "PLI_VAULT__PKCS11__PIN"
    )
    provider = await Pkcs11KeyProvider.open(c.module, c.token_label, pin, c.key_label)
    stack.push_async_callback(provider.aclose)
    return provider


async def open_vault(settings: Settings, engine: AsyncEngine, stack: AsyncExitStack) -> Vault:
    r = settings.vault.retention
    policy = RetentionPolicy(
        default_days=r.default_days,
        doc_types=dict(r.doc_types),
        mailboxes={k.lower(): v for k, v in r.mailboxes.items()},
    )
    return Vault(
        engine,
        await open_blob_store(settings, stack),
        await open_key_provider(settings, stack),
        settings.vault.chunk_size,
        retention=policy,
    )
