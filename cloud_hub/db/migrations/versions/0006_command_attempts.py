"""Command records keep how many writes the gateway tried (``device_command.attempts``).

The agent retries a write a bounded number of times and says how many it took in its result;
existing records get 0 (not reported). On SQLite the table is rebuilt (batch mode) to drop the
default that filled them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("device_command") as command:
        command.add_column(
            sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    with op.batch_alter_table("device_command") as command:
        command.alter_column("attempts", existing_type=sa.Integer(), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("device_command") as command:
        command.drop_column("attempts")
