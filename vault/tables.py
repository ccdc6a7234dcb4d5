"""The vault's own tables: object metadata (wrapped keys, digests) and the audit chain.

Wrapped data keys live here, not in the blobs, so a KEK rotation re-wraps rows
without rewriting objects. No column holds an address or subject of a message
object; the audit table holds who/what/when, never content.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "audit_checkpoint",
    "audit_event",
    "audit_head",
    "audit_segment",
    "metadata",
    "vault_hold",
    "vault_hold_object",
    "vault_object",
]

metadata = MetaData()

vault_object = Table(
    "vault_object",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("kek_id", String(32), nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("nonce_base", LargeBinary, nullable=False),
    Column("chunk_size", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # What the object is ("message", "audit-segment", "notarisation"…) and until when
    # it must be kept (NULL: no retention date); see vault/retention.py.
    Column("doc_type", String(32), nullable=False, server_default="message"),
    Column("retain_until", DateTime(timezone=True), nullable=True),
)
Index("ix_vault_object_retain_until", vault_object.c.retain_until)

# Legal holds: while a hold is active (released_at NULL) none of its objects is deleted.
vault_hold = Table(
    "vault_hold",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reason", String(255), nullable=False),
    Column("placed_by", String(320), nullable=False),
    Column("placed_at", DateTime(timezone=True), nullable=False),
    Column("released_by", String(320), nullable=True),
    Column("released_at", DateTime(timezone=True), nullable=True),
)

vault_hold_object = Table(
    "vault_hold_object",
    metadata,
    Column("hold_id", Integer, ForeignKey("vault_hold.id"), primary_key=True),
    Column("name", String(64), primary_key=True),
)
Index("ix_vault_hold_object_name", vault_hold_object.c.name)

audit_event = Table(
    "audit_event",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("ts", DateTime(timezone=True), nullable=False, index=True),
    Column("actor", String(320), nullable=False, index=True),
    Column("action", String(64), nullable=False, index=True),
    Column("mailbox", String(320), nullable=False, index=True),
    Column("msg_id", String(64), nullable=False),
    Column("result", String(16), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("remote", String(128), nullable=False),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# One row (id=1): the chain head. Updating it first in a transaction serialises
# appenders on SQLite and PostgreSQL alike, across processes and instances.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Signed (Ed25519) statements "the chain had this hash at this seq": someone who can
# rewrite the table and recompute every hash still cannot forge them without the key.
audit_checkpoint = Table(
    "audit_checkpoint",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("hash", String(64), nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", LargeBinary, nullable=False),
)

# Sealed segments: a run of entries exported as JSON lines into a vault object (locked
# like any object), with a signature over its range, last hash and digest.
audit_segment = Table(
    "audit_segment",
    metadata,
    Column(
        "last_seq",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("object_name", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("entries", Integer, nullable=False),
    Column("sealed_at", DateTime(timezone=True), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", LargeBinary, nullable=False),
)
