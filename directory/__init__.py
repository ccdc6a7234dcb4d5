"""The professional directory: who holds a mailbox, and which domains are trusted.

The package root exports the contract only (:class:`Directory`, :class:`Entry`,
the errors, address normalisation); backends and importers live in their own
modules (``directory.sql``, ``directory.sql_import``, ``directory.ldap``,
``directory.cache``, ``directory.extraction``, ``directory.trustlist``)
and only the composition root picks one. It must never import a backend here.
"""

from directory.base import (
    DELEGABLE_KINDS,
    DelegationRefused,
    Directory,
    DirectoryAdmin,
    DirectoryError,
    DirectoryStats,
    DirectoryUnavailable,
    Entry,
    InvalidAddress,
    MailboxKind,
    NotInDirectory,
    may_act_for,
    normalize_address,
    split_address,
)

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
    "NotInDirectory",
    "may_act_for",
    "normalize_address",
    "split_address",
]
