"""Webhook notifications against a real local HTTP server that checks every request: signed,
with an idempotency key kept across retries, retried with back-off, logged; a dead webhook never
holds back ingest."""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import orjson
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import EventState
from cloud_hub.alerts.webhooks import Notifier
from cloud_hub.db.models import WebhookDelivery
from cloud_hub.ingest.worker import IngestWorker, OutcomeStatus
from cloud_hub.settings import WebhookSettings
from tests.hub.builders import T0, device_health, event, heartbeat, stats, telemetry
from tests.hub.write_lock import while_ingest_writes

SECRET = "s3cret-for-tests"


class Receiver(BaseHTTPRequestHandler):
    """Answers 503 to the first delivery of each key, 200 after; keeps what it was sent."""

    received: ClassVar[list[tuple[str, dict[str, object]]]] = []
    seen: ClassVar[set[str]] = set()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(self.headers["X-Campus-Signature"], expected)
        key = self.headers["Idempotency-Key"]
        first = key not in self.seen
        self.seen.add(key)
        self.received.append((key, orjson.loads(body)))
        self.send_response(503 if first else 200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received.clear()
    Receiver.seen.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def hook(url: str) -> WebhookSettings:
    return WebhookSettings(name="duty", url=url, secret=SECRET, max_attempts=3)


def deliveries(sessions: sessionmaker[Session]) -> list[WebhookDelivery]:
    with sessions() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def test_a_level_ii_alert_is_delivered_signed_and_retried_with_the_same_key(
    worker: IngestWorker, sessions: sessionmaker[Session], receiver: str
) -> None:
    worker.process(*heartbeat(seq=1, devices=[device_health()]), now=T0)
    worker.process(*event(seq=2, state=EventState.RAISED, at=T0))  # level II: notified
    worker.process(*telemetry(seq=3, points={"co2": stats(1200)}))  # level IV: not
    notifier = Notifier(sessions, [hook(receiver)])

    assert notifier.enqueue(now=T0) == 1
    assert notifier.enqueue(now=T0) == 0  # queued once
    with httpx.Client() as client:
        notifier.send_due(now=T0, client=client)  # 503
        assert notifier.send_due(now=T0, client=client) == 0  # backing off
        notifier.send_due(now=T0 + timedelta(seconds=1), client=client)  # 200

    (delivery,) = deliveries(sessions)
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("delivered", 2, 200)
    (key, first), (again, _) = Receiver.received
    assert key == again == delivery.idempotency_key
    assert key.startswith("alert-") and key.split("-")[2] == "raise"
    assert (first["transition"], first["level"], first["device"]) == ("raise", "II", "gas-1")


def test_a_delivery_recorded_while_ingest_holds_the_write_lock_waits_its_turn(
    worker: IngestWorker, engine: Engine, sessions: sessionmaker[Session], receiver: str
) -> None:
    worker.process(*heartbeat(seq=1, devices=[device_health()]), now=T0)
    worker.process(*event(seq=2, state=EventState.RAISED, at=T0))
    notifier = Notifier(sessions, [hook(receiver)])
    notifier.enqueue(now=T0)

    with httpx.Client() as client:
        sent = while_ingest_writes(engine, lambda: notifier.send_due(now=T0, client=client))

    assert sent == 1  # its outcome recorded, not "database is locked" on SQLite
    (delivery,) = deliveries(sessions)
    assert (delivery.attempts, delivery.last_status) == (1, 503)


def test_a_dead_webhook_never_holds_back_ingest_and_gives_up_after_its_attempts(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    notifier = Notifier(sessions, [hook(dead)])
    worker.process(*heartbeat(seq=1, devices=[device_health()]), now=T0)

    assert worker.process(*event(seq=2, state=EventState.RAISED, at=T0)).status is (
        OutcomeStatus.ACCEPTED
    )
    notifier.enqueue(now=T0)
    with httpx.Client() as client:
        for seconds in (0, 1, 3, 10):
            notifier.send_due(now=T0 + timedelta(seconds=seconds), client=client)
    assert worker.process(*event(seq=3, state=EventState.CLEARED, at=T0)).status is (
        OutcomeStatus.ACCEPTED
    )

    (delivery,) = deliveries(sessions)
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("failed", 3, None)
    assert "ConnectError" in delivery.last_error
