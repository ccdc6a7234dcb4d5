"""The gateway's own tables: accounts, mailboxes and the messages delivered into them.

Bodies are never here: a message row points at a vault object by its random
name. Flags are a space-separated text column for now (the IMAP issue moves
them, with MODSEQ, to their own table).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["account", "mailbox", "message", "metadata"]

metadata = MetaData()

account = Table(
    "account",
    metadata,
    Column("address", String(320), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

mailbox = Table(
    "mailbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", String(320), nullable=False),
    Column("name", String(255), nullable=False),
    Column("uid_validity", BigInteger, nullable=False),
    Column("uid_next", BigInteger, nullable=False),
    UniqueConstraint("owner", "name", name="uq_mailbox_owner_name"),
)

message = Table(
    "message",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("msg_ref", String(64), nullable=False, index=True),
    Column("mailbox_id", Integer, ForeignKey("mailbox.id"), nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("blob", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("internal_date", DateTime(timezone=True), nullable=False),
    Column("flags", Text, nullable=False),
    UniqueConstraint("mailbox_id", "uid", name="uq_message_mailbox_uid"),
)
