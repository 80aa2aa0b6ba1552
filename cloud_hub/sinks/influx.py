"""InfluxDB 2 sink: every stored telemetry window also written as line protocol to a bucket.

Design
------
* Ingest never waits for InfluxDB: ``offer`` appends the committed windows to a bounded buffer
  (counted in points) and returns; a full buffer drops what is offered and counts it
  (``campus_influx_dropped_points_total{reason="buffer_full"}``). One thread writes.
* Batches of at most ``batch_points`` lines go out gzip-compressed through influxdb-client's
  synchronous write API (its own retries off; the decisions below are ours):
  - 413 (payload too large): the batch is split in halves, each written on its own; a single
    line still too large is dropped (``too_large``);
  - 429 / 503: wait ``Retry-After`` seconds (bounded by ``max_retry_after_s``), then retry;
  - 400 / 422 (the server refuses the data): dropped and counted (``rejected``), never retried;
  - anything else (connection refused, 5xx): exponential back-off, then retry; the buffer keeps
    filling meanwhile, bounded as above.
* ``close`` flushes what is buffered within ``shutdown_timeout_s``; what is left is counted as
  dropped (``shutdown``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
from prometheus_client import Counter, Gauge
from urllib3.exceptions import HTTPError

from campus_mqtt import Backoff
from campus_protocol import Telemetry
from cloud_hub.settings import InfluxSettings

log = logging.getLogger(__name__)

INFLUX_WRITTEN = Counter("campus_influx_written_points_total", "Points accepted by InfluxDB.")
INFLUX_DROPPED = Counter(
    "campus_influx_dropped_points_total", "Points the InfluxDB sink gave up on.", ["reason"]
)
INFLUX_BUFFERED = Gauge("campus_influx_buffered_points", "Points waiting for InfluxDB.")
MEASUREMENT = "campus_window"


def _escape_tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _escape_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def window_lines(node: str, window: Telemetry) -> list[str]:
    """One line per point: tags node, device, profile, room, point; fields count, min, max, mean,
    last (p95 when present) and unit; time = window end in milliseconds."""
    at = _millis(window.window_end)
    common = (
        f"{MEASUREMENT},node={_escape_tag(node)},device={_escape_tag(window.device)},"
        f"profile={_escape_tag(window.profile)},room={_escape_tag(window.room)}"
    )
    lines = []
    for point, stats in window.points.items():
        fields = (
            f"count={stats.count}i,min={stats.min!r},max={stats.max!r},mean={stats.mean!r},"
            f"last={stats.last!r}"
        )
        if stats.p95 is not None:
            fields += f",p95={stats.p95!r}"
        if stats.unit:
            fields += f',unit="{_escape_string(stats.unit)}"'
        lines.append(f"{common},point={_escape_tag(point)} {fields} {at}")
    return lines


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class InfluxSink:
    """Copy stored windows to InfluxDB from a background thread; see the module docstring."""

    def __init__(self, settings: InfluxSettings) -> None:
        self.settings = settings
        self._client = InfluxDBClient(
            url=settings.url,
            token=settings.token.get_secret_value(),
            org=settings.org,
            enable_gzip=True,
            timeout=int(settings.timeout_s * 1000),
            retries=False,
        )
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self._buffer: deque[str] = deque()
        self._lock = threading.Condition()
        self._closing = False
        self._deadline = float("inf")  # monotonic time by which close() gives up
        self.written = 0
        self.dropped: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, name="influx-sink", daemon=True)
        self._thread.start()

    # -- ingest side -----------------------------------------------------------------------

    def offer(self, windows: Sequence[tuple[str, Telemetry]]) -> None:
        """Queue ``(node, window)`` pairs that were just committed; never blocks on InfluxDB."""
        lines = [line for node, window in windows for line in window_lines(node, window)]
        if not lines:
            return
        with self._lock:
            if self._closing or len(self._buffer) + len(lines) > self.settings.max_buffer_points:
                self._drop("buffer_full", len(lines))
                return
            self._buffer.extend(lines)
            INFLUX_BUFFERED.set(len(self._buffer))
            if len(self._buffer) >= self.settings.batch_points:
                self._lock.notify()

    def close(self) -> None:
        """Flush what is buffered within ``shutdown_timeout_s``, then stop; the rest is dropped
        and counted."""
        with self._lock:
            self._closing = True
            self._deadline = time.monotonic() + self.settings.shutdown_timeout_s
            self._lock.notify()
        self._thread.join(self.settings.shutdown_timeout_s + self.settings.timeout_s + 1)
        with self._lock:
            if self._buffer:
                self._drop("shutdown", len(self._buffer))
                self._buffer.clear()
                INFLUX_BUFFERED.set(0)
        self._client.close()

    @property
    def buffered(self) -> int:
        with self._lock:
            return len(self._buffer)

    # -- writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        backoff = Backoff(min_s=0.5, max_s=30)
        while True:
            with self._lock:
                if not self._closing and len(self._buffer) < self.settings.batch_points:
                    self._lock.wait(self.settings.flush_interval_s)
                if self._closing and (not self._buffer or time.monotonic() >= self._deadline):
                    return
                batch = [
                    self._buffer.popleft()
                    for _ in range(min(self.settings.batch_points, len(self._buffer)))
                ]
            if not batch:
                continue
            unsent, retry_in = self._send(batch)
            if not unsent:
                backoff.reset()
                continue
            with self._lock:  # put the rest back in front, in order, and wait
                self._buffer.extendleft(reversed(unsent))
                wait = min(retry_in or backoff.next_delay(), self._left())
                self._lock.wait(wait)

    def _left(self) -> float:
        """Seconds until close() gives up (unbounded while running)."""
        return max(0.0, self._deadline - time.monotonic())

    def _send(self, batch: list[str]) -> tuple[list[str], float]:
        """Write ``batch``; returns the lines not settled (neither written nor dropped) and the
        seconds to wait before retrying them (0: use the back-off)."""
        try:
            self._write.write(
                bucket=self.settings.bucket,
                org=self.settings.org,
                record="\n".join(batch),
                write_precision=WritePrecision.MS,  # type: ignore[arg-type]  # a str constant
            )
        except ApiException as exc:
            return self._refused(batch, exc)
        except (HTTPError, OSError) as exc:
            log.warning("InfluxDB unreachable (%d points kept): %s", len(batch), exc)
            return batch, 0
        self.written += len(batch)
        INFLUX_WRITTEN.inc(len(batch))
        return [], 0

    def _refused(self, batch: list[str], exc: ApiException) -> tuple[list[str], float]:
        status = exc.status or 0
        if status == 413:
            if len(batch) == 1:
                self._drop("too_large", 1)
                return [], 0
            half = len(batch) // 2
            first, wait = self._send(batch[:half])
            if first:
                return first + batch[half:], wait
            return self._send(batch[half:])
        if status in (429, 503):
            return batch, self._retry_after(exc)
        if status in (400, 422):
            log.warning("InfluxDB refused %d points (%d): %s", len(batch), status, exc.body)
            self._drop("rejected", len(batch))
            return [], 0
        log.warning("InfluxDB write failed (%s), %d points kept", status, len(batch))
        return batch, 0

    def _retry_after(self, exc: ApiException) -> float:
        headers: Mapping[str, str] = exc.headers or {}
        try:
            seconds = float(headers.get("Retry-After", ""))
        except ValueError:
            return 0
        return min(max(seconds, 0.001), self.settings.max_retry_after_s)

    def _drop(self, reason: str, points: int) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + points
        INFLUX_DROPPED.labels(reason=reason).inc(points)


def sink_for(settings: InfluxSettings | None) -> InfluxSink | None:
    """The sink the hub's settings ask for, or None (no InfluxDB configured)."""
    return InfluxSink(settings) if settings is not None else None
