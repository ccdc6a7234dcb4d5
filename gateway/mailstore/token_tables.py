"""The HTTP API's own table: API tokens, stored as SHA-256 digests of their secrets.

Owned by ``gateway.http`` (its own MetaData, registered with Alembic beside the
other packages'); nothing outside :mod:`gateway.mailstore.tokens` reads or writes
it. The secret itself is never stored: a database dump gives no usable token.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, MetaData, String, Table

__all__ = ["api_token", "metadata"]

metadata = MetaData()

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
