"""The InfluxDB 2 sink, against a local HTTP server that checks every request.

InfluxDB 2 cannot run on this machine (no package, no container runtime), so ``InfluxServer``
below stands in for its write endpoint: it checks what a real server would (path, Authorization
token, org, bucket, precision, gzip body, line protocol) and answers as scripted (204, 413, 429
with Retry-After, 400)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import Telemetry, TelemetryBatch
from cloud_hub.ingest.worker import IngestWorker
from cloud_hub.settings import InfluxSettings
from cloud_hub.sinks.influx import InfluxSink, window_lines
from device_profiles.schema import Profile
from tests.hub.builders import CO2, T0, message, stats

TOKEN = "s3cret-token"


@dataclass
class InfluxServer:
    """A write endpoint: ``script`` holds (status, headers) answers, used up in order (then 204);
    ``max_lines`` answers 413 to bodies with more lines."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    max_lines: int | None = None
    requests: list[dict[str, object]] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def handle(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str]]:
        url = urlparse(handler.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        raw = handler.rfile.read(int(handler.headers["Content-Length"]))
        expected = {
            "path": (url.path, "/api/v2/write"),
            "authorization": (handler.headers["Authorization"], f"Token {TOKEN}"),
            "org": (query.get("org"), "campus"),
            "bucket": (query.get("bucket"), "telemetry"),
            "precision": (query.get("precision"), "ms"),
            "content-encoding": (handler.headers["Content-Encoding"], "gzip"),
        }
        self.problems += [f"{k}: {got!r} != {w!r}" for k, (got, w) in expected.items() if got != w]
        lines = gzip.decompress(raw).decode().splitlines()
        self.requests.append({"at": time.monotonic(), "lines": len(lines)})
        if self.max_lines is not None and len(lines) > self.max_lines:
            return 413, {}
        status, headers = self.script.pop(0) if self.script else (204, {})
        if status == 204:
            self.stored += lines
        return status, headers


@pytest.fixture
def influx() -> Iterator[tuple[InfluxServer, str]]:
    server = InfluxServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            status, headers = server.handle(self)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def settings(url: str, **overrides: object) -> InfluxSettings:
    values: dict[str, object] = {
        "url": url, "token": SecretStr(TOKEN), "org": "campus", "bucket": "telemetry",
        "flush_interval_s": 0.05, "shutdown_timeout_s": 5,
    }  # fmt: skip
    return InfluxSettings.model_validate({**values, **overrides})


def window(device: str, co2: float, *, start_s: float = 0) -> Telemetry:
    start = T0 + timedelta(seconds=start_s)
    return Telemetry(
        device=device, profile=CO2, room="r101", window_start=start,
        window_end=start + timedelta(seconds=10), points={"co2": stats(co2, unit="ppm")},
    )  # fmt: skip


def wait_for(condition: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)


def test_stored_windows_reach_the_bucket_as_gzip_line_protocol(
    influx: tuple[InfluxServer, str],
    sessions: sessionmaker[Session],
    profiles: dict[str, Profile],
) -> None:
    server, url = influx
    sink = InfluxSink(settings(url))
    worker = IngestWorker(sessions, profiles=profiles, window_sink=sink.offer)
    batch = TelemetryBatch(windows=[window("co2-1", 500), window("co2-2", 510)])

    worker.process(*message("gw-1", 1, batch))
    worker.process(*message("gw-1", 1, batch))  # a duplicate stores nothing, sends nothing
    sink.close()

    assert server.problems == []
    assert sorted(server.stored) == [
        "campus_window,node=gw-1,device=co2-1,profile=sensecap_s_co2_03,room=r101,point=co2 "
        'count=1i,min=500.0,max=500.0,mean=500.0,last=500.0,unit="ppm" 1772438410000',
        "campus_window,node=gw-1,device=co2-2,profile=sensecap_s_co2_03,room=r101,point=co2 "
        'count=1i,min=510.0,max=510.0,mean=510.0,last=510.0,unit="ppm" 1772438410000',
    ]
    assert sink.written == 2 and sink.dropped == {}


def test_a_batch_the_server_finds_too_large_is_split_until_it_fits(
    influx: tuple[InfluxServer, str],
) -> None:
    server, url = influx
    server.max_lines = 3
    sink = InfluxSink(settings(url, batch_points=10, flush_interval_s=5))

    sink.offer([("gw-1", window(f"d-{i}", 500 + i)) for i in range(10)])
    sink.close()

    assert server.problems == []
    assert len(server.stored) == 10 and sink.written == 10
    assert [r["lines"] for r in server.requests] == [10, 5, 2, 3, 5, 2, 3]


def test_429_is_retried_after_the_seconds_the_server_asks_for(
    influx: tuple[InfluxServer, str],
) -> None:
    server, url = influx
    server.script = [(429, {"Retry-After": "1"})]
    sink = InfluxSink(settings(url))

    sink.offer([("gw-1", window("co2-1", 500))])
    wait_for(lambda: sink.written == 1)
    sink.close()

    first, second = server.requests
    assert second["at"] - first["at"] >= 0.95  # type: ignore[operator]
    assert server.stored and sink.dropped == {}


def test_data_the_server_refuses_is_dropped_and_counted_and_the_rest_goes_on(
    influx: tuple[InfluxServer, str],
) -> None:
    server, url = influx
    server.script = [(400, {})]
    sink = InfluxSink(settings(url))

    sink.offer([("gw-1", window("co2-1", 500))])
    wait_for(lambda: sink.dropped)
    sink.offer([("gw-1", window("co2-2", 510))])
    sink.close()

    assert sink.dropped == {"rejected": 1}
    assert len(server.stored) == 1 and "device=co2-2" in server.stored[0]


def test_a_full_buffer_drops_and_counts_without_blocking_and_close_is_bounded(
    influx: tuple[InfluxServer, str],
) -> None:
    server, url = influx
    server.script = [(503, {"Retry-After": "30"})] * 5  # InfluxDB busy for longer than we wait
    sink = InfluxSink(settings(url, max_buffer_points=3, shutdown_timeout_s=0.5))

    started = time.monotonic()
    for i in range(5):
        sink.offer([("gw-1", window("co2-1", 500, start_s=10 * i))])
    offered_in = time.monotonic() - started
    wait_for(lambda: server.requests)
    closing = time.monotonic()
    sink.close()

    assert offered_in < 0.5
    assert time.monotonic() - closing < 3
    assert sink.dropped == {"buffer_full": 2, "shutdown": 3}
    assert sink.written == 0


def test_line_protocol_escapes_tags_and_strings() -> None:
    odd = Telemetry.model_construct(  # identifiers cannot hold these today; the escaping can
        device="d,1", profile=CO2, room="a=b", window_start=T0,
        window_end=T0 + timedelta(seconds=1), points={"co2": stats(1, unit='p"m')},
    )  # fmt: skip

    (line,) = window_lines("gw 1", odd)

    assert line.startswith("campus_window,node=gw\\ 1,device=d\\,1,profile=sensecap_s_co2_03,")
    assert "room=a\\=b" in line and 'unit="p\\"m"' in line
