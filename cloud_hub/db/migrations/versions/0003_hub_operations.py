"""Hub operations (issue 8): the alert lifecycle, health alarms, device approval, the stream.

Alerts go from ``active | cleared`` to ``open | acknowledged | resolved``: an active alert becomes
open, a cleared one resolved (by the hub, when it cleared). At most one alert per (gateway, device,
rule) may be active from now on (partial unique index ``uq_alert_active``): should an older hub have
left two active for one key, the newer stays open and the others are resolved by this migration.
Existing devices are approved (they were registered by what their gateways reported).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ACTIVE = "state <> 'resolved'"
MIGRATION_ACTOR = "migration 0003"

_FILLED_ALERT_COLUMNS = (
    ("occurrences", sa.Integer()),
    ("acknowledged_by", sa.String(length=100)),
    ("resolved_by", sa.String(length=100)),
    ("escalation_tier", sa.Integer()),
)


def upgrade() -> None:
    _new_tables()
    op.drop_index("ix_alert_lookup", table_name="alert")
    with op.batch_alter_table("alert") as alert:
        alert.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        alert.add_column(_filled("occurrences", sa.Integer(), "1"))
        alert.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
        alert.add_column(_filled("acknowledged_by", sa.String(length=100), ""))
        alert.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
        alert.add_column(_filled("resolved_by", sa.String(length=100), ""))
        alert.add_column(_filled("escalation_tier", sa.Integer(), "0"))
        alert.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
    _convert_alerts()
    with op.batch_alter_table("alert") as alert:
        alert.alter_column("last_seen_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        for name, kind in _FILLED_ALERT_COLUMNS:
            alert.alter_column(name, existing_type=kind, server_default=None)
    op.create_index("ix_alert_opened_at", "alert", ["opened_at"], unique=False)
    op.create_index(
        "uq_alert_active",
        "alert",
        ["gateway_id", "device", "rule"],
        unique=True,
        sqlite_where=sa.text(ACTIVE),
        postgresql_where=sa.text(ACTIVE),
    )

    with op.batch_alter_table("device") as device:
        device.add_column(sa.Column("offline_since", sa.DateTime(timezone=True), nullable=True))
        device.add_column(_filled("approval", sa.String(length=16), "approved"))
        device.add_column(_filled("approval_by", sa.String(length=100), ""))
        device.add_column(sa.Column("approval_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("device") as device:
        device.alter_column("approval", existing_type=sa.String(length=16), server_default=None)
        device.alter_column("approval_by", existing_type=sa.String(length=100), server_default=None)
    with op.batch_alter_table("room") as room:
        room.add_column(_filled("type", sa.String(length=32), ""))
    with op.batch_alter_table("room") as room:
        room.alter_column("type", existing_type=sa.String(length=32), server_default=None)
    with op.batch_alter_table("gateway") as gateway:
        gateway.add_column(sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True))


def _filled(name: str, kind: sa.types.TypeEngine[Any], value: str) -> sa.Column[Any]:
    """A NOT NULL column that existing rows get ``value`` in (the default is dropped after)."""
    return sa.Column(name, kind, nullable=False, server_default=sa.text(repr(value)))


def _convert_alerts() -> None:
    """active -> open, cleared -> resolved; one active alert per key (the newest)."""
    bind = op.get_bind()
    bind.execute(sa.text("UPDATE alert SET last_seen_at = opened_at"))
    bind.execute(
        sa.text(
            "UPDATE alert SET state = 'resolved', resolved_at = cleared_at, resolved_by = 'hub' "
            "WHERE state = 'cleared'"
        )
    )
    bind.execute(
        sa.text(
            "UPDATE alert SET state = 'resolved', resolved_at = opened_at, "
            "resolved_by = :actor WHERE state = 'active' AND EXISTS ("
            " SELECT 1 FROM alert AS newer WHERE newer.state = 'active'"
            " AND newer.gateway_id = alert.gateway_id AND newer.device = alert.device"
            " AND newer.rule = alert.rule AND newer.id > alert.id)"
        ),
        {"actor": MIGRATION_ACTOR},
    )
    bind.execute(sa.text("UPDATE alert SET state = 'open' WHERE state = 'active'"))


def _new_tables() -> None:
    op.create_table(
        "alert_change",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("transition", sa.String(length=16), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("comment", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alert.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_change_alert", "alert_change", ["alert_id", "id"], unique=False)
    op.create_index(op.f("ix_alert_change_school_id"), "alert_change", ["school_id"])
    op.create_table(
        "status_change",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=True),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_status_change_school_id"), "status_change", ["school_id"])
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("webhook", sa.String(length=64), nullable=False),
        sa.Column("alert_change_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.String(length=4000), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["alert_change_id"], ["alert_change.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("webhook", "alert_change_id"),
    )
    op.create_index(
        "ix_webhook_delivery_due", "webhook_delivery", ["state", "next_attempt_at"], unique=False
    )


def downgrade() -> None:
    with op.batch_alter_table("gateway") as gateway:
        gateway.drop_column("registered_at")
    with op.batch_alter_table("room") as room:
        room.drop_column("type")
    with op.batch_alter_table("device") as device:
        for name in ("approval_at", "approval_by", "approval", "offline_since"):
            device.drop_column(name)
    op.drop_index("uq_alert_active", table_name="alert")
    op.drop_index("ix_alert_opened_at", table_name="alert")
    bind = op.get_bind()
    bind.execute(sa.text("UPDATE alert SET state = 'cleared' WHERE state = 'resolved'"))
    bind.execute(sa.text("UPDATE alert SET state = 'active' WHERE state <> 'cleared'"))
    with op.batch_alter_table("alert") as alert:
        for name in (
            "escalated_at",
            "escalation_tier",
            "resolved_by",
            "resolved_at",
            "acknowledged_by",
            "acknowledged_at",
            "occurrences",
            "last_seen_at",
        ):
            alert.drop_column(name)
    op.create_index("ix_alert_lookup", "alert", ["gateway_id", "device", "rule", "source", "state"])
    op.drop_index("ix_webhook_delivery_due", table_name="webhook_delivery")
    op.drop_table("webhook_delivery")
    op.drop_index(op.f("ix_status_change_school_id"), table_name="status_change")
    op.drop_table("status_change")
    op.drop_index(op.f("ix_alert_change_school_id"), table_name="alert_change")
    op.drop_index("ix_alert_change_alert", table_name="alert_change")
    op.drop_table("alert_change")
