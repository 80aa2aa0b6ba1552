"""Liveness rules: when a gateway, a device and a school count as online, degraded or offline.

- A gateway is online when it has sent a heartbeat within ``offline_after_s`` and its retained
  state does not say offline (no state message yet counts as not offline).
- A device's status is the one its gateway last reported, or ``unknown`` while the gateway is
  offline (a dead gateway cannot vouch for its devices).
- A school is ``online`` when its most recently seen gateway is online and every device online,
  ``degraded`` when that gateway is online but some device is not, ``offline`` otherwise
  (gateway offline, heartbeat stale, or never seen).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from campus_protocol.messages import DeviceStatus
from cloud_hub.db.models import Approval, Device, Gateway


class SchoolStatus(StrEnum):
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


class GatewayStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True)
class Hearing:
    """Whether the hub itself could hear its gateways: a hub that lost its broker must not call
    every school offline. ``lost_at`` is set while its ingest is disconnected (heartbeats are
    then judged as of that moment); ``since`` is when it last (re)connected (a heartbeat is not
    overdue before ``offline_after_s`` has passed since then)."""

    since: datetime | None = None
    lost_at: datetime | None = None

    def clock(self, now: datetime) -> datetime:
        """The moment heartbeats are judged at."""
        return min(now, self.lost_at) if self.lost_at is not None else now


ALWAYS_HEARD = Hearing()


def gateway_status(
    gateway: Gateway | None,
    *,
    now: datetime,
    offline_after_s: float,
    hearing: Hearing = ALWAYS_HEARD,
) -> GatewayStatus:
    if gateway is None or gateway.last_seen_at is None or gateway.online is False:
        return GatewayStatus.OFFLINE
    heard = gateway.last_seen_at
    if hearing.since is not None and hearing.since > heard:
        heard = hearing.since
    if hearing.clock(now) - heard > timedelta(seconds=offline_after_s):
        return GatewayStatus.OFFLINE
    return GatewayStatus.ONLINE


def device_status(device: Device, *, gateway_online: bool) -> DeviceStatus:
    return DeviceStatus(device.status) if gateway_online else DeviceStatus.UNKNOWN


@dataclass(frozen=True)
class SchoolSummary:
    status: SchoolStatus
    gateway: Gateway | None
    gateway_status: GatewayStatus
    devices_total: int
    devices_online: int


def summarize_school(
    *,
    gateways: Sequence[Gateway],
    devices: Sequence[Device],
    now: datetime,
    offline_after_s: float,
    hearing: Hearing = ALWAYS_HEARD,
) -> SchoolSummary:
    """The school's status from its gateways (most recently seen first) and all their devices;
    only approved devices count."""
    devices = [d for d in devices if d.approval == Approval.APPROVED.value]
    live = {
        g.id: gateway_status(g, now=now, offline_after_s=offline_after_s, hearing=hearing)
        is GatewayStatus.ONLINE
        for g in gateways
    }
    gateway = gateways[0] if gateways else None
    g_status = gateway_status(gateway, now=now, offline_after_s=offline_after_s, hearing=hearing)
    online = g_status is GatewayStatus.ONLINE
    devices_online = sum(
        device_status(d, gateway_online=live.get(d.gateway_id, False)) is DeviceStatus.ONLINE
        for d in devices
    )
    if not online:
        status = SchoolStatus.OFFLINE
    elif devices_online == len(devices):
        status = SchoolStatus.ONLINE
    else:
        status = SchoolStatus.DEGRADED
    return SchoolSummary(status, gateway, g_status, len(devices), devices_online)
