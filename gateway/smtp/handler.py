"""aiosmtpd hooks that translate SMTP to the ingest core, and nothing more.

Each hook describes the session as an :class:`~gateway.core.model.Origin`
(channel, TLS, authenticated user, client certificate names), asks
:class:`gateway.core.ingest.Delivery`, and renders its Decision or error with
:mod:`gateway.smtp.replies`. Who may use a sender address is decided by
``policies`` through the core, never here. Content is never logged. Once
``handle_RCPT`` is defined aiosmtpd stops recording recipients, so accepted
ones are appended to ``envelope.rcpt_tos`` here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.base import events
from gateway.base.errors import PliError, is_temporary
from gateway.base.tls import certificate_names
from gateway.core.ingest import Delivery, IngestService
from gateway.core.model import Channel, Origin
from gateway.smtp import replies

__all__ = ["SmtpHandler"]

log = structlog.get_logger("pli.smtp")


def _has_bare_cr_or_lf(data: bytes) -> bool:
    """RFC 5321 §2.3.8, §4.1.1.4: CR and LF only as CRLF.

    A bare LF or CR is how SMTP smuggling hides a second message inside the
    first. Counting is C-speed; every LF or CR beyond the CRLF pairs is bare.
    """
    pairs = data.count(b"\r\n")
    return data.count(b"\n") != pairs or data.count(b"\r") != pairs


def _tls_text(session: Session) -> str:
    extra = session.ssl
    if not extra:
        return ""
    sslobj = extra.get("ssl_object")
    if sslobj is None:
        return ""
    cipher = sslobj.cipher()
    return f"{sslobj.version()} {cipher[0] if cipher else ''}".strip()


def _remote(session: Session) -> str:
    src = getattr(session.proxy_data, "src_addr", None)
    if src is not None:  # behind a trusted load balancer: the client's own address
        return str(src)
    peer = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "")


class SmtpHandler:
    """The hooks of one listener role: ``Channel.MTA`` (other operators) or
    ``Channel.SUBMISSION`` (authenticated users)."""

    def __init__(
        self,
        ingest: IngestService,
        *,
        channel: Channel,
        max_recipients: int,
        trusted_proxies: Sequence[str] = (),
        check_client_cert: bool = False,
        require_client_cert: bool = False,
    ) -> None:
        if channel not in (Channel.MTA, Channel.SUBMISSION):
            raise ValueError(f"not an SMTP channel: {channel}")
        self._ingest = ingest
        self._channel = channel
        self._max_rcpt = max_recipients
        self._proxies = tuple(ipaddress.ip_network(n, strict=False) for n in trusted_proxies)
        self._check_cert = check_client_cert
        self._require_cert = require_client_cert

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        # aiosmtpd reads commands one after the other, so pipelined clients are served.
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_PROXY(
        self, server: SMTP, session: Session, envelope: Envelope, proxy_data: Any
    ) -> bool:
        """Trust a PROXY header only from a configured load balancer (else close)."""
        peer = session.peer
        try:
            ip = ipaddress.ip_address(peer[0]) if isinstance(peer, tuple) else None
        except ValueError:
            ip = None
        if ip is None or not any(ip in net for net in self._proxies):
            log.warning(
                events.SMTP_REJECT,
                stage="proxy",
                reason="untrusted-proxy",
                remote=str(peer[0]) if isinstance(peer, tuple) else "",
            )
            return False
        src = getattr(proxy_data, "src_addr", None)
        log.info(events.SMTP_PROXIED, proxy=str(ip), remote=str(src) if src else "")
        return True

    def _peer_names(self, session: Session) -> tuple[str, ...] | None:
        """The client certificate's DNS names on a mutual-TLS listener (else None)."""
        if not self._check_cert:
            return None
        extra = session.ssl or {}
        sslobj = extra.get("ssl_object") if isinstance(extra, dict) else None
        return tuple(certificate_names(sslobj.getpeercert() if sslobj is not None else None))

    def _origin(self, server: SMTP, session: Session) -> Origin:
        session_id = str(getattr(server, "pli_session_id", ""))
        helo, tls = str(session.host_name or ""), _tls_text(session)
        if self._channel is Channel.SUBMISSION:
            user = str(session.auth_data or "") if session.authenticated else ""
            return Origin.submission(session_id, _remote(session), user, helo=helo, tls=tls)
        return Origin.mta(
            session_id,
            _remote(session),
            helo=helo,
            tls=tls,
            peer_names=self._peer_names(session),
            client_cert_required=self._require_cert,
        )

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        delivery = self._ingest.begin(self._origin(server, session))
        decision = await delivery.add_sender(address)
        if not decision.accepted:
            log.info(
                events.SMTP_REJECT, stage="mail", reason=decision.reason, code=decision.smtp_code
            )
            return replies.for_decision(decision)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.pli_delivery = delivery  # type: ignore[attr-defined]  # aiosmtpd's bag
        return replies.for_decision(decision)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        delivery: Delivery = envelope.pli_delivery  # type: ignore[attr-defined]
        if len(envelope.rcpt_tos) >= self._max_rcpt:
            return replies.TOO_MANY_RECIPIENTS  # RFC 5321 §4.5.3.1.10: a temporary 452
        decision = await delivery.add_recipient(address)
        if decision.accepted:
            envelope.rcpt_tos.append(address)
        else:
            log.info(
                events.SMTP_REJECT, stage="rcpt", reason=decision.reason, code=decision.smtp_code
            )
        return replies.for_decision(decision)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        delivery: Delivery = envelope.pli_delivery  # type: ignore[attr-defined]
        content = envelope.original_content or b""
        if not isinstance(content, bytes):
            content = content.encode("utf-8", "surrogateescape")
        if _has_bare_cr_or_lf(content):
            log.info(events.SMTP_REJECT, stage="data", reason="bare-cr-lf", msg_ref=delivery.ref)
            return replies.BARE_CR_LF
        decision = await delivery.check_content(content)
        if not decision.accepted:
            await delivery.abort()
            log.info(
                events.SMTP_REJECT,
                stage="data",
                reason=decision.reason,
                code=decision.smtp_code,
                msg_ref=delivery.ref,
            )
            return replies.for_decision(decision)
        try:
            await delivery.put_body(content)
            ref = await delivery.commit()
        except PliError as exc:
            await delivery.abort()
            event = events.SMTP_TEMPFAIL if is_temporary(exc) else events.SMTP_REJECT
            log.warning(event, stage="data", reason=exc.reason, msg_ref=delivery.ref)
            return replies.for_error(exc, delivery.ref)
        return replies.accepted(ref)

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd's default answers "500 Error: (Class) text": a leak and a permanent code.
        log.error(events.SMTP_EXCEPTION, error=type(error).__name__, exc_info=error)
        return replies.INTERNAL_ERROR
