"""The services of one pli process, built once from the configuration.

Everything is constructed with what it uses (no attribute set afterwards):
the mailstore and the outbound queue are built before the ingest core that
writes into them, and handed to it as its ports. Every resource is
registered on the caller's AsyncExitStack, so shutdown releases them in
reverse order.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from directory.base import Directory
from directory.cache import CachedDirectory
from directory.sql import SqlDirectory
from gateway.app.backends import open_directory, open_vault
from gateway.base.config import Settings
from gateway.base.db import create_engine
from gateway.base.errors import ConfigError
from gateway.core.ingest import IngestService
from gateway.core.patients import create_patient_key, load_patient_key
from gateway.core.secure import SecureMail
from gateway.imap.bodystructure import structure
from gateway.mailstore.accounts import Accounts
from gateway.mailstore.notify import MailboxNotifier
from gateway.mailstore.store import MailStore
from gateway.migrations import migrate
from gateway.outbound.store import OutboundQueue
from policies.engine import PolicyEngine
from policies.rules import RuleError
from vault.service import Vault

__all__ = ["Services", "build_services"]


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    directory: Directory
    vault: Vault
    accounts: Accounts
    policy: PolicyEngine
    ingest: IngestService
    mailstore: MailStore
    queue: OutboundQueue
    notifier: MailboxNotifier


async def build_services(settings: Settings, stack: AsyncExitStack) -> Services:
    """Open the database (migrated), the vault and the directory."""
    engine = create_engine(settings.database_url(), one_trip=settings.tuning.sqlite_one_trip)
    stack.push_async_callback(engine.dispose)
    await migrate(engine)
    vault = await open_vault(settings, engine, stack)
    backend = open_directory(settings, engine, stack)
    d = settings.directory
    directory: Directory = backend
    if d.cache_size > 0:
        # Every instance watches the SQL change counter that imports and delegations bump.
        directory = CachedDirectory(
            backend,
            ttl=d.cache_ttl,
            negative_ttl=d.negative_ttl,
            max_entries=d.cache_size,
            generation=SqlDirectory(engine).generation,
        )
    accounts = Accounts(engine)
    # One notifier wakes IMAP IDLE and API long-polls for the commit path and the mailstore.
    notifier = MailboxNotifier()
    mailstore = MailStore(
        engine, vault, accounts, structure=structure, notifier=notifier, directory=directory
    )
    queue = OutboundQueue(settings.queue.max_age)
    try:
        policy = PolicyEngine(directory, settings.domains, rules_file=settings.policy_path())
    except RuleError as exc:
        raise ConfigError(f"invalid configuration key 'policy.file': {exc}") from None
    patient_key = settings.patient_key_path()
    if not patient_key.exists():  # a data directory from before the key existed
        create_patient_key(patient_key)
    # S/MIME trust, the served ORG/APP keys and the notary: read once, off the loop.
    secure = await asyncio.to_thread(SecureMail.from_settings, settings, directory)
    ingest = IngestService(
        engine,
        vault,
        policy,
        settings.hostname,
        mailboxes=mailstore,
        queue=queue,
        notifier=notifier,
        patient_key=load_patient_key(patient_key),
        secure=secure,
    )
    return Services(
        settings, engine, directory, vault, accounts, policy, ingest, mailstore, queue, notifier
    )
