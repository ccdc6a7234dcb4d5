"""vault retention dates, legal holds and sealed audit segments

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("vault_object") as batch:
        batch.add_column(sa.Column("doc_type", sa.String(32), nullable=False,
                                   server_default="message"))
        batch.add_column(sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_vault_object_retain_until", "vault_object", ["retain_until"])
    op.create_table(
        "vault_hold",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("placed_by", sa.String(320), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_by", sa.String(320), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "vault_hold_object",
        sa.Column("hold_id", sa.Integer(), sa.ForeignKey("vault_hold.id"), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
    )
    op.create_index("ix_vault_hold_object_name", "vault_hold_object", ["name"])
    op.create_table(
        "audit_segment",
        sa.Column("last_seq", _SEQ, primary_key=True, autoincrement=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("object_name", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_segment")
    op.drop_index("ix_vault_hold_object_name", "vault_hold_object")
    op.drop_table("vault_hold_object")
    op.drop_table("vault_hold")
    op.drop_index("ix_vault_object_retain_until", "vault_object")
    with op.batch_alter_table("vault_object") as batch:
        batch.drop_column("retain_until")
        batch.drop_column("doc_type")
