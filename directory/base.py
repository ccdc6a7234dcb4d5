"""The directory's contract: who holds a mailbox, and which domains are trusted.

Everything else in pli asks the directory through :class:`Directory`; only the
composition root knows which backend (SQL, LDAP, cache) answers. Backends
translate their own failures into :class:`DirectoryUnavailable` so that the
gateway answers "try again later" instead of rejecting or accepting unchecked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

__all__ = [
    "DELEGABLE_KINDS",
    "DelegationRefused",
    "Directory",
    "DirectoryAdmin",
    "DirectoryError",
    "DirectoryStats",
    "DirectoryUnavailable",
    "Entry",
    "InvalidAddress",
    "MailboxKind",
    "may_act_for",
    "normalize_address",
    "split_address",
]


class MailboxKind(StrEnum):
    """MSSanté mailbox (BAL) types."""

    PER = "PER"  # a professional (RPPS / ADELI)
    ORG = "ORG"  # a department, a secretariat
    APP = "APP"  # software: a DPI, a lab system
    CAB = "CAB"  # a practice


class DirectoryError(Exception):
    """Base class of directory errors."""


class DirectoryUnavailable(DirectoryError):
    """The backend cannot answer now (maps to SMTP 451 4.4.3)."""


class InvalidAddress(DirectoryError, ValueError):
    """An address is malformed; the message says which part."""


class NotInDirectory(DirectoryError):
    """An operator change names an address that holds no mailbox."""


class DelegationRefused(DirectoryError):
    """A delegation names a mailbox or user that cannot take part; the message says why."""


# Shared mailboxes that professionals act for; a PER mailbox belongs to one person.
DELEGABLE_KINDS = frozenset({"ORG", "APP", "CAB"})


@dataclass(frozen=True, slots=True)
class Entry:
    """One mailbox of the directory, as the rest of pli sees it."""

    address: str
    kind: MailboxKind
    display_name: str
    id_nat_pp: str = ""
    profession_code: str = ""
    profession_label: str = ""
    specialty_code: str = ""
    specialty_label: str = ""
    structure_id: str = ""
    structure_name: str = ""
    service: str = ""
    postal_address: str = ""
    postcode: str = ""
    department: str = ""
    liste_rouge: bool = False
    certificates: tuple[bytes, ...] = field(default=())

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


# RFC 5321 §4.5.3.1: local part ≤ 64 octets, domain ≤ 255, path ≤ 256.
_LOCAL_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def split_address(address: str) -> tuple[str, str]:
    """Return ``(local, domain)`` of a normalised address or raise InvalidAddress."""
    addr = normalize_address(address)
    local, _, domain = addr.rpartition("@")
    return local, domain


def normalize_address(address: str) -> str:
    """Lower-case and validate a mailbox address (the directory key).

    MSSanté addresses are ASCII and lower case; anything else is refused with
    the reason named, rather than silently looked up and not found.
    """
    addr = address.strip()
    if addr.startswith("<") and addr.endswith(">"):
        addr = addr[1:-1]
    if not addr:
        raise InvalidAddress("empty address")
    if len(addr) > 254:
        raise InvalidAddress("address longer than 254 characters")
    if not addr.isascii():
        raise InvalidAddress("address is not ASCII")
    if addr.count("@") != 1:
        raise InvalidAddress("address must contain exactly one '@'")
    local, _, domain = addr.partition("@")
    if not local or len(local) > 64 or not _LOCAL_RE.match(local):
        raise InvalidAddress("invalid local part")
    domain = domain.lower().rstrip(".")
    if not _DOMAIN_RE.match(domain):
        raise InvalidAddress("invalid domain")
    return f"{local.lower()}@{domain}"


@dataclass(frozen=True, slots=True)
class DirectoryStats:
    """Counts an operator checks after an import (``pli directory stats``)."""

    backend: str
    entries_by_kind: dict[str, int]
    liste_rouge: int
    domains: int
    trusted_domains: int
    delegations: int
    certificates: int
    generation: int = 0

    @property
    def entries(self) -> int:
        return sum(self.entries_by_kind.values())


@runtime_checkable
class Directory(Protocol):
    """What pli asks the directory. Every method may raise DirectoryUnavailable."""

    async def resolve(self, address: str) -> Entry | None:
        """The entry for a normalised address, or None if it holds no mailbox."""
        ...

    async def is_trusted_domain(self, domain: str) -> bool:
        """Whether the domain belongs to the trust space (liste blanche)."""
        ...

    async def search(self, text: str, limit: int = 50) -> list[Entry]:
        """Entries matching a name, profession, structure or postcode; never liste rouge."""
        ...

    async def certificates(self, address: str) -> tuple[bytes, ...]:
        """DER certificates published for the address (S/MIME encryption, signature check)."""
        ...

    async def delegates(self, mailbox: str) -> frozenset[str]:
        """Addresses of the users who may act for an ORG/APP/CAB mailbox."""
        ...

    async def delegated_mailboxes(self, user: str) -> frozenset[str]:
        """The shared mailboxes a user may act for (IMAP shared namespace, submission)."""
        ...


@runtime_checkable
class DirectoryAdmin(Protocol):
    """Changes an operator makes through pli (not the national import)."""

    async def set_delegation(self, mailbox: str, user: str, *, revoke: bool = False) -> bool:
        """Grant (or revoke) ``user`` acting for ``mailbox``; True if anything changed.

        Raises DelegationRefused if the mailbox is not a shared one or the user not a
        PER mailbox of the directory.
        """
        ...

    async def stats(self) -> DirectoryStats: ...


async def may_act_for(directory: Directory, user: str, mailbox: str) -> bool:
    """Whether ``user`` may send as / read ``mailbox``: their own, or delegated."""
    if user == mailbox:
        return True
    return user in await directory.delegates(mailbox)
