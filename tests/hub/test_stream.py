"""GET /api/v1/stream: a real HTTP client on a served hub receives alert transitions and status
changes as server-sent events, only in its scope, and resumes from its last event id."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import DeviceStatus, EventState
from cloud_hub.api.main import create_app
from cloud_hub.auth.roles import Role
from cloud_hub.ingest.worker import IngestWorker
from cloud_hub.settings import HubSettings
from tests.auth_support import bearer, make_user
from tests.hub.builders import SITE, T0, device_health, event, heartbeat, state
from tests.web.support import LoopThread, ServedHub, serving

SOUTH = SITE.model_copy(update={"district_id": "d-south", "school_id": "s-2"})


Event = tuple[str, str, dict[str, Any]]  # id, kind, data


class EventReader:
    """Reads server-sent events from an open response, in the test's own thread."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.iter_lines()

    def wait_open(self) -> None:
        """Until the hub's first comment: the stream then holds its starting cursor."""
        for line in self._lines:
            if line.startswith(":"):
                return

    def take(self, count: int) -> list[Event]:
        events: list[Event] = []
        fields: dict[str, str] = {}
        for line in self._lines:
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
            elif not line and "data" in fields:
                data = orjson.loads(fields["data"])
                events.append((fields["id"], data["kind"], data))
                fields = {}
                if len(events) == count:
                    break
        return events


@pytest.fixture
def hub(
    database_url: str, engine: Engine, sessions: sessionmaker[Session], worker: IngestWorker
) -> Iterator[ServedHub]:
    worker.process(*heartbeat(seq=1, devices=[device_health("gas-1")]), now=T0)
    worker.process(*heartbeat("gw-2", seq=1, site=SOUTH), now=T0)
    app = create_app(HubSettings(database_url=database_url, development=True), run_ingest=False)
    loop = LoopThread()
    try:
        with serving(loop, app) as served:
            served.token = make_user(
                sessions,
                "north-ops",
                Role.DISTRICT_OPERATOR,
                "district:d-north",
                now=datetime.now(UTC),
            )
            yield served
    finally:
        loop.close()


def test_alert_transitions_and_status_changes_arrive_as_events_in_scope(
    hub: ServedHub, worker: IngestWorker
) -> None:
    headers = bearer(hub.token)
    with (
        httpx.Client(base_url=hub.url, headers=headers, timeout=10) as client,
        client.stream("GET", "/api/v1/stream") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = EventReader(response)
        reader.wait_open()

        worker.process(*event("gw-2", seq=2, state=EventState.RAISED, at=T0))  # not ours
        worker.process(*event(seq=2, state=EventState.RAISED, at=T0))
        gone = device_health("gas-1", status=DeviceStatus.OFFLINE)
        worker.process(*heartbeat(seq=3, devices=[gone], sent_at=T0 + timedelta(seconds=10)))
        worker.process(*state(seq=4, online=False))
        events = reader.take(3)
        raised = events[0][2]
        acked = client.post(f"/api/v1/alerts/{raised['alert_id']}/ack", json={"comment": "seen"})
        assert acked.status_code == 200
        events += reader.take(1)

    assert [(kind, data.get("transition") or data["status"]) for _, kind, data in events] == [
        ("alert", "raise"),
        ("status", "offline"),  # the gas detector
        ("status", "offline"),  # its gateway
        ("alert", "acknowledge"),
    ]
    assert all(data["school_id"] == "s-1" for _, _, data in events)
    assert (raised["severity"], raised["to_state"], raised["device"]) == ("II", "open", "gas-1")
    assert events[1][2]["device"] == "gas-1" and events[2][2]["device"] is None
    assert events[3][2]["actor"] == "north-ops" and events[3][2]["comment"] == "seen"


def test_a_client_reconnecting_with_its_last_event_id_gets_what_it_missed(
    hub: ServedHub, worker: IngestWorker
) -> None:
    headers = bearer(hub.token)
    with httpx.Client(base_url=hub.url, headers=headers, timeout=10) as client:
        with client.stream("GET", "/api/v1/stream") as response:
            reader = EventReader(response)
            reader.wait_open()
            worker.process(*event(seq=2, state=EventState.RAISED, at=T0))
            ((last_id, _, _),) = reader.take(1)
        # away: the condition clears and comes back
        worker.process(*event(seq=3, state=EventState.CLEARED, at=T0 + timedelta(seconds=5)))
        worker.process(*event(seq=4, state=EventState.RAISED, at=T0 + timedelta(seconds=9)))
        with client.stream("GET", "/api/v1/stream", headers={"Last-Event-ID": last_id}) as again:
            missed = EventReader(again).take(2)

    assert [data["transition"] for _, _, data in missed] == ["clear", "raise"]
    assert missed[1][2]["occurrences"] == 2


def test_the_stream_needs_a_signed_in_user(hub: ServedHub) -> None:
    assert httpx.get(f"{hub.url}/api/v1/stream", timeout=10).status_code == 401
