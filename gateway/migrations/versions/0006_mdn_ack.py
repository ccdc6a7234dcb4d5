"""message disposition notifications received, by original Message-ID

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mdn_ack",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("original_message_id", sa.String(255), nullable=False),
        sa.Column("final_recipient", sa.String(320), nullable=False),
        sa.Column("disposition", sa.String(64), nullable=False),
        sa.Column("reporter", sa.String(320), nullable=False),
        sa.Column("msg_ref", sa.String(64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_mdn_ack_original_message_id", "mdn_ack", ["original_message_id"])


def downgrade() -> None:
    op.drop_index("ix_mdn_ack_original_message_id", "mdn_ack")
    op.drop_table("mdn_ack")
