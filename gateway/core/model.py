"""Values that travel through the message core, frozen so no stage mutates another's.

An :class:`Origin` says where a message comes from and, explicitly, what that
channel may do: the core reads ``may_relay`` or ``keeps_sent_copy``, never a
protocol name, so a new front end states its rights in one constructor
instead of borrowing another's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Channel", "Origin"]


class Channel(StrEnum):
    """The way in; its value is what the audit trail records as ``protocol``."""

    MTA = "smtp"  # another operator's server (port 25 role), no user authenticated
    SUBMISSION = "submission"  # a user's mail client, authenticated (RFC 6409)
    API = "http"  # a DPI over the HTTP API, authenticated by token, OIDC or certificate
    IMAP = "imap"  # a user's IMAP session: reads, APPEND of a message they hold, COPY…
    DSN = "dsn"  # pli's own delivery status notification (RFC 3464)
    MDN = "mdn"  # pli's own disposition notification for an APP mailbox (RFC 8098)


@dataclass(frozen=True, slots=True)
class Origin:
    """Who is talking to pli, as the front end saw it, and what they may do.

    ``may_relay``: may write to other operators' domains (an authenticated
    user, or pli's own reports). ``keeps_sent_copy``: the sender's copy goes
    to its ``Sent`` mailbox. ``sender_must_be_owned``: the sender must be the
    authenticated user's own or delegated mailbox. ``internal``: a report pli
    wrote itself, carried as written (no S/MIME, no certificate check at RCPT,
    no MDN answered). ``peer_names``: on a mutual-TLS listener, the DNS names
    of the client certificate presented (empty: none), which must name the
    sender's domain; None where no client certificate is asked for.
    """

    channel: Channel
    session_id: str
    remote: str
    helo: str = ""
    tls: str = ""  # e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384", empty when in clear
    authenticated_as: str = ""
    may_relay: bool = False
    keeps_sent_copy: bool = False
    sender_must_be_owned: bool = False
    internal: bool = False
    peer_names: tuple[str, ...] | None = None
    client_cert_required: bool = False

    @property
    def protocol(self) -> str:
        """The channel's name as the audit trail and logs record it."""
        return self.channel.value

    @classmethod
    def mta(
        cls,
        session_id: str,
        remote: str,
        *,
        helo: str = "",
        tls: str = "",
        peer_names: tuple[str, ...] | None = None,
        client_cert_required: bool = False,
    ) -> Origin:
        """Another operator: may deliver to domains served here, nothing else."""
        return cls(
            Channel.MTA,
            session_id,
            remote,
            helo,
            tls,
            peer_names=peer_names,
            client_cert_required=client_cert_required,
        )

    @classmethod
    def submission(
        cls, session_id: str, remote: str, user: str, *, helo: str = "", tls: str = ""
    ) -> Origin:
        """An authenticated user's client: relays, and keeps the sender's copy."""
        return cls(
            Channel.SUBMISSION,
            session_id,
            remote,
            helo,
            tls,
            user,
            may_relay=bool(user),
            keeps_sent_copy=bool(user),
            sender_must_be_owned=True,
        )

    @classmethod
    def api(cls, session_id: str, remote: str, mailbox: str, *, tls: str = "") -> Origin:
        """A DPI calling the API for the mailbox its credentials are bound to."""
        return cls(
            Channel.API,
            session_id,
            remote,
            "pli-http-api",
            tls,
            mailbox,
            may_relay=True,
            keeps_sent_copy=True,
            sender_must_be_owned=True,
        )

    @classmethod
    def report(cls, channel: Channel, hostname: str) -> Origin:
        """pli's own DSN or MDN, written from the null sender."""
        if channel not in (Channel.DSN, Channel.MDN):
            raise ValueError(f"not a report channel: {channel}")
        return cls(channel, "", "", hostname, may_relay=True, internal=True)
