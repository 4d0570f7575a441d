"""telemetry batches already kept, so a gateway's replay is written once

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-01 21:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "telemetry_batches",
        sa.Column("dcu_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("kept_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dcu_id", "batch_id"),
    )
    with op.batch_alter_table("telemetry_batches", schema=None) as batch_op:
        batch_op.create_index("ix_telemetry_batches_kept_at", ["kept_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("telemetry_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_telemetry_batches_kept_at")
    op.drop_table("telemetry_batches")
