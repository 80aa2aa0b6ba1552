"""Uplink messages as a gateway publishes them: (topic, payload) pairs for IngestWorker.process."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from campus_protocol import (
    AlertChange,
    DeviceHealth,
    DeviceStatus,
    Envelope,
    Event,
    EventState,
    Health,
    PointStats,
    Severity,
    SiteIdentity,
    State,
    Telemetry,
    encode,
    uplink_topic,
)
from campus_protocol.messages import Body

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SITE = SiteIdentity(
    city_id="city-1",
    city_name="Example City",
    district_id="d-north",
    district_name="North District",
    school_id="s-1",
    school_name="No. 1 Primary School",
)
CO2 = "sensecap_s_co2_03"  # bundled profile; rule co2_above_hygiene_limit: mean co2 > 1000


EPOCH = "epoch-1"


def message(
    node: str, seq: int, body: Body, *, sent_at: datetime = T0, epoch: str = EPOCH
) -> tuple[str, bytes]:
    envelope = Envelope.wrap(node=node, epoch=epoch, seq=seq, body=body, sent_at=sent_at)
    return uplink_topic(node, envelope.kind), encode(envelope)


def device_health(
    device: str = "co2-1",
    *,
    status: DeviceStatus = DeviceStatus.ONLINE,
    profile: str = CO2,
    room: str = "r101",
    room_name: str = "Room 101",
) -> DeviceHealth:
    return DeviceHealth(
        device=device,
        profile=profile,
        room=room,
        room_name=room_name,
        protocol="modbus",
        status=status,
        last_ok_at=T0 if status is DeviceStatus.ONLINE else None,
        last_error="" if status is DeviceStatus.ONLINE else "timeout after 2.0 s",
    )


def heartbeat(
    node: str = "gw-1",
    *,
    seq: int,
    devices: Sequence[DeviceHealth] = (),
    site: SiteIdentity = SITE,
    sent_at: datetime = T0,
) -> tuple[str, bytes]:
    body = Health(
        site=site,
        agent_version="0.1.0",
        started_at=T0 - timedelta(hours=1),
        uptime_s=3600,
        heartbeat_interval_s=10,
        outbox_depth=0,
        devices=list(devices),
    )
    return message(node, seq, body, sent_at=sent_at)


def stats(*values: float, unit: str = "") -> PointStats:
    return PointStats(
        count=len(values),
        min=min(values),
        max=max(values),
        mean=sum(values) / len(values),
        last=values[-1],
        unit=unit,
    )


def telemetry(
    node: str = "gw-1",
    *,
    seq: int,
    points: dict[str, PointStats],
    device: str = "co2-1",
    profile: str = CO2,
    room: str = "r101",
    start: datetime = T0,
    window_s: float = 10,
    epoch: str = EPOCH,
) -> tuple[str, bytes]:
    body = Telemetry(
        device=device,
        profile=profile,
        room=room,
        window_start=start,
        window_end=start + timedelta(seconds=window_s),
        points=points,
    )
    return message(node, seq, body, sent_at=start + timedelta(seconds=window_s), epoch=epoch)


def state(node: str = "gw-1", *, seq: int, online: bool) -> tuple[str, bytes]:
    return message(node, seq, State(online=online))


def event(
    node: str = "gw-1",
    *,
    seq: int,
    state: EventState,
    rule: str = "gas_above_alarm_1",
    device: str = "gas-1",
    at: datetime = T0,
) -> tuple[str, bytes]:
    body = Event(
        rule=rule,
        device=device,
        point="lel",
        state=state,
        severity=Severity.II,
        value=25.0 if state is EventState.RAISED else 3.0,
        threshold=20.0,
        standard="GB/T 50493-2019 §5.5",
        message="combustible gas above first alarm level",
        at=at,
    )
    return message(node, seq, body)


def alert_change(alert_id: int, *, at: datetime) -> AlertChange:
    """A regional hub's gas alert ``alert_id`` opening at school s01 of district d1."""
    return AlertChange(
        alert_id=alert_id,
        school_id="s01",
        district_id="d1",
        device="gas-1",
        rule="gas_high",
        severity=Severity.II,
        state="open",
        at=at,
    )
