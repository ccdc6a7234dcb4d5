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
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = ["audit_checkpoint", "audit_event", "audit_head", "metadata", "vault_object"]

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
)

audit_event = Table(
    "audit_event",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=False),
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
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", LargeBinary, nullable=False),
)
