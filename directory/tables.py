"""The directory's own tables: mailbox entries and trusted domains (its own MetaData).

Only ``directory/`` reads or writes them; Alembic revisions under
``gateway/migrations`` are generated from this ``metadata``. Portable Core
types only, so the same schema serves SQLite (embedded) and PostgreSQL
(scale-out). String sizes match the limits the extraction parser enforces, so
a row the parser accepts always fits. Never put behaviour or queries here.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, MetaData, String, Table, Text

__all__ = ["directory_entry", "directory_trusted_domain", "metadata"]

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
