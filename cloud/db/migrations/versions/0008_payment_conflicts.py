"""payment conflicts: a known payment id re-delivered with another amount, currency or account

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-01 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_conflicts",
        sa.Column(
            "conflict_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("recorded_amount_paise", sa.BigInteger(), nullable=False),
        sa.Column("recorded_currency", sa.String(length=3), nullable=False),
        sa.Column("recorded_account_ref", sa.String(length=64), nullable=True),
        sa.Column("claimed_amount_paise", sa.BigInteger(), nullable=False),
        sa.Column("claimed_currency", sa.String(length=3), nullable=False),
        sa.Column("claimed_account_ref", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("conflict_id"),
    )
    with op.batch_alter_table("payment_conflicts", schema=None) as batch_op:
        batch_op.create_index("ix_payment_conflicts_payment_id", ["payment_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payment_conflicts", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_conflicts_payment_id")
    op.drop_table("payment_conflicts")
