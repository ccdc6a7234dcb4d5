"""The mailstore's own tables: accounts, API tokens, mailboxes, their ACLs and messages.

Bodies are never here: a message row points at a vault object by its random
name. Flags are a space-separated text column beside the message's MODSEQ
(RFC 7162); the mailbox keeps its HIGHESTMODSEQ and subscription, and the
ENVELOPE/BODYSTRUCTURE of a message are cached here once computed.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
    true,
)

__all__ = ["account", "api_token", "mailbox", "mailbox_acl", "message", "metadata"]

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
    Column("highest_modseq", BigInteger, nullable=False, server_default=text("1")),
    Column("subscribed", Boolean, nullable=False, server_default=true()),
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
    Column("modseq", BigInteger, nullable=False, server_default=text("1")),
    Column("envelope", Text, nullable=True),  # FETCH ENVELOPE, computed once (RFC 3501 §7.4.2)
    Column("bodystructure", Text, nullable=True),  # FETCH BODYSTRUCTURE, computed once
    UniqueConstraint("mailbox_id", "uid", name="uq_message_mailbox_uid"),
)
Index("ix_message_mailbox_modseq", message.c.mailbox_id, message.c.modseq)

# RFC 4314 rights a user holds on a shared (ORG/APP) mailbox owner's tree; without a row a
# delegated user gets DELEGATED_RIGHTS.
mailbox_acl = Table(
    "mailbox_acl",
    metadata,
    Column("owner", String(320), primary_key=True),
    Column("identifier", String(320), primary_key=True),
    Column("rights", String(32), nullable=False),
)

# API tokens (gateway.mailstore.tokens), stored as SHA-256 digests of their secrets: the
# secret itself is never stored, so a database dump gives no usable token.
api_token = Table(
    "api_token",
    metadata,
    Column("id", String(16), primary_key=True),  # public: appears in audit as token:<id>
    Column("secret_sha256", String(64), nullable=False),
    Column("mailbox", String(320), nullable=False),  # "" for an auditor's token
    Column("scopes", String(64), nullable=False),  # space-separated: send read audit
    Column("label", String(64), nullable=False),
    Column("created_by", String(320), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)
