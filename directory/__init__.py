"""The professional directory: who holds a mailbox, and which domains are trusted."""

from directory.base import (
    Directory,
    DirectoryError,
    DirectoryUnavailable,
    Entry,
    InvalidAddress,
    MailboxKind,
    normalize_address,
)

__all__ = [
    "Directory",
    "DirectoryError",
    "DirectoryUnavailable",
    "Entry",
    "InvalidAddress",
    "MailboxKind",
    "normalize_address",
]
