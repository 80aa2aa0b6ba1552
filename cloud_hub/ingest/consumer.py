"""The hub broker consumer: feeds uplinks to a ``BatchWorker`` and acknowledges each QoS 1
message to the broker only after the batch holding it is committed.

Design
------
* Persistent session (clean_session false) under a client id equal to the hub's MQTT username
  (the broker enforces ``use_username_as_clientid``, so no gateway login can take it over), and
  the subscription is made at QoS 1: while the hub is away the broker queues every uplink.
* Manual acknowledgement: paho's automatic PUBACK would tell the broker a message is safe before
  the hub stored it, so a hub killed at that moment lost it. Here a message is acknowledged once
  its outcome is final: accepted or duplicate (committed), or rejected (poison, counted and
  dropped). A message whose batch was kept (database unavailable) is retried, in order, before
  anything newer is taken; acknowledgements therefore leave in the order messages arrived, as
  MQTT 3.1.1 asks. A connection lost before an acknowledgement makes the broker redeliver the
  message, and the dedupe claim turns the repeat into a counted duplicate.
* Dedupe claims are only needed while a message can still be redelivered, so once an hour the
  consumer prunes those older than ``claim_retention_s`` (a week by default: far longer than
  any redelivery, which follows a lost acknowledgement within seconds to hours).
* Session marker: a broker acknowledges a QoS 1 publish even when no session subscribes to its
  topic, and drops it; an uplink deletes its outbox row on that acknowledgement. So once the
  subscription is granted (the persistent session exists), the consumer publishes a retained
  QoS 1 ``HubSession`` on ``HUB_SESSION_TOPIC``, and every uplink waits for it before sending
  (``campus_forward/uplink.py``). The marker lives in the broker's store with the sessions: a
  broker whose store is lost (or new) loses the marker with the session, and the uplinks wait
  again until the hub has subscribed anew. Each worker of a share group publishes it too.
* Batches are what is already queued when the first message arrives (up to ``max_batch``); the
  broker keeps at most ``max_inflight_messages`` unacknowledged, so a batch is bounded there too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import aiomqtt
from prometheus_client import Counter, Gauge

from campus_mqtt import Backoff, BrokerEndpoint, LinkState, ack, make_client, run_reconnecting
from campus_protocol import HUB_SESSION_TOPIC, HubSession, encode_hub_session, hub_subscription
from cloud_hub.ingest.worker import Outcome, OutcomeStatus
from cloud_hub.settings import BrokerSettings

log = logging.getLogger(__name__)

HUB_BROKER_CONNECTED = Gauge("campus_hub_broker_connected", "1 while ingest is subscribed")
HUB_BROKER_FAILURES = Counter(
    "campus_hub_broker_failures_total", "Failed hub broker connections", ["error_type"]
)
MAX_BATCH = 200


class BatchWorker(Protocol):
    """What the consumer feeds: ``IngestWorker`` at a regional hub, ``FederationWorker`` at the
    central hub."""

    def process_batch(self, messages: Sequence[tuple[str, bytes]]) -> list[Outcome]: ...

    def prune_claims(self, older_than: datetime) -> int: ...


def broker_endpoint(broker: BrokerSettings) -> BrokerEndpoint:
    """The hub's broker settings as a connection endpoint."""
    return BrokerEndpoint(
        host=broker.host,
        port=broker.port,
        username=broker.username,
        password=broker.password.get_secret_value() or None,
        tls=broker.tls,
        keepalive_s=broker.keepalive_s,
    )


class IngestConsumer:
    """Consume the hub subscription into ``worker`` until cancelled; ``connected`` is set while
    subscribed."""

    def __init__(
        self,
        worker: BatchWorker,
        broker: BrokerSettings,
        *,
        share_group: str | None = None,
        role: Literal["regional", "central"] = "regional",
        max_batch: int = MAX_BATCH,
        backoff: Backoff | None = None,
        claim_retention_s: float = 7 * 24 * 3600,
        prune_every_s: float = 3600,
    ) -> None:
        self.worker = worker
        self.broker = broker
        self.share_group = share_group
        self.role = role
        self.max_batch = max_batch
        self.backoff = backoff or Backoff()
        self.acknowledged = 0
        self.claim_retention_s = claim_retention_s
        self.prune_every_s = prune_every_s
        self.claims_pruned = 0
        self._pruned_at = float("-inf")
        self.connected = asyncio.Event()
        #: the live connection (the hub's only one: client id = username), for the publisher
        self.client: aiomqtt.Client | None = None
        self.link = LinkState(
            f"hub broker {broker.host}:{broker.port}",
            on_change=self._on_change,
            on_failure=lambda error_type: HUB_BROKER_FAILURES.labels(error_type).inc(),
        )

    async def run(self) -> None:
        """Subscribe and consume, reconnecting with back-off, until cancelled."""
        await run_reconnecting(self._session, link=self.link, backoff=self.backoff)

    async def _session(self) -> bool:
        client = make_client(
            broker_endpoint(self.broker),
            identifier=self.broker.client_id or self.broker.username,
            persistent=True,
            manual_ack=True,
        )
        async with client:
            await client.subscribe(hub_subscription(self.share_group), qos=1)
            await publish_hub_session(client, self.role)
            self.link.up()
            self.client = client
            try:
                async for message in client.messages:
                    batch = [message]  # and what is queued already:
                    while len(batch) < self.max_batch and len(client.messages) > 0:
                        batch.append(await anext(client.messages))
                    await self._store_then_ack(client, batch)
            finally:
                self.client = None
        return False

    async def _store_then_ack(self, client: aiomqtt.Client, batch: list[aiomqtt.Message]) -> None:
        """Store ``batch``; retry kept messages in order with back-off; then acknowledge all."""
        pending = batch
        retry = Backoff(min_s=self.backoff.min_s, max_s=self.backoff.max_s)
        while pending:
            pairs = [_as_pair(message) for message in pending]
            outcomes = await asyncio.to_thread(self.worker.process_batch, pairs)
            kept = OutcomeStatus.KEPT
            pending = [m for m, o in zip(pending, outcomes, strict=True) if o.status is kept]
            if pending:
                await asyncio.sleep(retry.next_delay())
        for message in batch:
            ack(client, message)
        self.acknowledged += len(batch)
        if time.monotonic() - self._pruned_at >= self.prune_every_s:
            self._pruned_at = time.monotonic()
            older_than = datetime.now(UTC) - timedelta(seconds=self.claim_retention_s)
            self.claims_pruned += await asyncio.to_thread(self.worker.prune_claims, older_than)

    def _on_change(self, connected: bool) -> None:
        HUB_BROKER_CONNECTED.set(1 if connected else 0)
        if connected:
            self.connected.set()
        else:
            self.connected.clear()


async def publish_hub_session(client: aiomqtt.Client, role: Literal["regional", "central"]) -> None:
    """Mark (retained, QoS 1) that the hub's persistent session exists on ``client``'s broker."""
    marker = HubSession(role=role, at=datetime.now(UTC))
    await client.publish(HUB_SESSION_TOPIC, encode_hub_session(marker), qos=1, retain=True)


def _as_pair(message: aiomqtt.Message) -> tuple[str, bytes]:
    payload = message.payload
    if isinstance(payload, bytes | bytearray):
        return str(message.topic), bytes(payload)
    return str(message.topic), str(payload).encode() if payload is not None else b""
