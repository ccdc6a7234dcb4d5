"""The gateway's own tables: accounts, mailboxes and the messages delivered into them.

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

__all__ = [
    "account", "mailbox", "mailbox_acl", "mdn_ack", "message", "message_evidence", "metadata",
    "outbound",
]

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

# One row per (message, remote recipient): the outbound queue, claimed by any instance.
outbound = Table(
    "outbound",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("msg_ref", String(64), nullable=False, index=True),
    Column("blob", String(64), nullable=False),
    Column("sender", String(320), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("domain", String(253), nullable=False),
    Column("state", String(16), nullable=False),  # queued, delivered, failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_reply", String(512), nullable=False),  # the remote's reply or our error
    Column("delay_notified", Boolean, nullable=False),  # a "delayed" DSN went out
    Column("claimed_by", String(64), nullable=False),  # worker id while a delivery runs
    Column("claimed_until", DateTime(timezone=True), nullable=True),
)
Index("ix_outbound_due", outbound.c.state, outbound.c.next_attempt)

# Message disposition notifications received (RFC 8098), by the Message-ID they answer.
mdn_ack = Table(
    "mdn_ack",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("original_message_id", String(255), nullable=False, index=True),
    Column("final_recipient", String(320), nullable=False),
    Column("disposition", String(64), nullable=False),  # "processed", "processed/error"…
    Column("reporter", String(320), nullable=False),  # who sent the MDN (envelope sender or From)
    Column("msg_ref", String(64), nullable=False),  # the MDN message itself, in pli
    Column("received_at", DateTime(timezone=True), nullable=False),
)

# Vault objects that prove what a message was (gateway/core/evidence.py kinds): the original
# S/MIME form, notarisation receipts (whole, original, per attachment: ``part`` is the MIME
# part's walk index) and the signed/encrypted outbound copy. Never names or content.
message_evidence = Table(
    "message_evidence",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("msg_ref", String(64), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("part", Integer, nullable=True),
    Column("object_name", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
