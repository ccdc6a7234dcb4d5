"""directory entries, import staging, trusted domains

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _entry_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("kind", sa.String(3), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("id_nat_pp", sa.String(16), nullable=False),
        sa.Column("profession_code", sa.String(8), nullable=False),
        sa.Column("profession_label", sa.String(128), nullable=False),
        sa.Column("specialty_code", sa.String(16), nullable=False),
        sa.Column("specialty_label", sa.String(128), nullable=False),
        sa.Column("structure_id", sa.String(32), nullable=False),
        sa.Column("structure_name", sa.String(255), nullable=False),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("postal_address", sa.Text(), nullable=False),
        sa.Column("postcode", sa.String(10), nullable=False),
        sa.Column("department", sa.String(3), nullable=False),
        sa.Column("liste_rouge", sa.Boolean(), nullable=False),
        sa.Column("row_hash", sa.String(32), nullable=False),
    ]


def upgrade() -> None:
    op.create_table("directory_entry", sa.Column("address", sa.String(254), primary_key=True),
                    *_entry_columns())
    op.create_index("ix_directory_entry_id_nat_pp", "directory_entry", ["id_nat_pp"])
    op.create_index("ix_directory_entry_structure_id", "directory_entry", ["structure_id"])
    op.create_index("ix_directory_entry_postcode", "directory_entry", ["postcode"])
    op.create_table("directory_staging", sa.Column("batch", sa.String(32), primary_key=True),
                    sa.Column("address", sa.String(254), primary_key=True), *_entry_columns())
    op.create_table("directory_trusted_domain",
                    sa.Column("domain", sa.String(253), primary_key=True))


def downgrade() -> None:
    for name in ("directory_trusted_domain", "directory_staging", "directory_entry"):
        op.drop_table(name)
