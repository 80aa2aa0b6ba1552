"""A regional hub's forwarding to the central hub, through the edge's own outbox and uplink.

Design
------
* ``campus_forward.Outbox`` numbers every message with the regional hub's node id, the outbox's
  epoch and a seq, and ``HubUplink`` drains it to the central broker at QoS 1, deleting a row only
  on PUBACK: the central hub dedupes exactly as a regional hub dedupes its gateways.
* ``plan`` (in a thread: it reads the hub database) decides what is due from the progress
  marks, and each batch is queued with the marks it moves in one outbox transaction, so a
  regional hub killed at any point resumes from its marks and neither skips nor repeats:
  - ``fleet``: the health of every school, once per ``fleet_every_s`` slot;
  - ``kpis``: every district's KPIs as numerators and denominators, once per ``kpi_every_s``
    slot;
  - ``alertchange``: every alert transition the regional hub recorded (opened, acknowledged,
    resolved, ...), in order, after the last one queued;
  - ``rollup``: per school and 5-minute or hourly period over the last ``rollup_horizon_s``,
    every closed period whose windows differ from what was last sent for it (new periods, and
    periods that late windows changed, e.g. a gateway's backlog after an outage), sent whole so
    the central hub replaces it. Windows that reach the regional hub later than the horizon are
    not forwarded (the regional hub keeps them).
* Only one process per regional hub forwards (the one that serves the API); extra ingest
  workers do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial

from prometheus_client import Counter
from sqlalchemy.orm import Session, sessionmaker

from campus_forward.outbox import Outbox, OutboxWriteError
from campus_forward.uplink import HubUplink
from campus_protocol import (
    AlertChanges,
    KpiSnapshot,
    MessageKind,
    RollupPeriod,
    Rollups,
    SchoolRollup,
)
from campus_protocol.messages import Body
from cloud_hub.federation.summaries import (
    ROLLUP_PERIODS,
    alert_changes,
    district_kpis,
    fleet_health,
    period_start,
    school_rollups,
)
from cloud_hub.kpis.compute import LessonTimes
from cloud_hub.settings import FederationSettings
from device_profiles.schema import Profile

log = logging.getLogger(__name__)

Message = tuple[MessageKind, Body]
Batch = tuple[list[Message], dict[str, str]]  # messages and the marks they move, queued at once
FEDERATION_FAILURES = Counter(
    "campus_federation_build_failures_total",
    "Rounds in which a kind of report for the central hub could not be built (logged)",
    ["part"],
)
MARKS = ("fleet", "kpis", "alerts", *(f"rollup:{period.value}" for period in ROLLUP_PERIODS))


class RegionalForwarder:
    """Queue what is due for the central hub and run the uplink that delivers it."""

    def __init__(
        self,
        settings: FederationSettings,
        sessions: sessionmaker[Session],
        *,
        profiles: Mapping[str, Profile],
        lessons: LessonTimes,
        offline_after_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self._sessions = sessions
        self._profiles = profiles
        self._lessons = lessons
        self._offline_after_s = offline_after_s
        self._clock = clock
        self.outbox = Outbox.open_or_replace(settings.outbox_path)
        self.uplink = HubUplink(settings.node_id, settings.central, self.outbox)
        self.queued = 0

    async def run(self) -> None:
        """Collect every ``every_s`` and keep the uplink going, until cancelled. The hub database
        is read in a thread; the outbox (one thread only) is used on this loop."""
        uplink = asyncio.create_task(self.uplink.run(), name="federation-uplink")
        try:
            while True:
                started = time.monotonic()
                try:
                    marks, now = self._marks(), self._clock()
                    if self._queue(await asyncio.to_thread(self.plan, marks, now)):
                        self.uplink.wake()
                except OutboxWriteError:
                    pass  # logged by the outbox; the marks did not move: tried again next time
                except Exception:  # a bug of ours must not stop forwarding for good
                    log.exception("federation: collecting for the central hub failed")
                await asyncio.sleep(max(0.0, self.settings.every_s - (time.monotonic() - started)))
        finally:
            self.uplink.close(grace_s=2.0)
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(uplink, timeout=5.0)
            self.outbox.close()

    def collect(self) -> int:
        """Queue whatever is due now, in this thread; returns how many messages."""
        return self._queue(self.plan(self._marks(), self._clock()))

    def plan(self, marks: Mapping[str, str | None], now: datetime) -> list[Batch]:
        """What is due at ``now`` given the ``marks`` so far, read from the hub database: each
        batch is queued in one outbox transaction with the marks it moves. A kind that cannot be
        built this time is logged and counted and left for the next round; the others go."""
        parts: dict[str, Callable[[Session], Batch | None]] = {
            "fleet": lambda s: self._slotted(s, "fleet", self.settings.fleet_every_s, marks, now),
            "kpis": lambda s: self._slotted(s, "kpis", self.settings.kpi_every_s, marks, now),
            "alertchange": lambda s: self._alert_changes(s, marks),
            **{
                f"rollup:{period.value}": partial(
                    self._rollups, period=period, marks=marks, now=now
                )
                for period in ROLLUP_PERIODS
            },
        }
        batches = []
        with self._sessions() as session:
            for part, build in parts.items():
                try:
                    batches.append(build(session))
                except Exception:  # a bug of ours in one kind must not hold up the others
                    FEDERATION_FAILURES.labels(part=part).inc()
                    log.exception("federation: building %s for the central hub failed", part)
                    session.rollback()
        return [batch for batch in batches if batch is not None]

    def _marks(self) -> dict[str, str | None]:
        return {name: self.outbox.mark(name) for name in MARKS}

    def _queue(self, batches: list[Batch]) -> int:
        queued = 0
        for messages, marks in batches:
            self.outbox.append_many(messages, marks=marks)
            queued += len(messages)
        self.queued += queued
        return queued

    def _slotted(
        self,
        session: Session,
        name: str,
        every_s: float,
        marks: Mapping[str, str | None],
        now: datetime,
    ) -> Batch | None:
        """One ``name`` message per ``every_s`` slot of the clock, the first one at once."""
        slot = str(int(now.timestamp() // every_s))
        if marks.get(name) == slot:
            return None
        if name == "fleet":
            fleet = fleet_health(session, now=now, offline_after_s=self._offline_after_s)
            return [(MessageKind.FLEET, fleet)], {name: slot}
        districts = district_kpis(session, now=now, profiles=self._profiles, lessons=self._lessons)
        if not districts:  # nothing to report yet: the slot still counts as done
            return [], {name: slot}
        return [(MessageKind.KPIS, KpiSnapshot(at=now, districts=districts))], {name: slot}

    def _alert_changes(self, session: Session, marks: Mapping[str, str | None]) -> Batch | None:
        """The alert transitions after the last one queued, ``ALERT_CHANGES_PER_MESSAGE`` to a
        message (at most ``ALERT_MESSAGES_PER_COLLECT`` messages at a time)."""
        after = int(marks.get("alerts") or 0)
        step = ALERT_CHANGES_PER_MESSAGE
        changes, last = alert_changes(
            session, after_id=after, limit=step * ALERT_MESSAGES_PER_COLLECT
        )
        if last == after:
            return None
        messages: list[Message] = [
            (MessageKind.ALERTCHANGE, AlertChanges(changes=changes[i : i + step]))
            for i in range(0, len(changes), step)
        ]
        return messages, {"alerts": str(last)}

    def _rollups(
        self,
        session: Session,
        *,
        period: RollupPeriod,
        marks: Mapping[str, str | None],
        now: datetime,
    ) -> Batch | None:
        """Every closed period in the horizon whose windows changed since it was last sent."""
        closed = period_start(now, period)
        since = period_start(now - timedelta(seconds=self.settings.rollup_horizon_s), period)
        name = f"rollup:{period.value}"
        sent: dict[str, int] = json.loads(marks.get(name) or "{}")
        due = []
        now_sent = {}
        for rollup in school_rollups(session, period=period, since=since, until=closed):
            key = f"{rollup.school_id}|{rollup.period_start.isoformat()}"
            windows = sum(point.windows for point in rollup.points.values())
            now_sent[key] = windows
            if sent.get(key) != windows:
                due.append(rollup)
        if not due and now_sent.keys() == sent.keys():
            return None
        messages: list[Message] = [
            (MessageKind.ROLLUP, Rollups(rollups=chunk)) for chunk in _chunks(due)
        ]
        return messages, {name: json.dumps(now_sent, sort_keys=True)}


#: a transition is at most ~1.6 kB of JSON (a 200-character Chinese message escaped), so a
#: message of 100 stays under the wire's 256 kB; a backlog drains over a few collects
ALERT_CHANGES_PER_MESSAGE = 100
ALERT_MESSAGES_PER_COLLECT = 8
ROLLUPS_PER_MESSAGE = 16  # a school's rollup is a few kB: a message stays far under its bound


def _chunks(rollups: list[SchoolRollup]) -> list[list[SchoolRollup]]:
    step = ROLLUPS_PER_MESSAGE
    return [rollups[i : i + step] for i in range(0, len(rollups), step)]
