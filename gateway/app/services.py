"""The composition root: configuration → backends → services → listeners.

The only module that names concrete backends. Everything it builds is handed
down explicitly (no module-level state) and registered on an AsyncExitStack,
so shutdown releases listeners, then services, then the database, in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import ssl
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from directory.base import Directory, DirectoryAdmin
from directory.cache import CachedDirectory
from directory.ldap import LdapConfig, LdapDirectory
from directory.sql import SqlDirectory
from gateway.base import events
from gateway.base.config import Settings, read_secret
from gateway.base.db import create_engine, migrate
from gateway.base.errors import ConfigError
from gateway.base.tls import limit_tls_read_buffer, server_context
from gateway.core.ingest import IngestService
from gateway.core.patients import create_patient_key, load_patient_key
from gateway.core.secure import SecureMail
from gateway.http.api import create_app, start_http
from gateway.imap.server import ImapLimits, start_imap
from gateway.mailstore.accounts import Accounts
from gateway.mailstore.store import MailStore
from gateway.outbound.worker import OutboundWorker
from gateway.smtp.auth import SubmissionSMTP
from gateway.smtp.handler import SmtpHandler
from gateway.smtp.server import start_smtp
from policies.engine import PolicyEngine
from policies.rules import RuleError
from vault.base import BlobStore, KeyProvider, VaultError
from vault.checkpoints import Signer, make_checkpoint, run_checkpointer
from vault.fs import FsBlobStore
from vault.keys import KeyFileProvider
from vault.retention import RetentionPolicy
from vault.segments import run_sealer
from vault.service import Vault

__all__ = [
    "DirectoryBackend",
    "Services",
    "build_services",
    "open_blob_store",
    "open_directory",
    "run_server",
    "start_listeners",
]

log = structlog.get_logger("pli.app")

_PROXY_TIMEOUT = 5.0  # seconds for a load balancer's PROXY header


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
            raise ConfigError("invalid configuration key 'directory.ldap.bind_password_file': "
                              f"cannot read it: {exc.strerror}") from None
    return LdapConfig(url=cfg.url, base_dn=cfg.base_dn, bind_dn=cfg.bind_dn,
                      bind_password=password, pool_size=cfg.pool_size, timeout=cfg.timeout,
                      start_tls=cfg.start_tls, ca_file=cfg.ca_file)


def open_directory(settings: Settings, engine: AsyncEngine, stack: AsyncExitStack,
                   backend: str | None = None) -> DirectoryBackend:
    """The configured directory backend (or ``backend``), closed with the stack."""
    if (backend or settings.directory.backend) == "ldap":
        if not settings.directory.ldap.url:
            raise ConfigError("invalid configuration key 'directory.ldap.url': empty, "
                              "and the LDAP directory was asked for")
        ldap_dir = LdapDirectory(ldap_config(settings))
        stack.push_async_callback(ldap_dir.aclose)
        return ldap_dir
    return SqlDirectory(engine)


async def open_blob_store(settings: Settings, stack: AsyncExitStack) -> BlobStore:
    """The configured store of encrypted objects (filesystem, or S3 such as MinIO)."""
    if settings.vault.backend != "s3":
        return FsBlobStore(settings.vault_path())
    from vault.s3 import S3BlobStore

    c = settings.vault.s3
    store = S3BlobStore(c.endpoint, c.access_key, c.secret_key, c.bucket, secure=c.secure,
                        region=c.region or None, prefix=c.prefix, object_lock=c.object_lock,
                        retention_days=c.retention_days, part_size=c.part_size)
    stack.push_async_callback(store.aclose)
    await store.ensure_bucket()
    return store


async def open_key_provider(settings: Settings, stack: AsyncExitStack) -> KeyProvider:
    """The key-encryption key: a key file (or PLI_VAULT_KEK_HEX), or an HSM over PKCS#11."""
    if settings.vault.kek != "pkcs11":
        return KeyFileProvider.from_file(settings.kek_path(),
                                         os.environ.get("PLI_VAULT_KEK_HEX"))
    from vault.pkcs11 import Pkcs11KeyProvider

    c = settings.vault.pkcs11
    pin = await asyncio.to_thread(read_secret, c.pin, c.pin_file, "vault.pkcs11.pin",
                                  "PLI_VAULT__PKCS11__PIN")
    provider = await Pkcs11KeyProvider.open(c.module, c.token_label, pin, c.key_label)
    stack.push_async_callback(provider.aclose)
    return provider


async def open_vault(settings: Settings, engine: AsyncEngine, stack: AsyncExitStack) -> Vault:
    r = settings.vault.retention
    policy = RetentionPolicy(default_days=r.default_days, doc_types=dict(r.doc_types),
                             mailboxes={k.lower(): v for k, v in r.mailboxes.items()})
    return Vault(engine, await open_blob_store(settings, stack),
                 await open_key_provider(settings, stack), settings.vault.chunk_size,
                 retention=policy)


async def build_services(settings: Settings, stack: AsyncExitStack) -> Services:
    """Open the database (migrated), the vault and the directory."""
    engine = create_engine(settings.database_url())
    stack.push_async_callback(engine.dispose)
    await migrate(engine)
    vault = await open_vault(settings, engine, stack)
    backend = open_directory(settings, engine, stack)
    d = settings.directory
    directory: Directory = backend
    if d.cache_size > 0:
        # Every instance watches the SQL change counter that imports and delegations bump.
        directory = CachedDirectory(backend, ttl=d.cache_ttl, negative_ttl=d.negative_ttl,
                                    max_entries=d.cache_size,
                                    generation=SqlDirectory(engine).generation)
    accounts = Accounts(engine)
    try:
        policy = PolicyEngine(directory, settings.domains, rules_file=settings.policy_path())
    except RuleError as exc:
        raise ConfigError(f"invalid configuration key 'policy.file': {exc}") from None
    patient_key = settings.patient_key_path()
    if not patient_key.exists():  # a data directory from before the key existed
        create_patient_key(patient_key)
    # S/MIME trust, the served ORG/APP keys and the notary: read once, off the loop.
    secure = await asyncio.to_thread(SecureMail.from_settings, settings, directory)
    ingest = IngestService(engine, vault, policy, settings.hostname,
                           patient_key=load_patient_key(patient_key), secure=secure)
    ingest.batcher.queue_max_age = settings.queue.max_age
    mailstore = MailStore(engine, vault, accounts)
    return Services(settings, engine, directory, vault, accounts, policy, ingest, mailstore)


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def start_listeners(services: Services, stack: AsyncExitStack) -> dict[str, int]:
    """Start every listener; return the bound ports and write them to run/ports.json."""
    s = services.settings
    if not s.domains:
        raise ConfigError("invalid configuration key 'domains': no served mail domain")
    cert, key = s.tls_files()
    try:
        tls = server_context(cert, key)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"invalid configuration key 'tls': cannot load {cert}: {exc}") from None
    mta_tls = tls
    if s.smtp.client_ca_file:
        try:
            mta_tls = server_context(cert, key, Path(s.smtp.client_ca_file))
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise ConfigError("invalid configuration key 'smtp.client_ca_file': cannot load "
                              f"{s.smtp.client_ca_file}: {exc}") from None
    servers: dict[str, asyncio.Server] = {}
    proxies = s.smtp.proxy_protocol_from
    # Behind a load balancer, the PROXY header comes first (aiosmtpd waits this long).
    proxy_timeout = _PROXY_TIMEOUT if proxies else None
    mta = SmtpHandler(services.ingest, protocol="smtp", max_recipients=s.smtp.max_recipients,
                      trusted_proxies=proxies, check_client_cert=bool(s.smtp.client_ca_file),
                      require_client_cert=s.smtp.require_client_cert)
    servers["smtp"] = await start_smtp(
        mta, host=s.smtp.host, port=s.smtp.mta_port, hostname=s.hostname, tls_context=mta_tls,
        require_tls=s.smtp.require_tls, data_size_limit=s.smtp.max_message_size,
        proxy_protocol_timeout=proxy_timeout,
    )
    async def submission_login(user: str, password: str, remote: str) -> str | None:
        principal = await services.mailstore.login(user, password, remote, "submission")
        return principal.address if principal else None

    submission = SmtpHandler(services.ingest, protocol="submission",
                             max_recipients=s.smtp.max_recipients, directory=services.directory,
                             trusted_proxies=proxies)
    servers["submission"] = await start_smtp(
        submission, host=s.smtp.host, port=s.smtp.submission_port, hostname=s.hostname,
        tls_context=tls, require_tls=True, data_size_limit=s.smtp.max_message_size,
        protocol_class=SubmissionSMTP, auth_required=True, login_check=submission_login,
        proxy_protocol_timeout=proxy_timeout,
    )
    servers["submission_tls"] = await start_smtp(
        submission, host=s.smtp.host, port=s.smtp.submission_tls_port, hostname=s.hostname,
        tls_context=tls, require_tls=True, data_size_limit=s.smtp.max_message_size,
        protocol_class=SubmissionSMTP, auth_required=True, login_check=submission_login,
        implicit_tls=True,  # no PROXY here: its header would precede the TLS handshake
    )
    # IMAP: committed mail wakes IDLE sessions (one notifier for the commit path and the
    # mailstore); delegated users see shared ORG/APP mailboxes through the directory.
    services.ingest.batcher.notifier = services.mailstore.notifier
    services.mailstore.directory = services.directory
    imap_limits = ImapLimits(max_connections=s.imap.max_connections,
                             idle_timeout=s.imap.idle_timeout, append=s.smtp.max_message_size)
    for name, port, implicit in (("imap", s.imap.port, False), ("imaps", s.imap.tls_port, True)):
        servers[name] = await start_imap(
            services.mailstore, host=s.imap.host, port=port, tls_context=tls,
            limits=imap_limits, notifier=services.mailstore.notifier, implicit_tls=implicit,
        )

    # The HTTP API (FastAPI on uvicorn), served as a task of this loop.
    http_tls = tls if s.http.tls else None
    if s.http.client_ca_file:
        try:
            http_tls = server_context(cert, key, Path(s.http.client_ca_file))
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise ConfigError("invalid configuration key 'http.client_ca_file': cannot load "
                              f"{s.http.client_ca_file}: {exc}") from None
    http = await start_http(create_app(services, s), s.http.host, s.http.port, tls=http_tls)
    stack.push_async_callback(http.close)
    _start_outbound(services, stack)
    _start_checkpointer(services, stack)
    for srv in servers.values():
        stack.push_async_callback(_close, srv)
    ports = {name: _port(srv) for name, srv in servers.items()}
    ports["http"] = http.port
    for name, port in ports.items():
        log.info(events.LISTENER_STARTED, listener=name, port=port)
    run_dir = s.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "ports.json.tmp"
    tmp.write_text(json.dumps(ports, indent=2) + "\n")
    tmp.replace(run_dir / "ports.json")
    return ports


def _start_outbound(services: Services, stack: AsyncExitStack) -> None:
    """The outbound queue worker of this instance (others may run on the same database)."""
    s = services.settings
    try:
        worker = OutboundWorker(services.engine, services.vault, services.ingest, s.queue,
                                s.hostname, f"{s.hostname}:{os.getpid()}:{secrets.token_hex(3)}")
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"invalid configuration key 'queue': cannot load the TLS files: "
                          f"{exc}") from None
    services.ingest.on_queued = worker.wake
    task = asyncio.create_task(worker.run(), name="pli-outbound")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(stop)


def _start_checkpointer(services: Services, stack: AsyncExitStack) -> None:
    """Signed checkpoints of the audit chain (a last one at shutdown), and sealed segments."""
    s = services.settings
    path = s.audit_key_path()
    if not path.exists():
        log.warning("audit.checkpoints_disabled", reason="no signing key; run pli init")
        return
    try:
        signer = Signer(path)
    except VaultError as exc:
        raise ConfigError(f"invalid configuration key 'audit.signing_key_file': {exc}") from None
    task = asyncio.create_task(run_checkpointer(
        services.engine, signer, interval=s.audit.checkpoint_interval,
        every=s.audit.checkpoint_every), name="pli-audit-checkpoints")
    sealer = asyncio.create_task(run_sealer(
        services.engine, services.vault, signer, interval=s.audit.seal_interval,
        max_entries=s.audit.segment_max), name="pli-audit-sealer")

    async def stop() -> None:
        for t in (task, sealer):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        with contextlib.suppress(Exception):  # best effort: the chain itself is intact
            await make_checkpoint(services.engine, signer)

    stack.push_async_callback(stop)


async def _close(server: asyncio.Server) -> None:
    server.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), timeout=5)


def _on_sighup(services: Services, running: set[asyncio.Future[bool]]) -> None:
    services.policy.reload()
    secure = services.ingest.secure
    if secure is not None:  # key files (and maybe a token) are read off the loop
        reload = asyncio.ensure_future(asyncio.to_thread(secure.reload, services.settings))
        running.add(reload)  # held until done: the loop keeps only a weak reference
        reload.add_done_callback(running.discard)


async def run_server(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set)."""
    stop = stop or asyncio.Event()
    limit_tls_read_buffer()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Future[bool]] = set()
    async with AsyncExitStack() as stack:
        services = await build_services(settings, stack)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            # The operator edited the rule file or issued a certificate: apply it without
            # dropping a connection.
            loop.add_signal_handler(signal.SIGHUP, _on_sighup, services, reloads)
        await start_listeners(services, stack)
        await stop.wait()
    log.info(events.SERVER_STOPPED)
