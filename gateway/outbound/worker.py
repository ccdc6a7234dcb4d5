"""Delivers the outbound queue to other operators: aiosmtplib over TLS 1.2+, retries, DSNs.

Each round claims due entries (any number of instances can run workers on one
database), groups them by message and domain (one SMTP transaction per
group), and records each recipient's outcome with its audit event in one
transaction: 2xx delivered, 5xx failed, 4xx or a network/TLS failure retried
with exponential backoff until ``queue.max_age``. A failure (or a long delay)
produces an RFC 3464 DSN to the sender through the ingest path, committed
BEFORE the entry is marked, so that a crash in between sends the DSN twice at
worst, never zero times.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib
import dns.asyncresolver
import dns.exception
import dns.resolver
import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.base import events
from gateway.base.config import QueueSettings
from gateway.base.errors import PliError
from gateway.core.ingest import IngestService
from gateway.core.model import Channel, Origin
from gateway.outbound import store
from gateway.outbound.dsn import DsnRecipient, build_dsn
from vault import audit
from vault.base import VaultError
from vault.service import Vault

__all__ = ["Attempt", "OutboundWorker", "client_context"]

log = structlog.get_logger("pli.outbound")


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one recipient got: a code (0 when no server answered) and the reply text."""

    code: int
    reply: str
    remote_mta: str = ""

    @property
    def enhanced(self) -> str:
        first = self.reply.split(" ", 1)[0]
        if first.count(".") == 2 and first[0] in "245":
            return first
        return {2: "2.0.0", 5: "5.0.0"}.get(self.code // 100, "4.4.1")


def client_context(cfg: QueueSettings) -> ssl.SSLContext:
    """TLS 1.2+ towards other operators, verified, with our certificate if configured."""
    ctx = ssl.create_default_context(cafile=cfg.ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = cfg.verify_hostname
    if cfg.client_cert_file:
        ctx.load_cert_chain(cfg.client_cert_file, cfg.client_key_file or None)
    return ctx


def _relay_copy(stored: bytes | bytearray) -> bytes:
    """The stored message minus the Return-Path line pli added at ingest (RFC 5321 §4.4)."""
    start = 0
    if stored[:12].lower() == b"return-path:":
        end = stored.find(b"\r\n")
        start = end + 2 if end >= 0 else 0
    with memoryview(stored) as view:  # one copy, whatever the start
        return bytes(view[start:])


class OutboundWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        vault: Vault,
        ingest: IngestService,
        queue: store.OutboundQueue,
        cfg: QueueSettings,
        hostname: str,
        worker_id: str,
    ) -> None:
        self._engine = engine
        self._vault = vault
        self._ingest = ingest
        self._cfg = cfg
        self._hostname = hostname
        self._id = worker_id
        self._tls = client_context(cfg)
        self._queue = queue
        self._slots = asyncio.Semaphore(cfg.concurrency)

    async def run(self) -> None:
        """Deliver until cancelled; sleeps ``poll_interval`` or until woken."""
        while True:
            self._queue.rearm()  # a wake-up during the round below is not lost
            try:
                handled = await self.run_once()
            except (SQLAlchemyError, OSError) as exc:
                log.warning(events.OUTBOUND_ROUND_FAILED, error=type(exc).__name__)
                handled = 0
            if not handled:
                await self._queue.wait(self._cfg.poll_interval)

    async def run_once(self) -> int:
        """One round: claim what is due, deliver it; return how many entries were handled."""
        now = dt.datetime.now(dt.UTC)
        entries = await store.claim(
            self._engine, self._id, now=now, limit=self._cfg.concurrency * 16, lease=self._cfg.lease
        )
        groups = [
            list(g)
            for _, g in itertools.groupby(
                sorted(entries, key=lambda e: (e.blob, e.domain, e.id)),
                key=lambda e: (e.blob, e.domain),
            )
        ]
        await asyncio.gather(*(self._deliver_group(g) for g in groups))
        return len(entries)

    async def _routes(self, domain: str) -> list[tuple[str, int]]:
        static = self._cfg.routes.get(domain)
        if static:
            host, _, port = static.rpartition(":")
            return [(host.strip("[]"), int(port))]
        try:
            answer = await dns.asyncresolver.resolve(domain, "MX", lifetime=10)
            mx = sorted(answer, key=lambda r: r.preference)
            return [(str(r.exchange).rstrip("."), self._cfg.port) for r in mx]
        except dns.resolver.NoAnswer:
            return [(domain, self._cfg.port)]  # RFC 5321 §5.1: the implicit MX
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise OSError(f"MX lookup for {domain} failed: {type(exc).__name__}") from exc

    async def _send(
        self, host: str, port: int, sender: str, rcpts: Sequence[str], data: bytes
    ) -> dict[str, Attempt]:
        smtp = aiosmtplib.SMTP(
            hostname=host,
            port=port,
            local_hostname=self._hostname,
            timeout=self._cfg.timeout,
            start_tls=False,
            tls_context=self._tls,
        )
        await smtp.connect()
        try:
            await smtp.ehlo()
            if smtp.supports_extension("starttls"):
                await smtp.starttls(tls_context=self._tls)
            elif self._cfg.require_tls:
                return {r: Attempt(0, f"4.7.10 {host} offers no STARTTLS", host) for r in rcpts}
            try:
                refused, reply = await smtp.sendmail(sender, list(rcpts), data)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                return {e.recipient: Attempt(e.code, e.message, host) for e in exc.recipients}
            except aiosmtplib.SMTPResponseException as exc:
                return {r: Attempt(exc.code, exc.message, host) for r in rcpts}
            out = {r: Attempt(250, reply, host) for r in rcpts}
            out.update({r: Attempt(resp.code, resp.message, host) for r, resp in refused.items()})
            return out
        finally:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()

    async def _attempt(self, entries: list[store.QueueEntry], data: bytes) -> dict[str, Attempt]:
        rcpts = [e.recipient for e in entries]
        last = Attempt(0, "4.4.1 no route")
        try:
            routes = await self._routes(entries[0].domain)
        except OSError as exc:
            return {r: Attempt(0, f"4.4.3 {exc}") for r in rcpts}
        for host, port in routes:
            try:
                return await self._send(host, port, entries[0].sender, rcpts, data)
            except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
                # The next MX, then a retry later: never lost, never a bounce for a network blip.
                last = Attempt(0, f"4.4.1 {host}:{port}: {type(exc).__name__}", host)
        return dict.fromkeys(rcpts, last)

    async def _deliver_group(self, entries: list[store.QueueEntry]) -> None:
        async with self._slots:
            try:
                stored = await self._vault.get(entries[0].blob)
            except (VaultError, OSError) as exc:
                outcome = {
                    e.recipient: Attempt(0, f"4.3.0 vault: {type(exc).__name__}") for e in entries
                }
                stored = bytearray()
            else:
                outcome = await self._attempt(entries, _relay_copy(stored))
            await self._settle(entries, outcome, stored)

    async def _settle(
        self,
        entries: list[store.QueueEntry],
        outcome: dict[str, Attempt],
        stored: bytes | bytearray,
    ) -> None:
        now = dt.datetime.now(dt.UTC)
        for entry in entries:
            att = outcome.get(entry.recipient, Attempt(0, "4.4.1 no answer"))
            base = {
                "actor": entry.sender,
                "mailbox": entry.recipient,
                "msg_id": entry.msg_ref,
                "remote": att.remote_mta,
            }
            if 200 <= att.code < 300:
                await store.record(
                    self._engine,
                    [entry.id],
                    state=store.DELIVERED,
                    reply=f"{att.code} {att.reply}",
                    now=now,
                    events=[
                        audit.AuditEvent(
                            action="message.relayed", **base, detail={"code": att.code}
                        )
                    ],
                )
                log.info(
                    events.OUTBOUND_DELIVERED,
                    msg_ref=entry.msg_ref,
                    code=att.code,
                    remote=att.remote_mta,
                )
                continue
            reply = f"{att.code} {att.reply}" if att.code else att.reply
            permanent = att.code >= 500
            expired = not permanent and now >= entry.expires_at
            if permanent or expired:
                diag = reply if permanent else f"4.4.7 delivery time expired; last: {reply}"
                status = att.enhanced if permanent else "4.4.7"
                if not await self._notify(entry, "failed", status, diag, att.remote_mta, stored):
                    await self._defer(entry, reply, now, None)
                    continue
                await store.record(
                    self._engine,
                    [entry.id],
                    state=store.FAILED,
                    reply=diag,
                    now=now,
                    events=[
                        audit.AuditEvent(
                            action="message.bounced",
                            result="fail",
                            **base,
                            reason="expired" if expired else "refused",
                            detail={"code": att.code},
                        )
                    ],
                )
                log.info(
                    events.OUTBOUND_FAILED, msg_ref=entry.msg_ref, code=att.code, expired=expired
                )
                continue
            warn = (
                not entry.delay_notified
                and (now - entry.created_at).total_seconds() >= self._cfg.delay_warning
            )
            notified = warn and await self._notify(
                entry, "delayed", att.enhanced, reply, att.remote_mta, stored
            )
            await self._defer(entry, reply, now, True if notified else None)

    async def _defer(
        self, entry: store.QueueEntry, reply: str, now: dt.datetime, delay_notified: bool | None
    ) -> None:
        wait = min(self._cfg.retry_base * 2**entry.attempts, self._cfg.retry_max)
        await store.record(
            self._engine,
            [entry.id],
            state=store.QUEUED,
            reply=reply,
            now=now,
            next_attempt=now + dt.timedelta(seconds=wait),
            delay_notified=delay_notified,
        )
        log.info(
            events.OUTBOUND_DEFERRED,
            msg_ref=entry.msg_ref,
            attempts=entry.attempts + 1,
            retry_in=wait,
        )

    async def _notify(
        self,
        entry: store.QueueEntry,
        action: str,
        status: str,
        diag: str,
        remote_mta: str,
        stored: bytes | bytearray,
    ) -> bool:
        """Commit a DSN to the sender; False if it could not be (the entry stays queued)."""
        if not entry.sender:
            return True  # a null sender (a DSN itself) never gets a DSN: no loops
        body = build_dsn(
            reporting_mta=self._hostname,
            sender=entry.sender,
            msg_ref=entry.msg_ref,
            arrival=entry.created_at,
            recipients=[DsnRecipient(entry.recipient, action, status, diag, remote_mta)],
            original=stored,
        )
        delivery = self._ingest.begin(Origin.report(Channel.DSN, self._hostname))
        try:
            if not (await delivery.add_sender("")).accepted:
                return False
            if not (await delivery.add_recipient(entry.sender)).accepted:
                log.warning(events.OUTBOUND_DSN_UNDELIVERABLE, msg_ref=entry.msg_ref)
                return True  # the sender left the directory: nobody to tell
            await delivery.put_body(body)
            await delivery.commit()
        except PliError as exc:
            await delivery.abort()
            log.warning(events.OUTBOUND_DSN_DEFERRED, msg_ref=entry.msg_ref, reason=exc.reason)
            return False
        return True
