"""The directory's own tables: mailbox entries and trusted domains (its own MetaData).

Only ``directory/`` reads or writes them; Alembic revisions under
``gateway/migrations`` are generated from this ``metadata``. Portable Core
types only, so the same schema serves SQLite (embedded) and PostgreSQL
(scale-out). String sizes match the limits the extraction parser enforces, so
a row the parser accepts always fits. Never put behaviour or queries here.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "directory_certificate",
    "directory_delegation",
    "directory_entry",
    "directory_state",
    "directory_trusted_domain",
    "metadata",
]

metadata = MetaData()

directory_entry = Table(
    "directory_entry",
    metadata,
    Column("address", String(254), primary_key=True),  # normalised, lower-case ASCII
    Column("kind", String(3), nullable=False),  # MailboxKind: PER, ORG, APP, CAB
    Column("display_name", String(255), nullable=False),
    Column("id_nat_pp", String(16), nullable=False),  # 8+RPPS or 0+ADELI; "" if not PER
    Column("profession_code", String(8), nullable=False),
    Column("profession_label", String(128), nullable=False),
    Column("specialty_code", String(16), nullable=False),
    Column("specialty_label", String(128), nullable=False),
    Column("structure_id", String(32), nullable=False),
    Column("structure_name", String(255), nullable=False),
    Column("service", String(255), nullable=False),
    Column("postal_address", Text, nullable=False),
    Column("postcode", String(10), nullable=False),
    Column("department", String(3), nullable=False),
    Column("liste_rouge", Boolean, nullable=False),  # hidden from search, still delivered
    # BLAKE2b-128 hex of the stored fields: a re-import rewrites only rows that differ.
    Column("row_hash", String(32), nullable=False),
    # Lower-case, accent-free words of name, profession, structure, service, postcode,
    # town and address: one column for search to scan instead of seven lower() calls.
    Column("search_text", Text, nullable=False, server_default=""),
)
# Lookups by person (all mailboxes of one RPPS), by structure and by postcode.
Index("ix_directory_entry_id_nat_pp", directory_entry.c.id_nat_pp)
Index("ix_directory_entry_structure_id", directory_entry.c.structure_id)
Index("ix_directory_entry_postcode", directory_entry.c.postcode)

directory_trusted_domain = Table(
    "directory_trusted_domain",
    metadata,
    Column("domain", String(253), primary_key=True),  # lower-case, no trailing dot
)

# Who may act for a shared (ORG/APP/CAB) mailbox: set by operators, kept across imports.
directory_delegation = Table(
    "directory_delegation",
    metadata,
    Column("mailbox", String(254), primary_key=True),
    Column("user_address", String(254), primary_key=True),
    Column("granted_at", DateTime(timezone=True), nullable=False),
)
Index("ix_directory_delegation_user", directory_delegation.c.user_address)

# Published certificates (DER), several per address during a renewal.
directory_certificate = Table(
    "directory_certificate",
    metadata,
    Column("address", String(254), primary_key=True),
    Column("sha256", String(64), primary_key=True),  # hex fingerprint of der
    Column("der", LargeBinary, nullable=False),
)

# One row (id 1): a counter bumped by every import and delegation change, so that the
# read caches of every pli instance (and of the SQL or LDAP backend) drop stale entries.
directory_state = Table(
    "directory_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("generation", BigInteger, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)
