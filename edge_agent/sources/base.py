"""The Source interface every protocol implements, the batch it emits and per-device state."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from campus_protocol.messages import DeviceHealth, DeviceStatus


@dataclass(frozen=True, slots=True)
class Reading:
    """Decoded values of one device taken at one moment (``at`` is UNIX time in seconds)."""

    device: str
    values: dict[str, float]
    at: float


Emit = Callable[[Reading], None]


@dataclass(kw_only=True)
class DeviceState:
    """What a source knows about one device's availability; sources update it, others read it.

    ``available`` is ``None`` until the first poll or message settles it.
    """

    device: str
    profile: str
    room: str
    room_name: str = ""
    protocol: str
    available: bool | None = None
    last_ok_at: float | None = None
    failing_since: float | None = None
    consecutive_failures: int = 0
    last_exception: BaseException | None = None
    invalid_values: int = 0
    _clock: Callable[[], float] = field(default=time.time, repr=False)

    @property
    def status(self) -> DeviceStatus:
        if self.available is None:
            return DeviceStatus.UNKNOWN
        return DeviceStatus.ONLINE if self.available else DeviceStatus.OFFLINE

    @property
    def last_error(self) -> str:
        return "" if self.last_exception is None else str(self.last_exception)[:500]

    def failing_for_s(self, now: float | None = None) -> float | None:
        """Seconds since the device went from OK to failing; ``None`` when it is not failing."""
        if self.failing_since is None or self.available is not False:
            return None
        return max(0.0, (now if now is not None else self._clock()) - self.failing_since)

    def to_health(self) -> DeviceHealth:
        """The heartbeat's view of this device."""
        return DeviceHealth(
            device=self.device,
            profile=self.profile,
            room=self.room,
            room_name=self.room_name[:200],
            protocol=self.protocol,
            status=self.status,
            last_ok_at=None
            if self.last_ok_at is None
            else datetime.fromtimestamp(self.last_ok_at, UTC),
            consecutive_failures=self.consecutive_failures,
            last_error=self.last_error,
        )


class Source(Protocol):
    """A protocol source: ``start`` launches its tasks and returns; ``stop`` ends them.

    Sources call ``emit`` from the event loop only, with one ``Reading`` per device poll or message.
    """

    protocol: str

    async def start(self, emit: Emit) -> None: ...

    async def stop(self) -> None: ...

    def device_states(self) -> list[DeviceState]: ...


_log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[None]], *, timeout_s: float = 5.0) -> None:
    """Cancel a source's tasks and wait for them, but never longer than ``timeout_s``.

    Client libraries sometimes swallow a cancellation (a pymodbus request turns it into an I/O
    error); a source must still stop, so a task that does not end in time is logged and left.
    """
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    _, stuck = await asyncio.wait(pending, timeout=timeout_s)
    for task in stuck:
        _log.error(
            "task %s did not stop within %.0f s of being cancelled", task.get_name(), timeout_s
        )


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that a library call swallowed.

    On Python 3.11 ``asyncio.wait_for`` (which pymodbus uses per request) loses a cancel that
    arrives as the response does: the request returns normally, or fails as a timeout, while the
    task stays marked as cancelling.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
