"""Federation: what regional hubs forward, stored at the central hub (issue 10).

Which regional hub reports which district and since when, each school's status as its regional
hub last saw it, per-school rollups (5-minute and hourly), KPI snapshots per district, and alert
transitions. A regional hub has these tables too, empty.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_transition",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("regional_hub_id", sa.String(length=64), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=True),
        sa.Column("district_id", sa.String(length=64), nullable=True),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("regional_hub_id", "alert_id", "state", "at"),
    )
    op.create_index(
        "ix_alert_transition_alert",
        "alert_transition",
        ["regional_hub_id", "alert_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_alert_transition_school_id"), "alert_transition", ["school_id"], unique=False
    )
    op.create_table(
        "district_report",
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("city_id", sa.String(length=64), nullable=False),
        sa.Column("regional_hub_id", sa.String(length=64), nullable=False),
        sa.Column("first_reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("district_id"),
    )
    op.create_index(
        op.f("ix_district_report_city_id"), "district_report", ["city_id"], unique=False
    )
    op.create_table(
        "kpi_snapshot",
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kpi", sa.String(length=64), nullable=False),
        sa.Column("city_id", sa.String(length=64), nullable=False),
        sa.Column("regional_hub_id", sa.String(length=64), nullable=False),
        sa.Column("schools", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("numerator", sa.Float(), nullable=False),
        sa.Column("denominator", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("district_id", "at", "kpi"),
    )
    op.create_index(op.f("ix_kpi_snapshot_city_id"), "kpi_snapshot", ["city_id"], unique=False)
    op.create_table(
        "regional_hub",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=True),
        sa.Column("state_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("repeats", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "school_health",
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("regional_hub_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("gateways", sa.Integer(), nullable=False),
        sa.Column("gateways_online", sa.Integer(), nullable=False),
        sa.Column("devices", sa.Integer(), nullable=False),
        sa.Column("devices_online", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("school_id"),
    )
    op.create_index(
        op.f("ix_school_health_district_id"), "school_health", ["district_id"], unique=False
    )
    op.create_table(
        "school_rollup",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=4), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("point", sa.String(length=64), nullable=False),
        sa.Column("devices", sa.Integer(), nullable=False),
        sa.Column("windows", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("min", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
        sa.Column("mean", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("school_id", "period", "period_start", "point"),
    )
    op.create_index(
        op.f("ix_school_rollup_district_id"), "school_rollup", ["district_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_school_rollup_district_id"), table_name="school_rollup")
    op.drop_table("school_rollup")
    op.drop_index(op.f("ix_school_health_district_id"), table_name="school_health")
    op.drop_table("school_health")
    op.drop_table("regional_hub")
    op.drop_index(op.f("ix_kpi_snapshot_city_id"), table_name="kpi_snapshot")
    op.drop_table("kpi_snapshot")
    op.drop_index(op.f("ix_district_report_city_id"), table_name="district_report")
    op.drop_table("district_report")
    op.drop_index(op.f("ix_alert_transition_school_id"), table_name="alert_transition")
    op.drop_index("ix_alert_transition_alert", table_name="alert_transition")
    op.drop_table("alert_transition")
