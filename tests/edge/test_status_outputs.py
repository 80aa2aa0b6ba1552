"""What the status page, its JSON and /metrics show, byte for byte, against recorded copies.

The page and the JSON are rendered from one fixed snapshot (a healthy meter and a failing
controller with hostile text, an outbox past its budget) in UTC. /metrics is the list of the
agent's metric families (their HELP and TYPE lines, sorted: the order follows imports) that a
fresh agent process registers, before any value is counted. A deliberate change of an output
means rewriting its file in tests/edge/golden/ with the new output shown in the failure.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from campus_forward.metrics import BudgetReport
from campus_protocol.messages import SiteIdentity
from edge_agent.status_http import render_page
from edge_agent.status_view import DeviceStatusView, StatusSnapshot

GOLDEN = Path(__file__).parent / "golden"
T = 1_764_000_000.0  # 2025-11-24 16:00:00 UTC

SNAPSHOT = StatusSnapshot(
    gateway="gw-1",
    started_at=T - 3600,
    taken_at=T,
    devices=[
        DeviceStatusView(
            device="lab-3-meter", profile="test_meter", room="lab-3", room_name="Chemistry lab",
            protocol="modbus", status="online", last_ok_at=T - 2, consecutive_failures=0,
            last_error="", failing_for_s=None, invalid_values=1,
            values={"power": 1234.5, "level": 7.0}, units={"power": "W"},
        ),
        DeviceStatusView(
            device="rec-1", profile="recording_room_controller", room="rec-1",
            room_name="<i>Studio</i>", protocol="mqtt", status="offline", last_ok_at=None,
            consecutive_failures=3, last_error='bad payload: <img src=x onerror="alert(1)">',
            failing_for_s=75.0, invalid_values=0,
        ),
    ],
    uplink_connected=False,
    uplink_last_error="<b>refused</b>",
    outbox_depth=12,
    outbox=BudgetReport(
        bytes=3 * 2**20, budget_bytes=4 * 2**20, offline_autonomy_h=2.5, merged_windows=360,
        discarded_windows=90, discarded={"telemetry:disk_budget": 2}, disk="disk_full",
    ),
    windows_enqueued=40,
    messages_published={"telemetry": 30, "health": 5},
    messages_discarded={"telemetry": 1},
)  # fmt: skip
SITE = SiteIdentity(city_id="c1", district_id="d1", school_id="s1", school_name="Pine & Oak")


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC while the test runs (the page shows gateway-local clock times)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def assert_same(name: str, output: str) -> None:
    recorded = (GOLDEN / name).read_text(encoding="utf-8")
    assert output == recorded, f"{name} changed; the output is now:\n{output}"


def test_status_page_is_unchanged(utc: None) -> None:
    assert_same("status_page.html", render_page(SNAPSHOT, SITE))


def test_status_json_is_unchanged() -> None:
    assert_same("status.json", json.dumps(SNAPSHOT.to_dict(), indent=1) + "\n")


def test_metrics_families_are_unchanged() -> None:
    script = (
        "import edge_agent.app\n"
        "from prometheus_client import generate_latest\n"
        "print(generate_latest().decode())\n"
    )
    metrics = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    families = sorted(
        line
        for line in metrics.splitlines()
        if line.startswith(("# HELP campus_", "# TYPE campus_"))
    )
    assert_same("metrics_families.txt", "".join(line + "\n" for line in families))


def test_status_page_says_when_the_uplink_waits_for_the_hubs_session() -> None:
    waiting = dataclasses.replace(SNAPSHOT, uplink_connected=True, uplink_waiting_for_hub=True)

    page = render_page(waiting, SITE)

    assert "connected, waiting for the hub's session</span> (start the hub once" in page
