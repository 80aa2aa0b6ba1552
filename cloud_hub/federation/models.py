"""The central hub's city-wide tables, filled from what regional hubs forward.

Districts and schools themselves go into the hub's ordinary ``district`` and ``school`` tables (so
scopes and names work as on any hub); these tables hold what only the central hub knows: which
regional hub reports which district and since when, every school's status as its regional hub
last saw it, per-school rollups, KPI snapshots per district, and alert transitions.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cloud_hub.db.base import Base

Key = String(64)


class RegionalHub(Base):
    """A regional hub that forwards to this central hub; ``id`` is its node id (MQTT username)."""

    __tablename__ = "regional_hub"

    id: Mapped[str] = mapped_column(Key, primary_key=True)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]  # central clock of its newest stored message
    online: Mapped[bool | None] = mapped_column(default=None)  # its retained state / will
    state_changed_at: Mapped[datetime | None]
    messages: Mapped[int] = mapped_column(BigInteger, default=0)  # stored, duplicates excluded
    repeats: Mapped[int] = mapped_column(BigInteger, default=0)  # items it had already sent


class DistrictReport(Base):
    """Which regional hub reports a district, since when and how recently."""

    __tablename__ = "district_report"

    district_id: Mapped[str] = mapped_column(Key, primary_key=True)
    city_id: Mapped[str] = mapped_column(Key, index=True)
    regional_hub_id: Mapped[str] = mapped_column(Key)
    first_reported_at: Mapped[datetime]
    last_reported_at: Mapped[datetime]


class SchoolHealth(Base):
    """A school as its regional hub last reported it (the newest report wins)."""

    __tablename__ = "school_health"

    school_id: Mapped[str] = mapped_column(Key, primary_key=True)
    district_id: Mapped[str] = mapped_column(Key, index=True)
    regional_hub_id: Mapped[str] = mapped_column(Key)
    status: Mapped[str] = mapped_column(String(16))
    gateways: Mapped[int] = mapped_column(Integer)
    gateways_online: Mapped[int] = mapped_column(Integer)
    devices: Mapped[int] = mapped_column(Integer)
    devices_online: Mapped[int] = mapped_column(Integer)
    last_seen_at: Mapped[datetime | None]  # the school's newest gateway heartbeat
    reported_at: Mapped[datetime]  # when the regional hub took this view


class SchoolRollup(Base):
    """One point of one school over one period (``5m`` or ``1h``); a newer rollup of the same
    school and period replaces all its points."""

    __tablename__ = "school_rollup"
    __table_args__ = (UniqueConstraint("school_id", "period", "period_start", "point"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    school_id: Mapped[str] = mapped_column(Key)
    district_id: Mapped[str] = mapped_column(Key, index=True)
    period: Mapped[str] = mapped_column(String(4))
    period_start: Mapped[datetime]
    point: Mapped[str] = mapped_column(Key)
    devices: Mapped[int] = mapped_column(Integer)
    windows: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(BigInteger)
    min: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)
    mean: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(200), default="")


class KpiSnapshotRow(Base):
    """One KPI of one district at one snapshot time, as numerator over denominator."""

    __tablename__ = "kpi_snapshot"

    district_id: Mapped[str] = mapped_column(Key, primary_key=True)
    at: Mapped[datetime] = mapped_column(primary_key=True)
    kpi: Mapped[str] = mapped_column(Key, primary_key=True)
    city_id: Mapped[str] = mapped_column(Key, index=True)
    regional_hub_id: Mapped[str] = mapped_column(Key)
    schools: Mapped[int] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(Float)
    numerator: Mapped[float] = mapped_column(Float)
    denominator: Mapped[float] = mapped_column(Float)


class AlertTransition(Base):
    """One state an alert of a regional hub entered; the newest per alert is its state now."""

    __tablename__ = "alert_transition"
    __table_args__ = (
        UniqueConstraint("regional_hub_id", "alert_id", "state", "at"),
        Index("ix_alert_transition_alert", "regional_hub_id", "alert_id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    regional_hub_id: Mapped[str] = mapped_column(Key)
    alert_id: Mapped[int] = mapped_column(BigInteger)
    school_id: Mapped[str | None] = mapped_column(Key, index=True)
    district_id: Mapped[str | None] = mapped_column(Key)
    device: Mapped[str] = mapped_column(Key)
    rule: Mapped[str] = mapped_column(Key)
    severity: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(Key)
    at: Mapped[datetime]
    message: Mapped[str] = mapped_column(String(200), default="")
