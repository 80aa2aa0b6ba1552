"""Health alarms without storms: offline gateways and devices become alerts, checked every few
seconds by whichever hub process runs ingest.

* A gateway whose heartbeat is overdue (``offline_after_s``) or whose retained state says offline
  raises one ``gateway_offline`` alert (level III) that lists its devices, and a ``status``
  change for the stream; it clears (and resolves itself) when the gateway is heard again.
* While a gateway is offline its devices' own offline alerts are held: none is raised or cleared
  (the gateway alert stands for them; a dead gateway cannot vouch for its devices).
* A device its gateway reports offline for longer than its profile's ``offline_alarm.after_s``
  raises a ``device_offline`` alert at the profile's level (III for safety devices by default),
  unless the profile has an edge offline rule: then the gateway raises it (one alert, not two).
* A hub that cannot hear (its ingest is disconnected) checks nothing, and after it hears again a
  heartbeat is not overdue until ``offline_after_s`` has passed (``cloud_hub.status.Hearing``);
  nor is a registered gateway it never heard (it is shown offline, but raises no alert yet).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol.messages import DeviceStatus, Severity
from cloud_hub.alerts.conditions import follow
from cloud_hub.alerts.escalation import Escalation
from cloud_hub.db import alerts, feed
from cloud_hub.db.alerts import HUB_ACTOR, Alarm, AlertKey
from cloud_hub.db.base import write_transaction
from cloud_hub.db.models import AlertSource, Approval, Device, Gateway
from cloud_hub.settings import HubSettings
from cloud_hub.status import GatewayStatus, Hearing, gateway_status
from device_profiles.rules import ConditionKind, RuleSite
from device_profiles.schema import Profile

log = logging.getLogger(__name__)

GATEWAY_OFFLINE = "gateway_offline"
DEVICE_OFFLINE = "device_offline"
GATEWAY_LEVEL = Severity.III
MAX_LISTED = 50  # devices named in a gateway alert's message


class HealthMonitor:
    """Raise and clear offline alerts from what the database says about gateways and devices."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        profiles: Mapping[str, Profile],
        offline_after_s: float,
        device_offline_alarm_s: float | None = None,
    ) -> None:
        self._sessions = sessions
        self.profiles = profiles
        self.offline_after_s = offline_after_s
        self.device_offline_alarm_s = device_offline_alarm_s  # None: each profile's after_s

    def check(self, *, now: datetime, hearing: Hearing) -> None:
        """One pass over every gateway bound to a school, in one transaction."""
        with write_transaction(self._sessions) as session:
            gateways = list(session.scalars(select(Gateway).where(Gateway.school_id.is_not(None))))
            present = alerts.active_conditions(session, gateway_ids=[g.id for g in gateways])
            devices: dict[str, list[Device]] = {g.id: [] for g in gateways}
            for device in session.scalars(select(Device).where(Device.gateway_id.in_(devices))):
                devices[device.gateway_id].append(device)
            for gateway in gateways:
                self._check_gateway(session, present, gateway, devices[gateway.id], now, hearing)

    def _check_gateway(
        self,
        session: Session,
        present: dict[AlertKey, bool],
        gateway: Gateway,
        devices: list[Device],
        now: datetime,
        hearing: Hearing,
    ) -> None:
        status = gateway_status(
            gateway, now=now, offline_after_s=self.offline_after_s, hearing=hearing
        )
        key = AlertKey(gateway.id, "", GATEWAY_OFFLINE)
        offline = status is GatewayStatus.OFFLINE
        alarm = None
        if offline and not self._never_heard_within_grace(gateway, now, hearing):
            alarm = _gateway_alarm(key, gateway, devices, now)
        if follow(session, present, key=key, alarm=alarm, at=now, actor=HUB_ACTOR):
            reason = "heard again" if not offline else _why_offline(gateway, now)
            feed.record_status(
                session, gateway_id=gateway.id, status=status.value, at=now, reason=reason
            )
        if offline:
            return  # its devices' offline alerts are held while the gateway is down
        for device in devices:
            self._check_device(session, present, device, now)

    def _never_heard_within_grace(self, gateway: Gateway, now: datetime, hearing: Hearing) -> bool:
        """A registered gateway the hub never heard is overdue only ``offline_after_s`` after the
        hub began to hear (a hub starting beside its gateways must not alarm for each of them
        before they had the time to connect)."""
        if gateway.last_seen_at is not None or hearing.since is None:
            return False
        return hearing.clock(now) - hearing.since <= timedelta(seconds=self.offline_after_s)

    def _check_device(
        self, session: Session, present: dict[AlertKey, bool], device: Device, now: datetime
    ) -> None:
        profile = self.profiles.get(device.profile)
        if profile is None or not profile.offline_alarm.enabled or raised_at_edge(profile):
            return
        if device.approval != Approval.APPROVED.value:
            return  # awaiting approval: no alerts
        key = AlertKey(device.gateway_id, device.key, DEVICE_OFFLINE)
        since = device.offline_since
        after_s = self.device_offline_alarm_s or profile.offline_alarm.after_s
        overdue = (
            device.status == DeviceStatus.OFFLINE.value
            and since is not None
            and now - since > timedelta(seconds=after_s)
        )
        alarm = None
        if overdue:
            assert since is not None
            alarm = Alarm(
                key=key,
                source=AlertSource.HEALTH,
                point="",
                severity=profile.offline_level,
                at=now,
                value=(now - since).total_seconds(),
                threshold=after_s,
                standard="",
                message=f"{device.key} ({profile.name}) offline since {since:%Y-%m-%d %H:%M:%S}Z"
                + (f": {device.last_error}" if device.last_error else ""),
            )
        follow(session, present, key=key, alarm=alarm, at=now, actor=HUB_ACTOR)


def raised_at_edge(profile: Profile) -> bool:
    """Whether the profile's own edge rules raise an offline alert (the safety profiles'
    ``safety_device_offline``): the gateway reports it as an event, and a second alert from the hub
    for the same stopped device would only add to the storm."""
    edge = (rule for rule in profile.alerts if rule.where is RuleSite.EDGE)
    return any(rule.kind is ConditionKind.OFFLINE for rule in edge)


def _gateway_alarm(key: AlertKey, gateway: Gateway, devices: list[Device], now: datetime) -> Alarm:
    names = sorted(d.key for d in devices)
    listed = ", ".join(names[:MAX_LISTED]) + (" …" if len(names) > MAX_LISTED else "")
    silent_s = (now - gateway.last_seen_at).total_seconds() if gateway.last_seen_at else 0.0
    return Alarm(
        key=key,
        source=AlertSource.HEALTH,
        point="",
        severity=GATEWAY_LEVEL,
        at=now,
        value=silent_s,
        threshold=0.0,
        message=f"gateway {gateway.id} offline ({_why_offline(gateway, now)}); "
        f"{len(names)} devices: {listed}",
    )


def _why_offline(gateway: Gateway, now: datetime) -> str:
    if gateway.online is False:
        return "it said offline"
    if gateway.last_seen_at is None:
        return "never heard"
    return f"no heartbeat for {(now - gateway.last_seen_at).total_seconds():.0f} s"


class HealthRunner:
    """Every ``interval_s``: runs ``escalation``, and ``monitor.check`` while ``connected()`` says
    ingest hears the broker, keeping ``hearing`` (what the API judges liveness by) up to date."""

    def __init__(
        self,
        monitor: HealthMonitor,
        *,
        escalation: Escalation | None = None,
        connected: Callable[[], bool],
        interval_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.monitor = monitor
        self.escalation = escalation
        self.connected = connected
        self.interval_s = interval_s
        self.clock = clock
        started = clock()  # gateways are judged as of start-up until ingest connects
        self.hearing = Hearing(since=started, lost_at=started)

    def tick(self) -> None:
        """Escalate what is due; update ``hearing``; check health when the hub hears its broker."""
        now = self.clock()
        if self.escalation is not None:
            try:
                self.escalation.run(now=now)
            except SQLAlchemyError as exc:
                log.warning("escalation failed: %s", exc)
        if not self.connected():
            if self.hearing.lost_at is None:
                self.hearing = Hearing(since=self.hearing.since, lost_at=now)
            return
        if self.hearing.lost_at is not None:
            self.hearing = Hearing(since=now)
        try:
            self.monitor.check(now=now, hearing=self.hearing)
        except SQLAlchemyError as exc:  # the database is away: /healthz says so; try again
            log.warning("health check failed: %s", exc)

    async def run(self) -> None:
        while True:
            await asyncio.to_thread(self.tick)
            await asyncio.sleep(self.interval_s)


def health_runner(
    settings: HubSettings,
    sessions: sessionmaker[Session],
    *,
    profiles: Mapping[str, Profile],
    connected: Callable[[], bool],
) -> HealthRunner:
    """The health checks and escalation of a hub process that runs ingest, as ``settings`` say."""
    monitor = HealthMonitor(
        sessions,
        profiles=profiles,
        offline_after_s=settings.offline_after_s,
        device_offline_alarm_s=settings.device_offline_alarm_s,
    )
    return HealthRunner(
        monitor,
        escalation=Escalation(sessions, settings.escalation),
        connected=connected,
        interval_s=settings.health_check_s,
    )
