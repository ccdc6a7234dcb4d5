"""IMAP: MODSEQ per message and per mailbox, subscriptions, cached ENVELOPE/BODYSTRUCTURE, ACL

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows start at MODSEQ 1 (RFC 7162 §3.1: any value works for a first sync).
    with op.batch_alter_table("mailbox") as batch:
        batch.add_column(sa.Column("highest_modseq", sa.BigInteger(), nullable=False,
                                   server_default=sa.text("1")))
        batch.add_column(sa.Column("subscribed", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("modseq", sa.BigInteger(), nullable=False,
                                   server_default=sa.text("1")))
        batch.add_column(sa.Column("envelope", sa.Text(), nullable=True))
        batch.add_column(sa.Column("bodystructure", sa.Text(), nullable=True))
    op.create_index("ix_message_mailbox_modseq", "message", ["mailbox_id", "modseq"])
    op.create_table(
        "mailbox_acl",
        sa.Column("owner", sa.String(320), primary_key=True),
        sa.Column("identifier", sa.String(320), primary_key=True),
        sa.Column("rights", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mailbox_acl")
    op.drop_index("ix_message_mailbox_modseq", "message")
    with op.batch_alter_table("message") as batch:
        batch.drop_column("bodystructure")
        batch.drop_column("envelope")
        batch.drop_column("modseq")
    with op.batch_alter_table("mailbox") as batch:
        batch.drop_column("subscribed")
        batch.drop_column("highest_modseq")
