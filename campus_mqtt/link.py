"""A long-lived MQTT link: connect, work, reconnect with back-off; log the change, count every
failure (error when the link starts failing, info once when it recovers)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiomqtt

from campus_mqtt.backoff import Backoff

log = logging.getLogger(__name__)


@dataclass
class LinkState:
    """What a status page shows about a link: connected, failures, last error and since when."""

    name: str
    on_change: Callable[[bool], None] | None = None
    on_failure: Callable[[str], None] | None = None
    connected: bool = False
    connects: int = 0
    failures: int = 0
    last_error: BaseException | None = None
    failing_since: float | None = None  # time.time() of the first failure of the current run
    _failing: bool = field(default=False, repr=False)

    def up(self) -> None:
        """The link is connected (log once if it had been failing)."""
        if not self.connected:
            log.info("%s %s", self.name, "recovered" if self._failing else "connected")
        self.connects += 1
        self._failing, self.failing_since, self.last_error = False, None, None
        self._set(True)

    def down(self, exc: BaseException) -> None:
        """A connection attempt failed or the connection was lost."""
        error_type = "connection_lost" if self.connected else "connect"
        self.failures += 1
        self.last_error = exc
        if self.on_failure is not None:
            self.on_failure(error_type)
        if not self._failing:
            log.error("%s failing: %s", self.name, exc)
            self._failing, self.failing_since = True, time.time()
        self._set(False)

    def closed(self) -> None:
        """The link was closed on purpose (stopping): not a failure."""
        self._set(False)

    def _set(self, connected: bool) -> None:
        changed = connected != self.connected
        self.connected = connected
        if changed and self.on_change is not None:
            self.on_change(connected)


async def run_reconnecting(
    session: Callable[[], Awaitable[bool]],
    *,
    link: LinkState,
    backoff: Backoff,
    stopping: asyncio.Event | None = None,
) -> None:
    """Run ``session`` until it returns True (done for good) or ``stopping`` is set.

    ``session`` connects, calls ``link.up()`` once connected and works; an ``aiomqtt.MqttError``
    from it is a failed attempt (``link.down``), retried after ``backoff.next_delay()``. The
    back-off restarts from its minimum after every session that got connected.
    """
    stopping = stopping or asyncio.Event()
    while not stopping.is_set():
        connects_before = link.connects
        try:
            if await session():
                link.closed()
                return
            raise aiomqtt.MqttError("the session ended")
        except aiomqtt.MqttError as exc:
            link.down(exc)
        if link.connects != connects_before:
            backoff.reset()
        delay = backoff.next_delay()
        try:
            async with asyncio.timeout(delay):
                await stopping.wait()
        except TimeoutError:
            pass
