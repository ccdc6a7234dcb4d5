"""directory: search column, delegations, certificates, change generation

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from directory.searchtext import search_text

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PARTS = ("display_name", "profession_label", "specialty_label", "structure_name", "service",
          "postal_address", "postcode", "address")


def _backfill() -> None:
    """Fill search_text of the rows already imported (keyset pages, bounded memory)."""
    bind = op.get_bind()
    entry = sa.table("directory_entry", *(sa.column(c) for c in (*_PARTS, "search_text")))
    last = ""
    while True:
        rows = bind.execute(sa.select(*(entry.c[c] for c in _PARTS))
                            .where(entry.c.address > last)
                            .order_by(entry.c.address).limit(5000)).all()
        if not rows:
            return
        bind.execute(sa.update(entry).where(entry.c.address == sa.bindparam("key"))
                     .values(search_text=sa.bindparam("text")),
                     [{"key": r.address, "text": search_text(r)} for r in rows])
        last = rows[-1].address


def upgrade() -> None:
    with op.batch_alter_table("directory_entry") as batch:
        batch.add_column(sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
    _backfill()
    op.create_table(
        "directory_delegation",
        sa.Column("mailbox", sa.String(254), primary_key=True),
        sa.Column("user_address", sa.String(254), primary_key=True),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_directory_delegation_user", "directory_delegation", ["user_address"])
    op.create_table(
        "directory_certificate",
        sa.Column("address", sa.String(254), primary_key=True),
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("der", sa.LargeBinary(), nullable=False),
    )
    state = op.create_table(
        "directory_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.bulk_insert(state, [{"id": 1, "generation": 1, "changed_at": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("directory_state")
    op.drop_table("directory_certificate")
    op.drop_index("ix_directory_delegation_user", "directory_delegation")
    op.drop_table("directory_delegation")
    with op.batch_alter_table("directory_entry") as batch:
        batch.drop_column("search_text")
