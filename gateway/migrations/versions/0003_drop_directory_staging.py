"""drop directory_staging: imports now compare row hashes batch by batch

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table("directory_staging")


def downgrade() -> None:
    op.create_table(
        "directory_staging",
        sa.Column("batch", sa.String(32), primary_key=True),
        sa.Column("address", sa.String(254), primary_key=True),
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
    )
