"""The directory's own tables: entries, the import staging area and trusted domains.

Only ``directory/`` reads or writes them. Portable SQL types only, so the same
schema serves SQLite (embedded) and PostgreSQL (scale-out).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, MetaData, String, Table, Text

__all__ = ["directory_entry", "directory_staging", "directory_trusted_domain", "metadata"]

metadata = MetaData()


def _entry_columns() -> list[Column[object]]:
    return [
        Column("kind", String(3), nullable=False),
        Column("display_name", String(255), nullable=False),
        Column("id_nat_pp", String(16), nullable=False),
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
        Column("liste_rouge", Boolean, nullable=False),
        # Digest of every field: a re-import compares it to detect changed rows.
        Column("row_hash", String(32), nullable=False),
    ]


directory_entry = Table(
    "directory_entry",
    metadata,
    Column("address", String(254), primary_key=True),
    *_entry_columns(),
)
Index("ix_directory_entry_id_nat_pp", directory_entry.c.id_nat_pp)
Index("ix_directory_entry_structure_id", directory_entry.c.structure_id)
Index("ix_directory_entry_postcode", directory_entry.c.postcode)

# Rows of the import in progress, tagged by batch so two imports never mix.
directory_staging = Table(
    "directory_staging",
    metadata,
    Column("batch", String(32), primary_key=True),
    Column("address", String(254), primary_key=True),
    *_entry_columns(),
)

directory_trusted_domain = Table(
    "directory_trusted_domain",
    metadata,
    Column("domain", String(253), primary_key=True),
)
