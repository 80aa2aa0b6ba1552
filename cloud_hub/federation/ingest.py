"""Central hub ingest: store what regional hubs forward, each message ending accepted, duplicate,
rejected or kept, exactly as the regional hub's ingest does for gateways.

``FederationWorker`` has the ``IngestWorker`` interface (``process_batch``, ``prune_claims``), so
the same ``IngestConsumer`` feeds it from the central broker: a persistent session, QoS 1, and a
message acknowledged only after the batch holding it committed. A batch is one transaction with a
SAVEPOINT per message (federation traffic is a few messages a minute per district): a message the
hub cannot store is rolled back and rejected alone. Dedupe is the gateways' own, on (node, epoch,
seq) with the regional hub's node id and its outbox's epoch and seq.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import (
    FEDERATION_KINDS,
    AlertChanges,
    DecodeError,
    Envelope,
    FleetHealth,
    InvalidTopic,
    KpiSnapshot,
    MessageKind,
    Rollups,
    State,
    decode,
    parse_topic,
)
from campus_protocol.errors import UnexpectedKind
from campus_protocol.topics import Direction
from cloud_hub.db.base import write_transaction
from cloud_hub.federation import store
from cloud_hub.ingest import dedupe
from cloud_hub.ingest.checks import IngestLimits, check_not_future
from cloud_hub.ingest.rejections import Rejected
from cloud_hub.ingest.worker import (
    IngestWorker,
    Outcome,
    OutcomeCounter,
    OutcomeStatus,
)
from cloud_hub.settings import HubSettings
from cloud_hub.sinks.influx import InfluxSink
from device_profiles.schema import Profile

log = logging.getLogger(__name__)

#: what a central hub takes: the federation kinds, and a regional hub's retained state / will
CENTRAL_KINDS = FEDERATION_KINDS | {MessageKind.STATE}


class FederationWorker(OutcomeCounter):
    """Decode, dedupe and store regional hubs' messages; counts kept as plain attributes too."""

    def __init__(
        self, session_factory: sessionmaker[Session], *, limits: IngestLimits | None = None
    ) -> None:
        self._sessions = session_factory
        self.limits = limits or IngestLimits()
        super().__init__()

    def process(self, topic: str, payload: bytes, *, now: datetime | None = None) -> Outcome:
        """Handle one message (a batch of one)."""
        return self.process_batch([(topic, payload)], now=now)[0]

    def process_batch(
        self, messages: Sequence[tuple[str, bytes]], *, now: datetime | None = None
    ) -> list[Outcome]:
        """One outcome per ``(topic, payload)``, in order; never raises for bad input or a
        database error (then every decoded message is kept, to be retried)."""
        now = now or datetime.now(UTC)
        outcomes: dict[int, Outcome] = {}
        decoded: list[tuple[int, Envelope]] = []
        for index, (topic, payload) in enumerate(messages):
            try:
                decoded.append((index, _decode(topic, payload)))
            except DecodeError as exc:
                kind = _kind_of(topic)
                outcomes[index] = Outcome(OutcomeStatus.REJECTED, kind, exc.reason, str(exc))
        if decoded:
            try:
                outcomes.update(self._store(decoded, now))
            except SQLAlchemyError as exc:
                for index, envelope in decoded:
                    outcomes[index] = Outcome(
                        OutcomeStatus.KEPT, envelope.kind.value, "storage_unavailable", str(exc)
                    )
        return [self._count(outcomes[index]) for index in range(len(messages))]

    def prune_claims(self, older_than: datetime) -> int:
        """Delete dedupe claims made before ``older_than``; never raises (logged instead)."""
        try:
            with write_transaction(self._sessions) as session:
                return dedupe.prune(session, older_than=older_than)
        except SQLAlchemyError as exc:
            log.warning("pruning dedupe claims failed: %s", exc)
            return 0

    def _store(self, decoded: Sequence[tuple[int, Envelope]], now: datetime) -> dict[int, Outcome]:
        outcomes = {}
        with write_transaction(self._sessions) as session:
            for index, envelope in decoded:
                outcomes[index] = self._store_one(session, envelope, now)
        return outcomes

    def _store_one(self, session: Session, envelope: Envelope, now: datetime) -> Outcome:
        kind = envelope.kind.value
        try:
            with session.begin_nested():
                check_not_future(envelope.sent_at, now, self.limits, what="sent_at")
                if isinstance(envelope.body, State):  # retained: may repeat a seq legitimately
                    store.set_regional_state(
                        session, node=envelope.node, online=envelope.body.online, at=now
                    )
                    return Outcome(OutcomeStatus.ACCEPTED, kind)
                fresh = dedupe.claim(
                    session, node=envelope.node, epoch=envelope.epoch, seq=envelope.seq, at=now
                )
                store.saw_regional_hub(session, node=envelope.node, at=now, stored=fresh)
                if fresh:
                    _apply(session, envelope, now)
        except Rejected as exc:
            return Outcome(OutcomeStatus.REJECTED, kind, exc.reason, exc.detail)
        except (OperationalError, InterfaceError):
            raise  # the database itself, not this message: the whole batch is kept
        except (SQLAlchemyError, OverflowError) as exc:
            return Outcome(OutcomeStatus.REJECTED, kind, "storage_error", str(exc))
        return Outcome(OutcomeStatus.ACCEPTED if fresh else OutcomeStatus.DUPLICATE, kind)

    def _count(self, outcome: Outcome) -> Outcome:
        self._tally(outcome)
        if outcome.status is OutcomeStatus.KEPT:
            log.error("federation ingest kept a %s message: %s", outcome.kind, outcome.detail)
        elif outcome.status is OutcomeStatus.REJECTED:
            log.warning("federation ingest rejected a %s message: %s", outcome.kind, outcome.detail)
        return outcome


def _decode(topic: str, payload: bytes) -> Envelope:
    parsed = parse_topic(topic)
    if parsed.direction is not Direction.UP:
        raise InvalidTopic(f"{topic[:200]!r} is not an uplink topic")
    if parsed.kind not in CENTRAL_KINDS:
        raise UnexpectedKind(f"{parsed.kind.value!r} is a gateway's, not a regional hub's")
    return decode(payload, topic=parsed)


def _apply(session: Session, envelope: Envelope, now: datetime) -> None:
    node, body = envelope.node, envelope.body
    repeats = 0
    if isinstance(body, FleetHealth):
        check_not_future(body.at, now, IngestLimits(), what="fleet report time")
        store.apply_fleet(session, node=node, fleet=body, at=now)
    elif isinstance(body, Rollups):
        store.apply_rollups(session, node=node, rollups=body, at=now)
    elif isinstance(body, KpiSnapshot):
        repeats = store.apply_kpis(session, node=node, snapshot=body, at=now)
    elif isinstance(body, AlertChanges):
        repeats = store.apply_alert_changes(session, node=node, changes=body)
    store.count_repeats(session, node=node, repeats=repeats)


def _kind_of(topic: str) -> str:
    try:
        return parse_topic(topic).kind.value
    except DecodeError:
        return "unknown"


def worker_for(
    settings: HubSettings,
    sessions: sessionmaker[Session],
    *,
    profiles: Mapping[str, Profile] | None = None,
    influx: InfluxSink | None = None,
) -> IngestWorker | FederationWorker:
    """What consumes the hub broker: gateways' uplinks at a regional hub, regional hubs' at the
    central hub."""
    if settings.role == "central":
        return FederationWorker(sessions)
    return IngestWorker(
        sessions, profiles=profiles, window_sink=influx.offer if influx is not None else None
    )
