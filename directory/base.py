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
    "Directory",
    "DirectoryError",
    "DirectoryUnavailable",
    "Entry",
    "InvalidAddress",
    "MailboxKind",
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
