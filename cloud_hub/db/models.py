"""Hub tables: topology (district, school, gateway, room, device), telemetry, alerts, dedupe."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloud_hub.alerts.lifecycle import AlertState
from cloud_hub.db.base import Base

Key = String(64)


class AlertSource(StrEnum):
    HUB = "hub"  # threshold evaluated by the hub on telemetry windows
    EDGE = "edge"  # Event raised by the gateway's rules
    HEALTH = "health"  # device or gateway offline, detected by the hub


class District(Base):
    __tablename__ = "district"

    id: Mapped[str] = mapped_column(Key, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    city_id: Mapped[str] = mapped_column(Key, index=True)
    city_name: Mapped[str] = mapped_column(String(200), default="")


class School(Base):
    __tablename__ = "school"

    id: Mapped[str] = mapped_column(Key, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    district_id: Mapped[str] = mapped_column(ForeignKey("district.id"), index=True)

    district: Mapped[District] = relationship(lazy="joined")


class Gateway(Base):
    """A school's edge agent; ``id`` is its node id. ``online`` is None until a state message."""

    __tablename__ = "gateway"

    id: Mapped[str] = mapped_column(Key, primary_key=True)
    school_id: Mapped[str | None] = mapped_column(ForeignKey("school.id"), index=True)
    online: Mapped[bool | None] = mapped_column(default=None)
    state_changed_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]  # hub clock when the last heartbeat arrived
    heartbeat_sent_at: Mapped[datetime | None]  # gateway clock of the heartbeat last applied
    agent_version: Mapped[str] = mapped_column(String(200), default="")
    heartbeat_interval_s: Mapped[float | None] = mapped_column(Float)
    outbox_depth: Mapped[int | None] = mapped_column(Integer)
    registered_at: Mapped[datetime | None]  # its devices were imported: others it reports wait


class Room(Base):
    """A room as a gateway names it; ``key`` is the room id in the agent's config."""

    __tablename__ = "room"
    __table_args__ = (UniqueConstraint("gateway_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateway.id"))
    key: Mapped[str] = mapped_column(Key)
    name: Mapped[str] = mapped_column(String(200), default="")
    type: Mapped[str] = mapped_column(String(32), default="")  # classroom, lab, canteen …


class Approval(StrEnum):
    """Whether a device is part of the registry (审核备案): only approved devices are counted in
    status and KPIs and raise alerts; a pending device's data is stored all the same."""

    APPROVED = "approved"
    PENDING = "pending"
    REJECTED = "rejected"


class Device(Base):
    """A device behind a gateway; ``key`` is its id in the agent's config (unique per gateway)."""

    __tablename__ = "device"
    __table_args__ = (UniqueConstraint("gateway_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateway.id"), index=True)
    key: Mapped[str] = mapped_column(Key)
    room_id: Mapped[int | None] = mapped_column(ForeignKey("room.id"))
    profile: Mapped[str] = mapped_column(Key)
    protocol: Mapped[str] = mapped_column(Key, default="")
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    last_ok_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(String(500), default="")
    last_seen_at: Mapped[datetime | None]  # end of the newest telemetry window
    offline_since: Mapped[datetime | None]  # when its gateway first reported it offline
    approval: Mapped[str] = mapped_column(String(16), default=Approval.APPROVED.value)
    approval_by: Mapped[str] = mapped_column(String(100), default="")
    approval_at: Mapped[datetime | None]

    gateway: Mapped[Gateway] = relationship(lazy="joined")
    room: Mapped[Room | None] = relationship(lazy="joined")


class LatestValue(Base):
    __tablename__ = "latest_value"

    device_id: Mapped[int] = mapped_column(ForeignKey("device.id"), primary_key=True)
    point: Mapped[str] = mapped_column(Key, primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime]


class TelemetryWindow(Base):
    __tablename__ = "telemetry_window"
    __table_args__ = (UniqueConstraint("device_id", "window_start", "point"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    # no foreign key (migration 0005): ingest writes only ids read from ``device``, and the
    # batch's ``latest_value`` rows, which keep theirs, refuse a device that is not there
    device_id: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    point: Mapped[str] = mapped_column(Key)
    count: Mapped[int] = mapped_column(Integer)
    min: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)
    mean: Mapped[float] = mapped_column(Float)
    last: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(200), default="")


class SeenSeq(Base):
    """One row per accepted (node, epoch, seq): the dedupe ledger, pruned after a retention."""

    __tablename__ = "seen_seq"
    __table_args__ = (Index("ix_seen_seq_claimed_at", "claimed_at"),)

    node: Mapped[str] = mapped_column(Key, primary_key=True)
    epoch: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    claimed_at: Mapped[datetime]


#: the predicate of "active" in SQL, shared by the unique partial index and the upsert's target
ALERT_ACTIVE_SQL = "state <> 'resolved'"


class Alert(Base):
    """An alert from a hub threshold rule, an edge event or a health alarm.

    At most one is active (not resolved) per (gateway, device, rule): the partial unique index
    ``uq_alert_active`` enforces it, and a raise is one atomic upsert on it
    (``cloud_hub.db.alerts.raise_alert``). ``opened_at`` is when it was first seen, ``cleared_at``
    when its condition last went back to normal (None while present)."""

    __tablename__ = "alert"
    __table_args__ = (
        Index(
            "uq_alert_active",
            "gateway_id",
            "device",
            "rule",
            unique=True,
            sqlite_where=text(ALERT_ACTIVE_SQL),
            postgresql_where=text(ALERT_ACTIVE_SQL),
        ),
        Index("ix_alert_opened_at", "opened_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    school_id: Mapped[str | None] = mapped_column(ForeignKey("school.id"), index=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateway.id"))
    device: Mapped[str] = mapped_column(Key)
    point: Mapped[str] = mapped_column(Key)
    rule: Mapped[str] = mapped_column(Key)
    severity: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), default=AlertState.OPEN.value)
    source: Mapped[str] = mapped_column(String(8))
    opened_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    cleared_at: Mapped[datetime | None]
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    standard: Mapped[str] = mapped_column(String(200), default="")
    message: Mapped[str] = mapped_column(String(500), default="")
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str] = mapped_column(String(100), default="")
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str] = mapped_column(String(100), default="")
    escalation_tier: Mapped[int] = mapped_column(Integer, default=0)  # 0 school, 1 district, 2 city
    escalated_at: Mapped[datetime | None]


class AlertChange(Base):
    """One transition of one alert: what, from which state to which, who, when and why."""

    __tablename__ = "alert_change"
    __table_args__ = (Index("ix_alert_change_alert", "alert_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"))
    school_id: Mapped[str | None] = mapped_column(Key, index=True)  # for scoped streams
    at: Mapped[datetime]
    transition: Mapped[str] = mapped_column(String(16))
    from_state: Mapped[str | None] = mapped_column(String(16))  # None: the raise that opened it
    to_state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(100))  # username, "gateway:<id>" or "hub"
    comment: Mapped[str] = mapped_column(String(500), default="")


class StatusChange(Base):
    """A gateway (``device`` = "") or device going online, offline or unknown, as the hub saw it:
    the stream's record of status changes."""

    __tablename__ = "status_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    school_id: Mapped[str | None] = mapped_column(Key, index=True)
    gateway_id: Mapped[str] = mapped_column(Key)
    device: Mapped[str] = mapped_column(Key, default="")
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200), default="")


class WebhookDelivery(Base):
    """One alert transition to deliver to one webhook, and how that went: the delivery log."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("webhook", "alert_change_id"),
        Index("ix_webhook_delivery_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook: Mapped[str] = mapped_column(Key)
    alert_change_id: Mapped[int] = mapped_column(ForeignKey("alert_change.id"))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    payload: Mapped[str] = mapped_column(String(4000))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    delivered_at: Mapped[datetime | None]


class DeviceCommandStatus(StrEnum):
    PENDING = "pending"  # created, not yet acknowledged by the gateway
    DELIVERED = "delivered"  # the gateway accepted it and is executing it
    SUCCEEDED = "succeeded"  # executed and read back as requested
    FAILED = "failed"  # refused by the gateway, or executed without the requested effect
    EXPIRED = "expired"  # still pending when its time-to-live ran out


class DeviceCommand(Base):
    """A command sent to a device through its gateway, or (origin ``local``) the audit record of
    a local action the gateway took on its own."""

    __tablename__ = "device_command"
    __table_args__ = (Index("ix_device_command_due", "status", "expires_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateway.id"), index=True)
    device: Mapped[str] = mapped_column(Key)
    name: Mapped[str] = mapped_column(String(16))  # write | action
    target: Mapped[str] = mapped_column(String(64))  # the point written or the action run
    value: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(500), default="")
    readback: Mapped[float | None] = mapped_column(Float)
    # writes the gateway tried (1 + its retries at most; 0 until it reports, or when refused)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    origin: Mapped[str] = mapped_column(String(8), default="hub")  # hub | local
    requested_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    sends: Mapped[int] = mapped_column(Integer, default=0)
