"""Codec throughput on a realistic telemetry envelope (one device window, 8 points).

Run: ``.venv/bin/python bench/codec.py [seconds-per-case]``. ``orjson.loads`` of the same
bytes is the reference limit: parsing without any validation.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.metadata import version

import orjson

from campus_protocol import Envelope, PointStats, Telemetry, decode, encode, parse_topic

POINTS = {
    "temperature": ("°C", 21.4),
    "humidity": ("%RH", 46.0),
    "co2": ("ppm", 812.0),
    "illuminance": ("lx", 415.0),
    "pm2_5": ("ug/m3", 12.0),
    "noise": ("dBA", 48.5),
    "power": ("W", 1240.0),
    "energy": ("kWh", 18231.7),
}


def sample_envelope() -> Envelope:
    """A one-minute window of an environment + energy device in a classroom."""
    start = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    points = {
        name: PointStats(count=12, min=v * 0.97, max=v * 1.03, mean=v, last=v * 1.01, unit=unit)
        for name, (unit, v) in POINTS.items()
    }
    body = Telemetry(
        device="room-101-env",
        profile="renke_rs_gzws_n01",
        room="r101",
        window_start=start,
        window_end=start + timedelta(minutes=1),
        points=points,
    )
    return Envelope.wrap(
        node="gw-1", epoch="bench", seq=123_456, body=body, sent_at=start + timedelta(seconds=61)
    )


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn``, best of three runs of about ``seconds / 3`` each."""
    best = 0.0
    for _ in range(3):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 3:
            for _ in range(200):
                fn()
            calls += 200
        best = max(best, calls / elapsed)
    return best


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    envelope = sample_envelope()
    payload = encode(envelope)
    topic = parse_topic("campus/v1/gw-1/up/telemetry")
    print(
        f"{platform.platform()} | python {platform.python_version()} | "
        f"orjson {version('orjson')} | pydantic {version('pydantic')}"
    )
    print(f"payload: telemetry, {len(POINTS)} points, {len(payload)} bytes")
    cases: dict[str, Callable[[], object]] = {
        "encode": lambda: encode(envelope),
        "decode (with topic)": lambda: decode(payload, topic=topic),
        "orjson.loads (reference)": lambda: orjson.loads(payload),
    }
    for name, fn in cases.items():
        print(f"{name:<26} {rate(fn, seconds):>12,.0f} msg/s")


if __name__ == "__main__":
    main()
