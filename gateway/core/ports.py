"""The seams between the message core and what sits around it, as ``typing.Protocol``s.

Two directions meet here, so that neither side imports the other:

- what front ends ask of the mailboxes (:class:`ImapBackend`, its values and
  errors): the IMAP server only translates protocol to these calls, the
  mailstore (SQL rows + vault bodies + audit) implements them, and every call
  names the authenticated principal so that a backend can never be asked for a
  mailbox on someone else's behalf. Protocol tests run against an in-memory
  backend while the end-to-end tests cover the real one;
- what the core's commit writes into other packages' tables inside its one
  transaction (:class:`MailboxWriter`, :class:`OutboundQueue`) and whom it wakes
  afterwards (:class:`Notifier`). The composition root passes the mailstore and
  the outbound queue in; the core never names them.

Nothing here does I/O.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.core.model import Channel

__all__ = [
    "ALL_RIGHTS",
    "DELEGATED_RIGHTS",
    "INBOX",
    "SENT",
    "SHARED_PREFIX",
    "CopyResult",
    "ImapBackend",
    "MailboxDrop",
    "MailboxEntry",
    "MailboxView",
    "MailboxWriter",
    "MessageInfo",
    "Notifier",
    "OutboundQueue",
    "Principal",
    "StoreMode",
    "StoreResult",
]

INBOX = "INBOX"
SENT = "Sent"  # RFC 6154 \\Sent: where a submission keeps the sender's copy
SHARED_PREFIX = "Shared/"  # RFC 2342 other users' / shared namespace (ACL, RFC 4314)
ALL_RIGHTS = "lrswipkxtea"  # RFC 4314 §2.1, what an owner holds on their own mailboxes
DELEGATED_RIGHTS = "lrswipkxte"  # a delegated user without an ACL entry: all but admin


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated IMAP user."""

    address: str


@dataclass(frozen=True, slots=True)
class MessageInfo:
    uid: int
    flags: frozenset[str]
    size: int
    internal_date: dt.datetime
    modseq: int = 1  # RFC 7162 per-message modification sequence


@dataclass(frozen=True, slots=True)
class MailboxView:
    """A snapshot of a mailbox, sorted by UID."""

    name: str
    uid_validity: int
    uid_next: int
    messages: Sequence[MessageInfo]
    highest_modseq: int = 1
    owner: str = ""  # whose change notifications concern this mailbox
    writable: bool = True  # False: a shared mailbox without write rights (RFC 4314)
    rights: str = ALL_RIGHTS  # RFC 4314 §2.1 MYRIGHTS for this user


@dataclass(frozen=True, slots=True)
class MailboxEntry:
    """One LIST line: the name and what the client should know about it."""

    name: str
    special_use: str = ""  # RFC 6154: \Sent, \Drafts, \Trash, \Junk, \Archive
    subscribed: bool = True
    selectable: bool = True


class StoreMode(enum.Enum):
    ADD = "+"
    REMOVE = "-"
    REPLACE = ""


@dataclass(frozen=True, slots=True)
class StoreResult:
    changed: Sequence[MessageInfo]  # the messages as they are now (new flags and MODSEQ)
    refused: Sequence[int] = field(default_factory=tuple)  # UNCHANGEDSINCE failures (UIDs)


@dataclass(frozen=True, slots=True)
class CopyResult:
    uid_validity: int  # of the destination (RFC 4315 COPYUID)
    pairs: Sequence[tuple[int, int]]  # (source UID, destination UID), in source UID order


class Notifier(Protocol):
    """Wakes sessions when a mailbox owner's mail changes (IDLE, RFC 2177)."""

    def subscribe(self, owner: str) -> asyncio.Event: ...

    def unsubscribe(self, owner: str, event: asyncio.Event) -> None: ...

    def notify(self, owners: Iterable[str]) -> None:
        """Called only after the transaction that changed their mail has committed."""
        ...


@dataclass(frozen=True, slots=True)
class MailboxDrop:
    """One mailbox row a committed message gets (a recipient's INBOX, the sender's Sent)."""

    owner: str
    mailbox: str
    flags: str
    msg_ref: str
    blob: str
    size: int
    received_at: dt.datetime


class MailboxWriter(Protocol):
    """Puts committed messages into mailboxes, inside the commit's own transaction."""

    async def deliver(self, conn: AsyncConnection, drops: Sequence[MailboxDrop]) -> None:
        """Create missing mailboxes, allocate UIDs and a MODSEQ, insert the rows."""
        ...


class OutboundQueue(Protocol):
    """The queue towards other operators, as the core and the retention purge see it."""

    async def enqueue(
        self,
        conn: AsyncConnection,
        *,
        msg_ref: str,
        blob: str,
        sender: str,
        recipients: Sequence[str],
        now: dt.datetime,
    ) -> None:
        """Queue remote recipients in the caller's (commit) transaction."""
        ...

    def wake(self) -> None:
        """Something was queued and committed: deliver now rather than at the next poll."""
        ...

    async def needs(self, conn: AsyncConnection, blob: str) -> bool:
        """Whether a row still waiting for delivery sends this vault object."""
        ...

    async def objects_of(self, conn: AsyncConnection, msg_ref: str) -> set[str]:
        """The vault objects the queue holds for one message."""
        ...

    async def forget(self, conn: AsyncConnection, blob: str) -> None:
        """Drop every row that sends this object (its retention is over)."""
        ...


class ImapBackend(Protocol):
    async def authenticate(self, username: str, password: str, remote: str) -> Principal | None:
        """Check a password; None when wrong. Throttling and audit happen inside."""
        ...

    async def list_mailboxes(self, principal: Principal) -> list[MailboxEntry]:
        """The mailboxes the user may see (``INBOX`` first, then shared ones)."""
        ...

    async def select(self, principal: Principal, mailbox: str) -> MailboxView:
        """Open (or re-read) a mailbox; raises MailboxNotFound."""
        ...

    async def fetch_body(
        self,
        principal: Principal,
        mailbox: str,
        uid: int,
        remote: str,
        purpose: str = "fetch",
        channel: Channel = Channel.IMAP,
    ) -> bytes:
        """The full RFC 5322 message (decrypted); an audited read (``channel`` is the way it
        is read: IMAP, or the API). Raises MessageNotFound."""
        ...

    async def fetch_structure(
        self, principal: Principal, mailbox: str, uid: int, remote: str
    ) -> tuple[bytes, bytes]:
        """(ENVELOPE, BODYSTRUCTURE), computed once per message and kept; an audited read."""
        ...

    async def store_flags(
        self,
        principal: Principal,
        mailbox: str,
        uids: Sequence[int],
        mode: StoreMode,
        flags: frozenset[str],
        unchanged_since: int | None = None,
    ) -> StoreResult:
        """Change flags; each changed message gets a new MODSEQ (RFC 7162 §3.2)."""
        ...

    async def expunge(
        self, principal: Principal, mailbox: str, uids: Sequence[int] | None, remote: str
    ) -> list[int]:
        """Remove the ``\\Deleted`` messages (only among ``uids`` if given); audited."""
        ...

    async def copy(
        self,
        principal: Principal,
        mailbox: str,
        uids: Sequence[int],
        dest: str,
        remote: str,
        *,
        move: bool = False,
    ) -> CopyResult:
        """Copy (or move, atomically) messages to ``dest``; raises MailboxNotFound."""
        ...

    async def append(
        self,
        principal: Principal,
        mailbox: str,
        data: bytes,
        flags: frozenset[str],
        internal_date: dt.datetime | None,
        remote: str,
    ) -> tuple[int, int]:
        """Store a new message through the message core; (UIDVALIDITY, UID)."""
        ...

    async def create(self, principal: Principal, mailbox: str) -> None: ...

    async def delete(self, principal: Principal, mailbox: str) -> None: ...

    async def rename(self, principal: Principal, old: str, new: str) -> None: ...

    async def subscribe(self, principal: Principal, mailbox: str, subscribed: bool) -> None: ...

    async def get_acl(
        self, principal: Principal, mailbox: str
    ) -> tuple[str, list[tuple[str, str]]]:
        """(the user's own rights, every (identifier, rights) entry) — RFC 4314 §3.3, §3.5."""
        ...

    async def set_acl(
        self, principal: Principal, mailbox: str, identifier: str, rights: str | None
    ) -> None:
        """Set (None: delete) an identifier's rights; needs the ``a`` right (RFC 4314 §3.1)."""
        ...
