"""What the IMAP front end needs from the message core, and nothing more.

The IMAP server only translates protocol to these calls; the mailstore (SQL
rows + vault bodies + audit) implements them, and every call names the
authenticated principal so that a backend can never be asked for a mailbox on
someone else's behalf. Keeping the seam this small lets the protocol tests run
against an in-memory backend while the end-to-end tests cover the real one.
Nothing here does I/O.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "ALL_RIGHTS",
    "DELEGATED_RIGHTS",
    "SHARED_PREFIX",
    "CopyResult",
    "ImapBackend",
    "MailboxEntry",
    "MailboxExists",
    "MailboxNotFound",
    "MailboxRefused",
    "MailboxView",
    "MessageInfo",
    "MessageNotFound",
    "Notifier",
    "Principal",
    "StoreMode",
    "StoreResult",
]

SHARED_PREFIX = "Shared/"  # RFC 2342 other users' / shared namespace (ACL, RFC 4314)
ALL_RIGHTS = "lrswipkxtea"  # RFC 4314 §2.1, what an owner holds on their own mailboxes
DELEGATED_RIGHTS = "lrswipkxte"  # a delegated user without an ACL entry: all but admin


class MailboxNotFound(Exception):
    """The user has no such mailbox (or may not see it: the same answer)."""


class MessageNotFound(Exception):
    """The UID is not (or no longer) in the mailbox."""


class MailboxExists(Exception):
    """CREATE/RENAME onto a name that is taken (RFC 5530 ALREADYEXISTS)."""


class MailboxRefused(Exception):
    """A refusal the client can act on: ``code`` is an RFC 5530 response code."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


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

    async def fetch_body(self, principal: Principal, mailbox: str, uid: int, remote: str,
                         purpose: str = "fetch") -> bytes:
        """The full RFC 5322 message (decrypted); an audited read. Raises MessageNotFound."""
        ...

    async def fetch_structure(self, principal: Principal, mailbox: str, uid: int,
                              remote: str) -> tuple[bytes, bytes]:
        """(ENVELOPE, BODYSTRUCTURE), computed once per message and kept; an audited read."""
        ...

    async def store_flags(self, principal: Principal, mailbox: str, uids: Sequence[int],
                          mode: StoreMode, flags: frozenset[str],
                          unchanged_since: int | None = None) -> StoreResult:
        """Change flags; each changed message gets a new MODSEQ (RFC 7162 §3.2)."""
        ...

    async def expunge(self, principal: Principal, mailbox: str, uids: Sequence[int] | None,
                      remote: str) -> list[int]:
        """Remove the ``\\Deleted`` messages (only among ``uids`` if given); audited."""
        ...

    async def copy(self, principal: Principal, mailbox: str, uids: Sequence[int], dest: str,
                   remote: str, *, move: bool = False) -> CopyResult:
        """Copy (or move, atomically) messages to ``dest``; raises MailboxNotFound."""
        ...

    async def append(self, principal: Principal, mailbox: str, data: bytes,
                     flags: frozenset[str], internal_date: dt.datetime | None,
                     remote: str) -> tuple[int, int]:
        """Store a new message through the message core; (UIDVALIDITY, UID)."""
        ...

    async def create(self, principal: Principal, mailbox: str) -> None: ...

    async def delete(self, principal: Principal, mailbox: str) -> None: ...

    async def rename(self, principal: Principal, old: str, new: str) -> None: ...

    async def subscribe(self, principal: Principal, mailbox: str, subscribed: bool) -> None: ...

    async def get_acl(self, principal: Principal, mailbox: str
                      ) -> tuple[str, list[tuple[str, str]]]:
        """(the user's own rights, every (identifier, rights) entry) — RFC 4314 §3.3, §3.5."""
        ...

    async def set_acl(self, principal: Principal, mailbox: str, identifier: str,
                      rights: str | None) -> None:
        """Set (None: delete) an identifier's rights; needs the ``a`` right (RFC 4314 §3.1)."""
        ...
