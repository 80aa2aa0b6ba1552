"""Uplink to the hub above: drains the outbox to its broker at QoS 1, deleting a row only on PUBACK.

One connection at a time, reconnecting through ``campus_mqtt.run_reconnecting`` (jittered capped
back-off; the change is logged, every failure counted).
On connect it publishes ``State(online=True)`` retained; the broker publishes the
will, ``State(online=False)`` retained, if the link dies. Then it waits for the hub's retained
session marker (``HUB_SESSION_TOPIC``) before the first drain of the connection: a broker
acknowledges a QoS 1 publish even when no session subscribes to it and drops it, so on a broker
where the hub never subscribed (a first deployment, a lost store) every row sent would be deleted
and lost. Waiting has no timeout; the outbox keeps everything meanwhile, ``waiting_for_hub`` and
the ``campus_uplink_waiting_for_hub`` gauge show it, and downlink commands are handled.
Every row is wrapped in an envelope at send time (``sent_at`` is the send time, ``seq`` the
row's); a row that can never be encoded (too large, invalid body) is discarded and counted with
a reason instead of blocking the queue.

Draining goes in batches of at most ``max_in_flight`` rows, taken in the outbox's priority order
(events first; ``live_share`` of each batch for the newest telemetry, the rest for the backlog).
A batch is marked sent, published with all its messages in flight at once, and the rows whose
PUBACK came are deleted in one transaction; a row whose publish failed stays for the next try.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable

import aiomqtt

from campus_config import HubBrokerSettings
from campus_forward.metrics import (
    UPLINK_CONNECTED,
    UPLINK_FAILURES,
    UPLINK_PUBLISHED,
    UPLINK_WAITING_FOR_HUB,
)
from campus_forward.outbox import Outbox, OutboxRow, OutboxWriteError
from campus_mqtt import Backoff, BrokerEndpoint, LinkState, make_client, run_reconnecting
from campus_protocol import codec
from campus_protocol.envelope import Envelope
from campus_protocol.errors import ProtocolError
from campus_protocol.messages import MessageKind, State
from campus_protocol.topics import HUB_SESSION_TOPIC, node_downlink_subscription, uplink_topic

log = logging.getLogger(__name__)


class HubUplink:
    """The hub sink of one node: ``run()`` until ``close()``; ``wake()`` after appending rows."""

    def __init__(
        self,
        node: str,
        hub: HubBrokerSettings,
        outbox: Outbox,
        *,
        max_in_flight: int = 64,
        live_share: float = 0.25,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        publish_timeout_s: float = 10.0,
        max_message_bytes: int = codec.MAX_MESSAGE_BYTES,
        rng: random.Random | None = None,
    ) -> None:
        self.node = node
        self.hub = hub
        self.outbox = outbox
        self.max_in_flight = max_in_flight
        self.live_share = live_share
        self.publish_timeout_s = publish_timeout_s
        self.max_message_bytes = max_message_bytes
        self.published: Counter[str] = Counter()
        self.discarded: Counter[str] = Counter()
        self.backoff = Backoff(reconnect_min_s, reconnect_max_s, rng or random.Random())
        self.link = LinkState(
            f"hub uplink {hub.host}:{hub.port}",
            on_change=lambda connected: UPLINK_CONNECTED.set(1 if connected else 0),
            on_failure=lambda error_type: UPLINK_FAILURES.labels(error_type).inc(),
        )
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._grace_s = 0.0
        self._waiting_for_hub = False
        self._warned_waiting = False  # the warning is logged once until the marker is seen
        #: receives ``(topic, payload)`` of every downlink message (commands) while connected
        self.on_downlink: Callable[[str, bytes], None] | None = None

    @property
    def connected(self) -> bool:
        return self.link.connected

    @property
    def waiting_for_hub(self) -> bool:
        """Connected, but the hub's session marker is not on the broker yet: nothing is sent."""
        return self._waiting_for_hub

    @property
    def last_error(self) -> BaseException | None:
        return self.link.last_error

    @property
    def failed(self) -> int:
        """Failed connection attempts and lost connections so far."""
        return self.link.failures

    def wake(self) -> None:
        """Tell the uplink new rows are waiting."""
        self._wake.set()

    async def run(self) -> None:
        """Connect, publish online state, drain the outbox; reconnect on failure until closed."""
        await run_reconnecting(
            self._session, link=self.link, backoff=self.backoff, stopping=self._stop
        )

    async def _session(self) -> bool:
        try:
            async with self._client() as client:
                self.link.up()
                await self._publish_state(client, online=True)
                await self._drain_and_listen(client)
                await self._publish_state(client, online=False)
        except OutboxWriteError as exc:  # the will and the states need a durable seq: retry later
            raise aiomqtt.MqttError(f"no seq for the will or state: {exc}") from exc
        return True

    async def _drain_and_listen(self, client: aiomqtt.Client) -> None:
        """Drain once the hub's session marker has come, while reading the marker and handing
        ``down/#`` messages (commands) to ``on_downlink``; a lost link noticed by either side
        ends both (and the session, with the reader's error)."""
        filters = [(HUB_SESSION_TOPIC, 1)]
        if self.on_downlink is not None:
            filters.append((node_downlink_subscription(self.node), 1))
        hub_session = asyncio.Event()
        self._set_waiting(True)
        try:
            await client.subscribe(filters)
            drain = asyncio.create_task(self._drain_after(hub_session, client), name="uplink:drain")
            reader = asyncio.create_task(self._read(client, hub_session), name="uplink:reader")
            try:
                await asyncio.wait({drain, reader}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (drain, reader):
                    task.cancel()
                await asyncio.wait({drain, reader})
        finally:
            self._set_waiting(False)
        if not drain.cancelled():
            drain.result()  # the drain's own error, if it ended with one
            return
        reader.result()  # the link error that ended the reader
        raise aiomqtt.MqttError("the uplink's reader ended")

    async def _drain_after(self, hub_session: asyncio.Event, client: aiomqtt.Client) -> None:
        """Wait for the marker (or for ``close()``, then send nothing), then drain."""
        stopping = asyncio.create_task(self._stop.wait())
        marker = asyncio.create_task(hub_session.wait())
        try:
            first = asyncio.FIRST_COMPLETED
            _, pending = await asyncio.wait({stopping, marker}, timeout=1.0, return_when=first)
            if pending == {stopping, marker}:  # not there at once: the hub never subscribed
                self._warn_waiting()
                await asyncio.wait({stopping, marker}, return_when=first)
        finally:
            stopping.cancel()
            marker.cancel()
        if hub_session.is_set():
            await self._drain(client)

    async def _read(self, client: aiomqtt.Client, hub_session: asyncio.Event) -> None:
        async for message in client.messages:
            payload = message.payload
            data = payload if isinstance(payload, bytes) else str(payload).encode()
            if message.topic.matches(HUB_SESSION_TOPIC):
                if data and not hub_session.is_set():  # empty: the marker was cleared
                    log.info(
                        "the hub's session is on %s: %s",
                        self._broker,
                        data[:200].decode(errors="replace"),
                    )
                    self._warned_waiting = False
                    self._set_waiting(False)
                    hub_session.set()
                continue
            if self.on_downlink is None:
                continue
            try:
                self.on_downlink(str(message.topic), data)
            except Exception:  # a bug of ours must not end the uplink
                log.exception("downlink message on %s not handled", message.topic)

    @property
    def _broker(self) -> str:
        return f"{self.hub.host}:{self.hub.port}"

    def _set_waiting(self, waiting: bool) -> None:
        self._waiting_for_hub = waiting
        UPLINK_WAITING_FOR_HUB.set(1 if waiting else 0)

    def _warn_waiting(self) -> None:
        if not self._warned_waiting:
            self._warned_waiting = True
            log.warning(
                "waiting for the hub's session on %s (start the hub once: until then nothing is"
                " sent and the outbox keeps everything)",
                self._broker,
            )

    def close(self, grace_s: float = 5.0) -> None:
        """Ask ``run()`` to drain for up to ``grace_s``, publish offline state and return."""
        self._stop.set()
        self._grace_s = grace_s
        self._wake.set()

    def _client(self) -> aiomqtt.Client:
        will = Envelope.wrap(
            node=self.node,
            epoch=self.outbox.epoch,
            seq=self.outbox.next_seq(),
            body=State(online=False),
        )
        endpoint = BrokerEndpoint(
            host=self.hub.host,
            port=self.hub.port,
            username=self.hub.username or self.node,
            password=self.hub.password.get_secret_value() or None,
            tls=self.hub.tls,
            keepalive_s=self.hub.keepalive_s,
        )
        will_message = aiomqtt.Will(
            uplink_topic(self.node, MessageKind.STATE), codec.encode(will), qos=1, retain=True
        )
        return make_client(
            endpoint, identifier=self.node, will=will_message, timeout_s=self.publish_timeout_s
        )

    async def _publish_state(self, client: aiomqtt.Client, *, online: bool) -> None:
        envelope = Envelope.wrap(
            node=self.node,
            epoch=self.outbox.epoch,
            seq=self.outbox.next_seq(),
            body=State(online=online),
        )
        await client.publish(
            uplink_topic(self.node, MessageKind.STATE), codec.encode(envelope), qos=1, retain=True
        )

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish batches of rows until stopping (then for at most the grace period)."""
        # aiomqtt warns past this many unacknowledged publishes: a full batch is expected
        client.pending_calls_threshold = max(client.pending_calls_threshold, self.max_in_flight)
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            if self._stop.is_set() and deadline is None:
                deadline = loop.time() + self._grace_s
            self._wake.clear()
            rows = self.outbox.pending(self.max_in_flight, live_share=self.live_share)
            if rows:
                wait_s = None if deadline is None else max(0.0, deadline - loop.time())
                await self._publish_batch(client, rows, wait_s)
            if deadline is not None and (not rows or loop.time() >= deadline):
                return
            if not rows:
                try:
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def _publish_batch(
        self, client: aiomqtt.Client, rows: list[OutboxRow], wait_s: float | None
    ) -> None:
        """Publish ``rows`` all in flight at once; delete those the broker acknowledged.

        Raises the first publish failure (after deleting the rows that did get through).
        """
        ready = [(row, payload) for row in rows if (payload := self._encode(row)) is not None]
        if not ready:
            return
        try:
            self.outbox.mark_sent(row.seq for row, _ in ready)
        except OutboxWriteError:  # logged by the outbox; nothing was sent
            await self._sleep_unless_stopping(1.0)
            return
        tasks = {
            asyncio.create_task(
                client.publish(uplink_topic(self.node, row.kind), payload, qos=1)
            ): row
            for row, payload in ready
        }
        try:
            done, _ = await asyncio.wait(tasks, timeout=wait_s)
        finally:
            for task in tasks:
                task.cancel()
        delivered = [tasks[t] for t in done if not t.cancelled() and t.exception() is None]
        try:
            self.outbox.ack_many(row.seq for row in delivered)
        except OutboxWriteError:  # logged by the outbox; the rows go again (the hub dedupes)
            await self._sleep_unless_stopping(1.0)
        for row in delivered:
            self.published[row.kind.value] += 1
            UPLINK_PUBLISHED.labels(row.kind.value).inc()
        failures = [t.exception() for t in done if not t.cancelled() and t.exception()]
        if failures:
            raise failures[0]  # type: ignore[misc]

    def _encode(self, row: OutboxRow) -> bytes | None:
        """The row's envelope, or None when it can never be sent (discarded and counted)."""
        try:  # the row's body was serialised by its model: spliced in, not re-validated
            return codec.encode_stored(
                node=self.node,
                epoch=self.outbox.epoch,
                seq=row.seq,
                kind=row.kind,
                body_json=row.body,
                max_bytes=self.max_message_bytes,
            )
        except ProtocolError as exc:
            self._discard(row, getattr(exc, "reason", "unencodable"), exc)
        return None

    def _discard(self, row: OutboxRow, reason: str, exc: Exception) -> None:
        log.error("outbox seq %d (%s) discarded: %s", row.seq, row.kind.value, exc)
        self.outbox.discard(row, reason)
        self.discarded[reason] += 1

    async def _sleep_unless_stopping(self, delay: float) -> None:
        try:
            async with asyncio.timeout(delay):
                await self._stop.wait()
        except TimeoutError:
            pass
