"""The outbound queue's own table: one row per (message, remote recipient).

Owned by :mod:`gateway.outbound` (its own MetaData, combined by
:mod:`gateway.migrations`); the core writes a row through
:func:`gateway.outbound.store.enqueue` in the transaction that accepts the
message, and any instance may claim it. Never content: the body is a vault object.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

__all__ = ["metadata", "outbound"]

metadata = MetaData()

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
