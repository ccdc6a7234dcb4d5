"""The listeners and background workers of ``pli serve``, started on the caller's stack.

SMTP (MTA, submission, implicit-TLS submission), IMAP (STARTTLS and implicit
TLS), the HTTP API, the outbound queue worker, the audit checkpointer and
sealer. Each gets what it uses at construction; the ports actually bound are
logged and written to ``DATA_DIR/run/ports.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import secrets
import ssl
from contextlib import AsyncExitStack
from pathlib import Path

import structlog

from gateway.app.services import Services
from gateway.base import events
from gateway.base.errors import ConfigError
from gateway.base.tls import server_context
from gateway.core.model import Channel
from gateway.http.api import create_app, start_http
from gateway.imap.server import ImapLimits, start_imap
from gateway.outbound.worker import OutboundWorker
from gateway.smtp.auth import SubmissionSMTP
from gateway.smtp.handler import SmtpHandler
from gateway.smtp.server import start_smtp
from vault.base import VaultError
from vault.checkpoints import Signer, make_checkpoint, run_checkpointer
from vault.segments import run_sealer

__all__ = ["start_listeners"]

log = structlog.get_logger("pli.app")

_PROXY_TIMEOUT = 5.0  # seconds for a load balancer's PROXY header


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
            raise ConfigError(
                "invalid configuration key 'smtp.client_ca_file': cannot load "
                f"{s.smtp.client_ca_file}: {exc}"
            ) from None
    servers: dict[str, asyncio.Server] = {}
    proxies = s.smtp.proxy_protocol_from
    # Behind a load balancer, the PROXY header comes first (aiosmtpd waits this long).
    proxy_timeout = _PROXY_TIMEOUT if proxies else None
    mta = SmtpHandler(
        services.ingest,
        channel=Channel.MTA,
        max_recipients=s.smtp.max_recipients,
        trusted_proxies=proxies,
        check_client_cert=bool(s.smtp.client_ca_file),
        require_client_cert=s.smtp.require_client_cert,
    )
    servers["smtp"] = await start_smtp(
        mta,
        host=s.smtp.host,
        port=s.smtp.mta_port,
        hostname=s.hostname,
        tls_context=mta_tls,
        require_tls=s.smtp.require_tls,
        data_size_limit=s.smtp.max_message_size,
        proxy_protocol_timeout=proxy_timeout,
        bulk_data=s.tuning.smtp_bulk_data,
    )

    async def submission_login(user: str, password: str, remote: str) -> str | None:
        principal = await services.mailstore.login(user, password, remote, Channel.SUBMISSION)
        return principal.address if principal else None

    submission = SmtpHandler(
        services.ingest,
        channel=Channel.SUBMISSION,
        max_recipients=s.smtp.max_recipients,
        trusted_proxies=proxies,
    )
    # The two submission listeners differ only in their port and how TLS starts.
    start_submission = functools.partial(
        start_smtp,
        submission,
        host=s.smtp.host,
        hostname=s.hostname,
        tls_context=tls,
        require_tls=True,
        data_size_limit=s.smtp.max_message_size,
        protocol_class=SubmissionSMTP,
        auth_required=True,
        login_check=submission_login,
        bulk_data=s.tuning.smtp_bulk_data,
    )
    servers["submission"] = await start_submission(
        port=s.smtp.submission_port, proxy_protocol_timeout=proxy_timeout
    )
    # No PROXY on implicit TLS: its header would precede the TLS handshake.
    servers["submission_tls"] = await start_submission(
        port=s.smtp.submission_tls_port, implicit_tls=True
    )
    # IMAP: committed mail wakes IDLE sessions through the notifier the commit path shares.
    imap_limits = ImapLimits(
        max_connections=s.imap.max_connections,
        idle_timeout=s.imap.idle_timeout,
        append=s.smtp.max_message_size,
    )
    for name, port, implicit in (("imap", s.imap.port, False), ("imaps", s.imap.tls_port, True)):
        servers[name] = await start_imap(
            services.mailstore,
            host=s.imap.host,
            port=port,
            tls_context=tls,
            limits=imap_limits,
            notifier=services.notifier,
            implicit_tls=implicit,
        )

    # The HTTP API (FastAPI on uvicorn), served as a task of this loop.
    http_tls = tls if s.http.tls else None
    if s.http.client_ca_file:
        try:
            http_tls = server_context(cert, key, Path(s.http.client_ca_file))
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise ConfigError(
                "invalid configuration key 'http.client_ca_file': cannot load "
                f"{s.http.client_ca_file}: {exc}"
            ) from None
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
        worker = OutboundWorker(
            services.engine,
            services.vault,
            services.ingest,
            services.queue,
            s.queue,
            s.hostname,
            f"{s.hostname}:{os.getpid()}:{secrets.token_hex(3)}",
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"invalid configuration key 'queue': cannot load the TLS files: {exc}"
        ) from None
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
        log.warning(events.AUDIT_CHECKPOINTS_DISABLED, reason="no signing key; run pli init")
        return
    try:
        signer = Signer(path)
    except VaultError as exc:
        raise ConfigError(f"invalid configuration key 'audit.signing_key_file': {exc}") from None
    task = asyncio.create_task(
        run_checkpointer(
            services.engine,
            signer,
            interval=s.audit.checkpoint_interval,
            every=s.audit.checkpoint_every,
        ),
        name="pli-audit-checkpoints",
    )
    sealer = asyncio.create_task(
        run_sealer(
            services.engine,
            services.vault,
            signer,
            interval=s.audit.seal_interval,
            max_entries=s.audit.segment_max,
        ),
        name="pli-audit-sealer",
    )

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
