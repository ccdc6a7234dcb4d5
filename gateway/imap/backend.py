"""What the IMAP front end needs from the message core, and nothing more.

The IMAP server only translates protocol to these calls; the mailstore (SQL
rows + vault bodies + audit) implements them. Keeping the seam this small lets
the protocol tests run against an in-memory backend while the end-to-end test
covers the real one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "ImapBackend",
    "MailboxNotFound",
    "MailboxView",
    "MessageInfo",
    "MessageNotFound",
    "Principal",
]


class MailboxNotFound(Exception):
    """The user has no such mailbox (or may not see it: the same answer)."""


class MessageNotFound(Exception):
    """The UID is not (or no longer) in the mailbox."""


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


@dataclass(frozen=True, slots=True)
class MailboxView:
    """A snapshot of a mailbox taken at SELECT time, sorted by UID."""

    name: str
    uid_validity: int
    uid_next: int
    messages: Sequence[MessageInfo]


class ImapBackend(Protocol):
    async def authenticate(self, username: str, password: str, remote: str) -> Principal | None:
        """Check a password; None when wrong. Throttling and audit happen inside."""
        ...

    async def list_mailboxes(self, principal: Principal) -> list[str]:
        """Names of the mailboxes the user may see (``INBOX`` first)."""
        ...

    async def select(self, principal: Principal, mailbox: str) -> MailboxView:
        """Open a mailbox; raises MailboxNotFound."""
        ...

    async def fetch_body(
        self, principal: Principal, mailbox: str, uid: int, remote: str
    ) -> bytes:
        """The full RFC 5322 message (decrypted); an audited read. Raises MessageNotFound."""
        ...

    async def add_flags(
        self, principal: Principal, mailbox: str, uids: Sequence[int], flags: frozenset[str]
    ) -> None:
        """Add flags (e.g. ``\\Seen`` after a non-PEEK body fetch)."""
        ...
