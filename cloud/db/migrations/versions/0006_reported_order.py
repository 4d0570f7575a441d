"""meters' reported relay state ordered by the meter's own event sequence and read time

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: a meter's state reported before this revision has no order key, and
    # the first report that has one supersedes it (cloud/commands/reported.py).
    op.add_column("meters", sa.Column("reported_event_seq", sa.BigInteger(), nullable=True))
    op.add_column("meters", sa.Column("reported_read_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    # Not in batch mode: on SQLite that copies `meters` and drops the original, which the
    # accounts' foreign keys refuse once there is data; SQLite drops a column in place (3.35+).
    op.drop_column("meters", "reported_read_ms")
    op.drop_column("meters", "reported_event_seq")
