"""The message core's own tables: what proves a message, and the receipts it answers.

``message_evidence`` lists the vault objects that show what a message was
(original S/MIME form, notarisation receipts, the outbound copy);
``mdn_ack`` the disposition notifications received. Both are written in the
commit transaction of the message they concern; readers go through
:mod:`gateway.core.evidence` and :mod:`gateway.core.mdn`.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
)

__all__ = ["mdn_ack", "message_evidence", "metadata"]

metadata = MetaData()

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
