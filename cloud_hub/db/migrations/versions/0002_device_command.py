"""Device commands (hub -> gateway writes with read-back; issue 7).

A database made before migrations by a build that already had this table (``create_all``) is
adopted at 0001 and keeps its table: the table is created only where it is missing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("device_command"):
        return
    op.create_table(
        "device_command",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("readback", sa.Float(), nullable=True),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["gateway_id"], ["gateway.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_device_command_due", "device_command", ["status", "expires_at"])
    op.create_index(op.f("ix_device_command_gateway_id"), "device_command", ["gateway_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_device_command_gateway_id"), table_name="device_command")
    op.drop_index("ix_device_command_due", table_name="device_command")
    op.drop_table("device_command")
