"""Evidence objects of a message: original S/MIME form, notarisation receipts, outbound copy

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_evidence",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("msg_ref", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("part", sa.Integer, nullable=True),
        sa.Column("object_name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_message_evidence_msg_ref", "message_evidence", ["msg_ref"])


def downgrade() -> None:
    op.drop_index("ix_message_evidence_msg_ref", table_name="message_evidence")
    op.drop_table("message_evidence")
