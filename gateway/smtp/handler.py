"""aiosmtpd hooks that translate SMTP to the ingest core, and nothing more.

Each hook asks :class:`gateway.core.ingest.Delivery` and turns its Decision or
error into the exact reply. Content is never logged. Once ``handle_RCPT`` is
defined aiosmtpd stops recording recipients, so accepted ones are appended to
``envelope.rcpt_tos`` here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import structlog

from directory.base import (
    Directory,
    DirectoryUnavailable,
    InvalidAddress,
    may_act_for,
    normalize_address,
)
from gateway.base import events
from gateway.base.errors import PliError
from gateway.base.tls import certificate_names, name_matches
from gateway.core.ingest import Delivery, IngestService
from gateway.core.model import SessionInfo
from policies.model import Decision, Verdict

__all__ = ["SmtpHandler"]

log = structlog.get_logger("pli.smtp")


def _has_bare_cr_or_lf(data: bytes) -> bool:
    """RFC 5321 §2.3.8, §4.1.1.4: CR and LF only as CRLF.

    A bare LF or CR is how SMTP smuggling hides a second message inside the
    first. Counting is C-speed; every LF or CR beyond the CRLF pairs is bare.
    """
    pairs = data.count(b"\r\n")
    return data.count(b"\n") != pairs or data.count(b"\r") != pairs


def _tls_text(session: Any) -> str:
    extra = getattr(session, "ssl", None)
    if not extra:
        return ""
    sslobj = extra.get("ssl_object")
    if sslobj is None:
        return ""
    cipher = sslobj.cipher()
    return f"{sslobj.version()} {cipher[0] if cipher else ''}".strip()


def _remote(session: Any) -> str:
    proxied = getattr(session, "proxy_data", None)
    src = getattr(proxied, "src_addr", None)
    if src is not None:  # behind a trusted load balancer: the client's own address
        return str(src)
    peer = getattr(session, "peer", None)
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "")


class SmtpHandler:
    def __init__(self, ingest: IngestService, *, protocol: str, max_recipients: int,
                 directory: Directory | None = None,
                 trusted_proxies: Sequence[str] = (), check_client_cert: bool = False,
                 require_client_cert: bool = False) -> None:
        self._ingest = ingest
        self._protocol = protocol
        self._max_rcpt = max_recipients
        self._directory = directory
        self._proxies = tuple(ipaddress.ip_network(n, strict=False) for n in trusted_proxies)
        self._check_cert = check_client_cert
        self._require_cert = require_client_cert

    def _client_cert_refusal(self, session: Any, address: str) -> str | None:
        """Mutual TLS: the presented certificate must be for the sender's domain."""
        extra = getattr(session, "ssl", None) or {}
        sslobj = extra.get("ssl_object") if isinstance(extra, dict) else None
        names = certificate_names(sslobj.getpeercert() if sslobj is not None else None)
        if not names:
            if self._require_cert:
                return "530 5.7.0 A client certificate is required on this port"
            return None
        if not address:  # the null sender of DSNs/MDNs: the certificate already vouches
            return None
        try:
            domain = normalize_address(address).rpartition("@")[2]
        except InvalidAddress:
            return None  # the policy names the syntax error
        if not name_matches(domain, names):
            return "550 5.7.1 Sender domain does not match the client certificate"
        return None

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        # aiosmtpd reads commands one after the other, so pipelined clients are served.
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_PROXY(self, server: Any, session: Any, envelope: Any,
                           proxy_data: Any) -> bool:
        """Trust a PROXY header only from a configured load balancer (else close)."""
        peer = getattr(session, "peer", None)
        try:
            ip = ipaddress.ip_address(peer[0]) if isinstance(peer, tuple) else None
        except ValueError:
            ip = None
        if ip is None or not any(ip in net for net in self._proxies):
            log.warning(events.SMTP_REJECT, stage="proxy", reason="untrusted-proxy",
                        remote=str(peer[0]) if isinstance(peer, tuple) else "")
            return False
        src = getattr(proxy_data, "src_addr", None)
        log.info("smtp.proxied", proxy=str(ip), remote=str(src) if src else "")
        return True

    async def _may_send_as(self, user: str, address: str) -> bool:
        """The user's own address, or a shared mailbox the directory delegates to them."""
        try:
            sender = normalize_address(address)
        except InvalidAddress:
            return False
        if not user:
            return False
        if self._directory is None:
            return sender == user
        return await may_act_for(self._directory, user, sender)

    def _info(self, server: Any, session: Any) -> SessionInfo:
        return SessionInfo(
            session_id=getattr(server, "pli_session_id", ""),
            protocol=self._protocol,
            remote=_remote(session),
            helo=str(session.host_name or ""),
            tls=_tls_text(session),
            authenticated_as=(
                str(session.auth_data or "") if getattr(session, "authenticated", False) else ""
            ),
        )

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        info = self._info(server, session)
        if self._protocol == "submission":
            # RFC 6409 §6.1: the submission server checks the sender is the user's own
            # (or, MSSanté, a shared ORG/APP/CAB mailbox the user is delegated to).
            try:
                allowed = await self._may_send_as(info.authenticated_as, address)
            except DirectoryUnavailable:
                log.info(events.SMTP_TEMPFAIL, stage="mail", reason="directory-unavailable")
                return "451 4.4.3 Directory unavailable, try again later"
            if not allowed:
                log.info(events.SMTP_REJECT, stage="mail", reason="sender-not-owned", code=553)
                return "553 5.7.1 Sender address not owned by the authenticated user"
        if self._check_cert:
            refusal = self._client_cert_refusal(session, address)
            if refusal is not None:
                code, enhanced, text = refusal.split(" ", 2)
                await self._ingest.audit_decision(info, "smtp.mail", address, "", Decision(
                    Verdict.REJECT, "client-certificate", int(code), enhanced, text,
                    "smtp.client_ca_file"))
                log.info(events.SMTP_REJECT, stage="mail", reason="client-certificate",
                         code=int(code))
                return refusal
        delivery = self._ingest.begin(info)
        decision = await delivery.add_sender(address)
        if not decision.accepted:
            log.info(events.SMTP_REJECT, stage="mail", reason=decision.reason,
                     code=decision.smtp_code)
            return decision.reply()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.pli_delivery = delivery
        return decision.reply()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        delivery: Delivery = envelope.pli_delivery
        if len(envelope.rcpt_tos) >= self._max_rcpt:
            # RFC 5321 §4.5.3.1.10: too many recipients is a temporary 452.
            return "452 4.5.3 Too many recipients"
        decision = await delivery.add_recipient(address)
        if decision.accepted:
            envelope.rcpt_tos.append(address)
        else:
            log.info(events.SMTP_REJECT, stage="rcpt", reason=decision.reason,
                     code=decision.smtp_code)
        return decision.reply()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        delivery: Delivery = envelope.pli_delivery
        content: bytes = envelope.original_content or b""
        if _has_bare_cr_or_lf(content):
            log.info(events.SMTP_REJECT, stage="data", reason="bare-cr-lf", msg_ref=delivery.ref)
            return "554 5.6.0 Message contains a bare CR or LF (RFC 5321 2.3.8)"
        decision = await delivery.check_content(content)
        if not decision.accepted:
            await delivery.abort()
            log.info(events.SMTP_REJECT, stage="data", reason=decision.reason,
                     code=decision.smtp_code, msg_ref=delivery.ref)
            return decision.reply()
        try:
            await delivery.put_body(content)
            ref = await delivery.commit()
        except PliError as exc:
            await delivery.abort()
            log.warning(events.SMTP_TEMPFAIL, stage="data", reason=exc.reason,
                        msg_ref=delivery.ref)
            return exc.smtp_reply(delivery.ref)
        return f"250 2.0.0 OK id={ref}"

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd's default answers "500 Error: (Class) text": a leak and a permanent code.
        log.error("smtp.exception", error=type(error).__name__, exc_info=error)
        return "451 4.3.0 Internal error, try again later"
