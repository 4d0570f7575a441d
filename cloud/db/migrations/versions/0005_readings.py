"""readings kept in the cloud database, gateways' telemetry drop totals

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meter_readings",
        sa.Column("meter_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dcu_id", sa.String(length=64), nullable=False),
        sa.Column("relay", sa.String(length=32), nullable=False),
        sa.Column("voltage_v", sa.Float(), nullable=False),
        sa.Column("current_a", sa.Float(), nullable=False),
        sa.Column("active_power_w", sa.Float(), nullable=False),
        sa.Column("power_factor", sa.Float(), nullable=False),
        sa.Column("frequency_hz", sa.Float(), nullable=False),
        sa.Column("import_wh", sa.BigInteger(), nullable=False),
        sa.Column("export_wh", sa.BigInteger(), nullable=False),
        sa.Column("import_vah", sa.BigInteger(), nullable=False),
        sa.Column("historical", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("meter_id", "at"),
    )
    with op.batch_alter_table("meter_readings", schema=None) as batch_op:
        batch_op.create_index("ix_meter_readings_at", ["at"], unique=False)
    with op.batch_alter_table("gateways", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "telemetry_dropped_readings", sa.BigInteger(), server_default="0", nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("gateways", schema=None) as batch_op:
        batch_op.drop_column("telemetry_dropped_readings")
    with op.batch_alter_table("meter_readings", schema=None) as batch_op:
        batch_op.drop_index("ix_meter_readings_at")
    op.drop_table("meter_readings")
