"""Hub ingest: consume uplink messages and store each one as accepted, duplicate, rejected or kept.

``IngestWorker.process`` is the whole pipeline for one message (parse topic -> decode -> dedupe ->
store, in one transaction) and does no network I/O, so tests drive it directly. ``run`` feeds it
from the hub broker: QoS 1, persistent session under a stable client id, reconnect with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import random
import time
from collections import Counter as Tally
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import aiomqtt
from prometheus_client import Counter
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import (
    DecodeError,
    Envelope,
    Event,
    EventState,
    Health,
    InvalidTopic,
    MessageKind,
    State,
    Telemetry,
    decode,
    hub_subscription,
    parse_topic,
)
from campus_protocol.topics import Direction
from cloud_hub.db import alerts, devices, telemetry, topology
from cloud_hub.db.models import AlertSource, Device, Gateway
from cloud_hub.ingest.dedupe import claim
from cloud_hub.settings import BrokerSettings
from device_profiles.loader import load_profiles
from device_profiles.schema import Comparison, Profile

log = logging.getLogger(__name__)

INGEST_MESSAGES = Counter(
    "campus_ingest_messages_total", "Uplink messages handled by hub ingest.", ["kind", "outcome"]
)
INGEST_ERRORS = Counter(
    "campus_ingest_errors_total", "Uplink messages rejected by hub ingest.", ["error_type", "stage"]
)

COMPARE: dict[Comparison, Callable[[float, float], bool]] = {
    Comparison.GT: operator.gt,
    Comparison.GE: operator.ge,
    Comparison.LT: operator.lt,
    Comparison.LE: operator.le,
    Comparison.EQ: operator.eq,
    Comparison.NE: operator.ne,
}
_MIN_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 30.0
_LOG_EVERY_S = 10.0


class OutcomeStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # (node, seq) already stored: acknowledged, nothing written
    REJECTED = "rejected"  # poison: counted with a reason and dropped, never retried
    KEPT = "kept"  # transient (database unavailable): retry the same message later


@dataclass(frozen=True)
class Outcome:
    status: OutcomeStatus
    kind: str  # message kind from the topic, or "unknown"
    reason: str | None = None  # bounded error code for rejected / kept
    detail: str = ""


class Rejected(Exception):
    """A decoded message the hub cannot store; ``reason`` and ``stage`` label the error counter."""

    def __init__(self, reason: str, detail: str, *, stage: str = "processing") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.stage = stage
        self.detail = detail


class IngestWorker:
    """Decode, dedupe and store uplink messages; counts are kept as plain attributes too."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        broker: BrokerSettings | None = None,
        share_group: str | None = None,
        profiles: Mapping[str, Profile] | None = None,
    ) -> None:
        self._sessions = session_factory
        self.broker = broker or BrokerSettings()
        self._share_group = share_group
        self.profiles: Mapping[str, Profile] = profiles if profiles is not None else load_profiles()
        self.accepted = 0
        self.duplicates = 0
        self.rejected = 0
        self.kept = 0
        self.rejections: Tally[str] = Tally()  # by reason
        self.connected = asyncio.Event()
        self._last_logged: dict[str, float] = {}

    # -- one message ---------------------------------------------------------------------------

    def process(self, topic: str, payload: bytes, *, now: datetime | None = None) -> Outcome:
        """Handle one message in one transaction; never raises for bad input or a database error."""
        now = now or datetime.now(UTC)
        kind = "unknown"
        try:
            parsed = parse_topic(topic)
            kind = parsed.kind.value
            if parsed.direction is not Direction.UP:
                raise InvalidTopic(f"{topic[:200]!r} is not an uplink topic")
            envelope = decode(payload, topic=parsed)
        except DecodeError as exc:
            return self._count(
                Outcome(OutcomeStatus.REJECTED, kind, exc.reason, str(exc)), "receiving"
            )
        try:
            with self._sessions.begin() as session:
                # state is retained and doubles as the MQTT will: it may repeat a seq legitimately
                fresh = envelope.kind is MessageKind.STATE or claim(
                    session, node=envelope.node, seq=envelope.seq
                )
                if fresh:
                    self._store(session, envelope, now)
        except Rejected as exc:
            return self._count(
                Outcome(OutcomeStatus.REJECTED, kind, exc.reason, exc.detail), exc.stage
            )
        except (OperationalError, InterfaceError) as exc:
            return self._count(Outcome(OutcomeStatus.KEPT, kind, "storage_unavailable", str(exc)))
        except SQLAlchemyError as exc:
            return self._count(
                Outcome(OutcomeStatus.REJECTED, kind, "storage_error", str(exc)), "sending"
            )
        status = OutcomeStatus.ACCEPTED if fresh else OutcomeStatus.DUPLICATE
        return self._count(Outcome(status, kind))

    def _store(self, session: Session, envelope: Envelope, now: datetime) -> None:
        body = envelope.body
        if isinstance(body, Health):
            gateway, newest = topology.record_heartbeat(
                session, node=envelope.node, health=body, sent_at=envelope.sent_at, received_at=now
            )
            if newest:
                for health in body.devices:
                    devices.apply_device_health(session, gateway_id=gateway.id, health=health)
        elif isinstance(body, State):
            topology.set_gateway_state(session, node=envelope.node, online=body.online, at=now)
        elif isinstance(body, Telemetry):
            self._store_telemetry(session, envelope.node, body)
        elif isinstance(body, Event):
            self._store_event(session, envelope.node, body)
        # cmdres / reported: nothing to store yet beyond the dedupe claim

    def _store_telemetry(self, session: Session, node: str, body: Telemetry) -> None:
        profile = self.profiles.get(body.profile)
        if profile is None:
            raise Rejected(
                "unknown_profile", f"device {body.device!r}: unknown profile {body.profile!r}"
            )
        gateway = topology.ensure_gateway(session, node=node)
        device = devices.ensure_device(
            session,
            gateway_id=node,
            key=body.device,
            room=body.room,
            profile=body.profile,
            protocol=profile.protocol,
        )
        telemetry.store_telemetry(session, device=device, telemetry=body)
        if device.last_ok_at is None or body.window_end > device.last_ok_at:
            device.last_ok_at = body.window_end
        self._evaluate_rules(session, gateway, device, profile, body)

    def _evaluate_rules(
        self, session: Session, gateway: Gateway, device: Device, profile: Profile, body: Telemetry
    ) -> None:
        """Open an alert when a profile rule fires and none is active; clear it when it stops."""
        for rule in profile.alerts:
            stats = body.points.get(rule.point)
            if stats is None:
                continue
            value = float(getattr(stats, rule.stat.value))
            firing = COMPARE[rule.op](value, rule.threshold)
            active = alerts.active_alert(
                session,
                gateway_id=gateway.id,
                device=device.key,
                rule=rule.id,
                source=AlertSource.HUB,
            )
            if firing and active is None:
                alerts.open_alert(
                    session,
                    school_id=gateway.school_id,
                    gateway_id=gateway.id,
                    device=device.key,
                    point=rule.point,
                    rule=rule.id,
                    severity=rule.severity.value,
                    source=AlertSource.HUB,
                    at=body.window_end,
                    value=value,
                    threshold=rule.threshold,
                    standard=rule.standard,
                    message=rule.message,
                )
            elif not firing and active is not None:
                alerts.clear_alert(active, at=body.window_end)

    def _store_event(self, session: Session, node: str, body: Event) -> None:
        gateway = topology.ensure_gateway(session, node=node)
        active = alerts.active_alert(
            session, gateway_id=node, device=body.device, rule=body.rule, source=AlertSource.EDGE
        )
        if body.state is EventState.RAISED and active is None:
            alerts.open_alert(
                session,
                school_id=gateway.school_id,
                gateway_id=node,
                device=body.device,
                point=body.point,
                rule=body.rule,
                severity=body.severity.value,
                source=AlertSource.EDGE,
                at=body.at,
                value=body.value,
                threshold=body.threshold,
                standard=body.standard,
                message=body.message,
            )
        elif body.state is EventState.CLEARED and active is not None:
            alerts.clear_alert(active, at=body.at)

    def _count(self, outcome: Outcome, stage: str = "processing") -> Outcome:
        INGEST_MESSAGES.labels(kind=outcome.kind, outcome=outcome.status.value).inc()
        if outcome.status is OutcomeStatus.ACCEPTED:
            self.accepted += 1
        elif outcome.status is OutcomeStatus.DUPLICATE:
            self.duplicates += 1
        elif outcome.status is OutcomeStatus.KEPT:
            self.kept += 1
            self._log_limited(outcome, logging.ERROR)
        else:
            assert outcome.reason is not None
            self.rejected += 1
            self.rejections[outcome.reason] += 1
            INGEST_ERRORS.labels(error_type=outcome.reason, stage=stage).inc()
            self._log_limited(outcome, logging.WARNING)
        return outcome

    def _log_limited(self, outcome: Outcome, level: int) -> None:
        key = f"{outcome.status}:{outcome.reason}"
        at = time.monotonic()
        if at - self._last_logged.get(key, float("-inf")) >= _LOG_EVERY_S:
            self._last_logged[key] = at
            log.log(
                level,
                "ingest %s %s message: %s",
                outcome.status.value,
                outcome.kind,
                outcome.detail,
            )

    # -- the broker loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Consume the hub subscription until cancelled, reconnecting with jittered backoff."""
        delay = _MIN_BACKOFF_S
        failing = False
        while True:
            try:
                async with make_client(self.broker, identifier=self.broker.client_id) as client:
                    await client.subscribe(hub_subscription(self._share_group), qos=1)
                    if failing:
                        log.info(
                            "hub broker %s:%s: reconnected", self.broker.host, self.broker.port
                        )
                    failing, delay = False, _MIN_BACKOFF_S
                    self.connected.set()
                    async for message in client.messages:
                        await self._handle(str(message.topic), _as_bytes(message.payload))
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                if not failing:
                    log.error("hub broker %s:%s: %s", self.broker.host, self.broker.port, exc)
                failing = True
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, _MAX_BACKOFF_S)

    async def _handle(self, topic: str, payload: bytes) -> None:
        delay = _MIN_BACKOFF_S
        while (await asyncio.to_thread(self.process, topic, payload)).status is OutcomeStatus.KEPT:
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF_S)


def make_client(
    broker: BrokerSettings, *, identifier: str, persistent: bool = True
) -> aiomqtt.Client:
    """A client for the hub broker; ``persistent`` keeps the session (and queued QoS 1 messages)."""
    tls = None
    if broker.tls is not None:
        tls = aiomqtt.TLSParameters(
            ca_certs=str(broker.tls.ca_file),
            certfile=str(broker.tls.cert_file) if broker.tls.cert_file else None,
            keyfile=str(broker.tls.key_file) if broker.tls.key_file else None,
        )
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=broker.username,
        password=broker.password.get_secret_value() or None,
        identifier=identifier,
        clean_session=not persistent,
        keepalive=broker.keepalive_s,
        tls_params=tls,
        timeout=10,
    )


def _as_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode() if payload is not None else b""
