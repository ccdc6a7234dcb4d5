"""The professional directory: who holds a mailbox, and which domains are trusted.

The package root exports the contract only (:class:`Directory`, :class:`Entry`,
the errors, address normalisation); backends and importers live in their own
modules (``directory.sql``, ``directory.extraction``, ``directory.trustlist``)
and only the composition root picks one. It must never import a backend here.
"""

from directory.base import (
    Directory,
    DirectoryError,
    DirectoryUnavailable,
    Entry,
    InvalidAddress,
    MailboxKind,
    normalize_address,
    split_address,
)

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
