"""Hub ingest: store uplink messages, each one ending accepted, duplicate, rejected or kept.

``IngestWorker.process_batch`` is the whole pipeline for a batch (parse topic -> decode -> dedupe ->
store): one transaction with set-based statements (one dedupe claim for every message, one
executemany for every telemetry window, one for the latest values). When any message fails in that
pass, the batch is rolled back and replayed with a SAVEPOINT per message, so a poison message is
rejected alone and its neighbours are stored. It does no network I/O, so tests drive it directly
(``process`` is a batch of one); ``cloud_hub.ingest.consumer`` feeds it from the hub broker.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from prometheus_client import Counter
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import (
    FEDERATION_KINDS,
    CommandResult,
    DecodeError,
    Envelope,
    Event,
    Health,
    InvalidTopic,
    MessageKind,
    State,
    Telemetry,
    TelemetryBatch,
    decode,
    parse_topic,
)
from campus_protocol.errors import UnexpectedKind
from campus_protocol.topics import Direction
from cloud_hub.alerts.conditions import apply_event, follow, hub_rule_conditions
from cloud_hub.db import alerts, commands, devices, topology
from cloud_hub.db.alerts import HUB_ACTOR
from cloud_hub.db.base import WRITER, write_transaction
from cloud_hub.db.models import Approval
from cloud_hub.db.telemetry import TelemetryRows
from cloud_hub.ingest import collector, dedupe
from cloud_hub.ingest.checks import (
    IngestLimits,
    check_device_budget,
    check_not_future,
    check_site,
)
from cloud_hub.ingest.dedupe import ClaimKey, claim, claim_many
from cloud_hub.ingest.rejections import Rejected
from cloud_hub.ingest.view import BatchView, DeviceKey
from device_profiles.loader import load_profiles
from device_profiles.schema import Profile

log = logging.getLogger(__name__)

INGEST_MESSAGES = Counter(
    "campus_ingest_messages_total", "Uplink messages handled by hub ingest.", ["kind", "outcome"]
)
INGEST_ERRORS = Counter(
    "campus_ingest_errors_total", "Uplink messages rejected by hub ingest.", ["error_type", "stage"]
)

INGEST_REPLAYS = Counter(
    "campus_ingest_replayed_batches_total",
    "Batches whose set-based pass failed and were replayed with a savepoint per message.",
)
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


@dataclass(frozen=True)
class _Decoded:
    index: int  # position in the batch
    envelope: Envelope


WindowSink = Callable[[Sequence[tuple[str, Telemetry]]], None]
"""Takes ``(node, window)`` pairs once their batch committed (e.g. ``InfluxSink.offer``); must not
block."""


def _claims(envelope: Envelope) -> bool:
    """State is retained and doubles as the MQTT will: it may repeat a seq legitimately."""
    return envelope.kind is not MessageKind.STATE


def _claim_key(envelope: Envelope) -> ClaimKey:
    return (envelope.node, envelope.epoch, envelope.seq)


class OutcomeCounter:
    """A worker's outcomes counted as plain attributes and in the Prometheus series; both the
    gateways' and the central hub's workers count the same way (each logs in its own)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.duplicates = 0
        self.rejected = 0
        self.kept = 0
        self.rejections: Tally[str] = Tally()  # by reason

    def _tally(self, outcome: Outcome, stage: str = "processing") -> None:
        INGEST_MESSAGES.labels(kind=outcome.kind, outcome=outcome.status.value).inc()
        if outcome.status is OutcomeStatus.ACCEPTED:
            self.accepted += 1
        elif outcome.status is OutcomeStatus.DUPLICATE:
            self.duplicates += 1
        elif outcome.status is OutcomeStatus.KEPT:
            self.kept += 1
        else:
            assert outcome.reason is not None
            self.rejected += 1
            self.rejections[outcome.reason] += 1
            INGEST_ERRORS.labels(error_type=outcome.reason, stage=stage).inc()


class IngestWorker(OutcomeCounter):
    """Decode, dedupe and store uplink messages; counts are kept as plain attributes too.

    Device ids and known gateways are cached per worker (only after the batch that learned them
    committed); active alerts are read from the database once per batch, so several workers can
    share one database. One batch at a time per worker.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        profiles: Mapping[str, Profile] | None = None,
        limits: IngestLimits | None = None,
        window_sink: WindowSink | None = None,
    ) -> None:
        self._sessions = session_factory
        self._window_sink = window_sink
        self.limits = limits or IngestLimits()
        self.profiles: Mapping[str, Profile] = profiles if profiles is not None else load_profiles()
        super().__init__()
        self.rejected_windows: Tally[str] = Tally()  # windows skipped inside stored batches
        self._last_logged: dict[str, float] = {}
        self._device_ids: dict[DeviceKey, int] = {}
        self._held: set[DeviceKey] = set()  # this batch's devices awaiting approval
        self._gateways: dict[str, bool] = {}
        self._skipped: list[Rejected] = []  # windows skipped by the batch being stored
        self._stored: list[tuple[str, Telemetry]] = []  # windows for the sink, once committed
        self._checked_until: datetime | None = None  # the latest window end checked in this batch
        self.replayed_batches = 0  # optimistic passes that fell back to a savepoint per message

    # -- messages ------------------------------------------------------------------------------

    def process(self, topic: str, payload: bytes, *, now: datetime | None = None) -> Outcome:
        """Handle one message in one transaction (a batch of one)."""
        return self.process_batch([(topic, payload)], now=now)[0]

    def process_batch(
        self, messages: Sequence[tuple[str, bytes]], *, now: datetime | None = None
    ) -> list[Outcome]:
        """Handle ``(topic, payload)`` messages; one outcome each, in order. Never raises for bad
        input or a database error.

        Every message is decoded first (a decode error is rejected without touching the database),
        then the rest are stored in one set-based transaction, or, when a message fails in it, in
        one transaction with a SAVEPOINT each: a message that fails to store is rolled back alone
        and rejected. When the database itself fails (unavailable,
        locked, commit failed) nothing is stored and every decoded message is kept.
        """
        with collector.paused():
            return self._process_batch(messages, now or datetime.now(UTC))

    def _process_batch(self, messages: Sequence[tuple[str, bytes]], now: datetime) -> list[Outcome]:
        results: dict[int, tuple[Outcome, str]] = {}  # by position: outcome, error counter stage
        decoded: list[_Decoded] = []
        for index, (topic, payload) in enumerate(messages):
            kind = "unknown"
            try:
                parsed = parse_topic(topic)
                kind = parsed.kind.value
                if parsed.direction is not Direction.UP:
                    raise InvalidTopic(f"{topic[:200]!r} is not an uplink topic")
                if parsed.kind in FEDERATION_KINDS:
                    raise UnexpectedKind(f"{kind!r} is for the central hub, not a gateway's")
                decoded.append(_Decoded(index, decode(payload, topic=parsed)))
            except DecodeError as exc:
                outcome = Outcome(OutcomeStatus.REJECTED, kind, exc.reason, str(exc))
                results[index] = (outcome, "receiving")
        if decoded:
            try:
                results.update(self._store_batch(decoded, now))
            except SQLAlchemyError as exc:
                for item in decoded:
                    kind = item.envelope.kind.value
                    kept = Outcome(OutcomeStatus.KEPT, kind, "storage_unavailable", str(exc))
                    results[item.index] = (kept, "processing")
        return [self._count(*results[index]) for index in range(len(messages))]

    def prune_claims(self, older_than: datetime) -> int:
        """Delete dedupe claims made before ``older_than``; never raises (logged instead)."""
        try:
            with write_transaction(self._sessions) as session:
                pruned = dedupe.prune(session, older_than=older_than)
        except SQLAlchemyError as exc:
            log.warning("pruning dedupe claims failed: %s", exc)
            return 0
        if pruned:
            log.info("pruned %d dedupe claims older than %s", pruned, older_than.isoformat())
        return pruned

    def _store_batch(
        self, batch: Sequence[_Decoded], now: datetime
    ) -> dict[int, tuple[Outcome, str]]:
        """One optimistic set-based pass; when any message in it fails, the batch is rolled back
        and replayed with a SAVEPOINT per message, so the failure stays that message's own."""
        try:
            return self._store_set_based(batch, now)
        except (OperationalError, InterfaceError):
            raise  # the database itself, not a message: the whole batch is kept
        except (Rejected, SQLAlchemyError, OverflowError):
            INGEST_REPLAYS.inc()
            self.replayed_batches += 1
        return self._store_with_savepoints(batch, now)

    def _begin(self, session: Session, batch: Sequence[_Decoded]) -> BatchView:
        session.connection(execution_options=WRITER)
        self._skipped, self._stored = [], []
        self._checked_until = None
        alerting = self._alerting_nodes(batch)
        active = alerts.active_conditions(session, gateway_ids=alerting)
        # devices awaiting approval raise no alerts (their data is stored all the same)
        self._held = devices.unapproved_keys(session, gateway_ids=alerting)
        return BatchView(devices=self._device_ids, gateways=self._gateways, active_alerts=active)

    def _store_set_based(
        self, batch: Sequence[_Decoded], now: datetime
    ) -> dict[int, tuple[Outcome, str]]:
        """Claim every message in one statement, store the fresh ones, write all their windows
        and latest values in two statements; raises on the first message that fails."""
        results: dict[int, tuple[Outcome, str]] = {}
        with self._sessions() as session, session.begin():
            view = self._begin(session, batch)
            rows = TelemetryRows.of(session)
            for item in batch:
                check_not_future(item.envelope.sent_at, now, self.limits, what="sent_at")
            claimed = claim_many(
                session, [_claim_key(i.envelope) for i in batch if _claims(i.envelope)], at=now
            )
            for item in batch:
                envelope = item.envelope
                fresh = not _claims(envelope) or _claim_key(envelope) in claimed
                claimed.discard(_claim_key(envelope))  # a repeat inside the batch is a duplicate
                if fresh:
                    self._store(session, view, envelope, now, rows)
                status = OutcomeStatus.ACCEPTED if fresh else OutcomeStatus.DUPLICATE
                results[item.index] = (Outcome(status, envelope.kind.value), "processing")
            self._write(session, view, rows)
            devices.advance_seen(session, newest=view.newest)
        view.release()
        self._committed(view)
        return results

    def _store_with_savepoints(
        self, batch: Sequence[_Decoded], now: datetime
    ) -> dict[int, tuple[Outcome, str]]:
        results: dict[int, tuple[Outcome, str]] = {}
        with self._sessions() as session, session.begin():
            view = self._begin(session, batch)
            for item in batch:
                results[item.index] = self._store_one(session, view, item.envelope, now)
            devices.advance_seen(session, newest=view.newest)
        self._committed(view)
        return results

    @staticmethod
    def _write(session: Session, view: BatchView, rows: TelemetryRows) -> None:
        """Write the gathered windows; the view learns each device's newest one."""
        for device_id, end in rows.newest.items():
            view.saw_window(device_id, end)
        rows.write(session)

    def _committed(self, view: BatchView) -> None:
        view.commit()
        if self._window_sink is not None and self._stored:
            self._window_sink(self._stored)
        for skipped in self._skipped:
            self.rejected_windows[skipped.reason] += 1
            INGEST_ERRORS.labels(error_type=skipped.reason, stage=skipped.stage).inc()
            outcome = Outcome(
                OutcomeStatus.REJECTED, "telemetry", skipped.reason, f"window: {skipped.detail}"
            )
            self._log_limited(outcome, logging.WARNING)

    def _alerting_nodes(self, batch: Sequence[_Decoded]) -> set[str]:
        """Gateways whose active alerts this batch may open or clear."""
        nodes = set()
        for item in batch:
            body = item.envelope.body
            windows = body.windows if isinstance(body, TelemetryBatch) else [body]
            if isinstance(body, Event) or any(
                isinstance(window, Telemetry)
                and window.profile in self.profiles
                and self.profiles[window.profile].alerts
                for window in windows
            ):
                nodes.add(item.envelope.node)
        return nodes

    def _store_one(
        self, session: Session, view: BatchView, envelope: Envelope, now: datetime
    ) -> tuple[Outcome, str]:
        """Claim and store one message inside its own SAVEPOINT."""
        kind = envelope.kind.value
        skipped, stored = len(self._skipped), len(self._stored)
        try:
            with session.begin_nested():
                check_not_future(envelope.sent_at, now, self.limits, what="sent_at")
                fresh = not _claims(envelope) or claim(
                    session, node=envelope.node, epoch=envelope.epoch, seq=envelope.seq, at=now
                )
                if fresh:
                    rows = TelemetryRows.of(session)
                    self._store(session, view, envelope, now, rows)
                    self._write(session, view, rows)
        except Rejected as exc:
            view.rollback()
            del self._skipped[skipped:], self._stored[stored:]
            return Outcome(OutcomeStatus.REJECTED, kind, exc.reason, exc.detail), exc.stage
        except (OperationalError, InterfaceError):
            raise  # the database itself, not this message: the whole batch is kept
        except (SQLAlchemyError, OverflowError) as exc:  # sqlite3 raises OverflowError past int64
            view.rollback()
            del self._skipped[skipped:], self._stored[stored:]
            return Outcome(OutcomeStatus.REJECTED, kind, "storage_error", str(exc)), "sending"
        view.release()
        status = OutcomeStatus.ACCEPTED if fresh else OutcomeStatus.DUPLICATE
        return Outcome(status, kind), "processing"

    def _store(
        self,
        session: Session,
        view: BatchView,
        envelope: Envelope,
        now: datetime,
        rows: TelemetryRows,
    ) -> None:
        body = envelope.body
        if isinstance(body, Health):
            node = envelope.node
            check_site(session, node=node, site=body.site, limits=self.limits)
            reported = {health.device for health in body.devices}
            new = len(reported - devices.device_keys(session, gateway_id=node))
            check_device_budget(session, node=node, new_devices=new, limits=self.limits)
            gateway, newest = topology.record_heartbeat(
                session, node=envelope.node, health=body, sent_at=envelope.sent_at, received_at=now
            )
            view.gateways[gateway.id] = True
            if newest:
                for health in body.devices:
                    device = devices.apply_device_health(
                        session, gateway_id=gateway.id, health=health, at=now
                    )
                    view.devices[(gateway.id, device.key)] = device.id
        elif isinstance(body, State):
            topology.set_gateway_state(session, node=envelope.node, online=body.online, at=now)
            view.gateways[envelope.node] = True
        elif isinstance(body, Telemetry):
            self._store_telemetry(session, view, envelope.node, body, now, rows)
        elif isinstance(body, TelemetryBatch):
            self._store_telemetry_batch(session, view, envelope.node, body, now, rows)
        elif isinstance(body, Event):
            check_not_future(body.at, now, self.limits, what="event time")
            self._store_event(session, view, envelope.node, body)
        elif isinstance(body, CommandResult):
            self._ensure_gateway(session, view, envelope.node)
            commands.apply_result(session, node=envelope.node, result=body, now=now)
        # reported: nothing to store yet beyond the dedupe claim

    def _ensure_gateway(self, session: Session, view: BatchView, node: str) -> None:
        if node not in view.gateways:
            topology.ensure_gateway(session, node=node)
            view.gateways[node] = True

    def _device_id(
        self, session: Session, view: BatchView, node: str, body: Telemetry, profile: Profile
    ) -> int:
        """The device's id: cached, else looked up, else registered from the message."""
        key = (node, body.device)
        device_id = self._device_ids.get(key)  # committed: a plain dict is the fast way first
        if device_id is not None:
            return device_id
        device_id = view.devices.get(key)
        if device_id is None:
            device_id = devices.device_id(session, gateway_id=node, key=body.device)
            if device_id is None:
                self._ensure_gateway(session, view, node)
                check_device_budget(session, node=node, new_devices=1, limits=self.limits)
                device = devices.ensure_device(
                    session,
                    gateway_id=node,
                    key=body.device,
                    room=body.room,
                    profile=body.profile,
                    protocol=profile.protocol,
                )
                if device.approval != Approval.APPROVED.value:
                    self._held.add(key)
                device_id = device.id
            view.devices[key] = device_id
        return device_id

    def _store_telemetry(
        self,
        session: Session,
        view: BatchView,
        node: str,
        body: Telemetry,
        now: datetime,
        rows: TelemetryRows,
    ) -> None:
        end = body.window_end
        checked = self._checked_until  # an end no later than one that passed passes too
        if checked is None or end > checked:  # compared, not hashed: cheap for shared tzinfo
            check_not_future(end, now, self.limits, what=f"{body.device} window end")
            self._checked_until = end
        profile = self.profiles.get(body.profile)
        if profile is None:
            raise Rejected(
                "unknown_profile", f"device {body.device!r}: unknown profile {body.profile!r}"
            )
        device_id = self._device_id(session, view, node, body, profile)
        rows.add(device_id=device_id, telemetry=body)
        if self._window_sink is not None:
            self._stored.append((node, body))
        self._evaluate_rules(session, view, node, profile, body)

    def _store_telemetry_batch(
        self,
        session: Session,
        view: BatchView,
        node: str,
        batch: TelemetryBatch,
        now: datetime,
        rows: TelemetryRows,
    ) -> None:
        """Store every window as if it came alone; a window the hub cannot store is skipped (and
        counted once the batch commits), the rest are kept. Only a batch with no storable window
        is rejected."""
        rejected: list[Rejected] = []
        for window in batch.windows:
            try:
                self._store_telemetry(session, view, node, window, now, rows)
            except Rejected as exc:
                rejected.append(exc)
        if len(rejected) == len(batch.windows):
            raise rejected[0]
        self._skipped.extend(rejected)

    def _evaluate_rules(
        self, session: Session, view: BatchView, node: str, profile: Profile, body: Telemetry
    ) -> None:
        if (node, body.device) in self._held:
            return
        for key, alarm in hub_rule_conditions(node, profile, body):
            follow(session, view.alerts, key=key, alarm=alarm, at=body.window_end, actor=HUB_ACTOR)

    def _store_event(self, session: Session, view: BatchView, node: str, body: Event) -> None:
        self._ensure_gateway(session, view, node)
        if (node, body.device) not in self._held:
            apply_event(session, view.alerts, node=node, event=body)

    def _count(self, outcome: Outcome, stage: str = "processing") -> Outcome:
        self._tally(outcome, stage)
        if outcome.status is OutcomeStatus.KEPT:
            self._log_limited(outcome, logging.ERROR)
        elif outcome.status is OutcomeStatus.REJECTED:
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
