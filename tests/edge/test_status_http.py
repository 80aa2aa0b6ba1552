"""The technician status page: a real Agent serving /status, /metrics and / over HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from campus_forward.metrics import BudgetReport
from campus_protocol.messages import SiteIdentity
from cloud_hub.broker import MosquittoBroker
from edge_agent.app import Agent
from edge_agent.cli import SAMPLE_CONFIG
from edge_agent.settings import AgentSettings
from edge_agent.status_http import render_page
from edge_agent.status_view import DeviceStatusView, StatusSnapshot
from tests.edge.support import PROFILE, VALUES, free_port, wait_until
from tests.waiting import DEADLINE_S, PROCESS_START_S

HOSTILE_ROOM = "<script>alert('room')</script>"
SITE = {"city_id": "c1", "district_id": "d1", "school_id": "s1", "school_name": "Pine & Oak"}


def agent_settings(
    broker: MosquittoBroker, data_dir: Path, devices: list[dict[str, Any]], **extra: Any
) -> AgentSettings:
    return AgentSettings.model_validate(
        {
            "gateway": {"id": "gw-1", "site": SITE},
            "hub": {
                "host": broker.host,
                "port": broker.port,
                "password": broker.password_for("gw-1"),
                "tls": {"ca_file": broker.ca_file},
            },
            "data_dir": data_dir,
            "window_s": 0.5,
            "heartbeat_s": 0.4,
            "status_port": 0,
            "devices": devices,
            **extra,
        }
    )


def meter(port: int, device_id: str, room_name: str = "") -> dict[str, Any]:
    """A meter polled every 0.1 s; it is failing only when it cannot be reached at all (a slow
    answer on a loaded machine is not the failure these tests look at)."""
    return {
        "id": device_id,
        "profile": PROFILE.id,
        "room": "lab-3",
        "room_name": room_name,
        "modbus": {"host": "127.0.0.1", "port": port, "poll_interval_s": 0.1, "timeout_s": 10},
    }


@pytest.fixture
async def running_agent(
    mosquitto_broker: MosquittoBroker, modbus_server: Any, tmp_path: Path
) -> AsyncIterator[Agent]:
    """An agent with one healthy meter and one dead endpoint, both settled, page listening."""
    server = await modbus_server(PROFILE, VALUES)
    agent = Agent(
        agent_settings(
            mosquitto_broker,
            tmp_path,
            [meter(server.port, "lab-3-meter"), meter(free_port(), "lab-3-dead", HOSTILE_ROOM)],
        ),
        {PROFILE.id: PROFILE},
        stop_grace_s=1.0,
    )
    task = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.ready.wait(), DEADLINE_S)
    await wait_until(
        lambda: (
            agent.uplink.connected
            and {d.device: d.status for d in agent.status().devices}
            == {"lab-3-meter": "online", "lab-3-dead": "offline"}
        )
    )
    try:
        yield agent
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, DEADLINE_S)


async def test_status_json_shows_the_healthy_device_online_and_the_dead_one_offline(
    running_agent: Agent,
) -> None:
    async with httpx.AsyncClient(base_url=str(running_agent.status_url)) as http:
        response = await http.get("/status")

    assert response.status_code == 200
    status = response.json()
    assert status["gateway"] == "gw-1"
    assert status["uplink_connected"] is True
    assert isinstance(status["outbox_depth"], int)
    assert "windows_enqueued" in status and "messages_published" in status
    devices = {d["device"]: d for d in status["devices"]}
    assert devices["lab-3-meter"]["status"] == "online"
    assert devices["lab-3-meter"]["last_error"] == ""
    assert devices["lab-3-meter"]["failing_for_s"] is None
    assert devices["lab-3-meter"]["values"]["power"] == 1234.5
    dead = devices["lab-3-dead"]
    assert dead["status"] == "offline"
    assert "cannot connect" in dead["last_error"]
    assert dead["failing_for_s"] is not None and dead["failing_for_s"] >= 0
    assert dead["room_name"] == HOSTILE_ROOM


async def test_metrics_are_served_as_prometheus_text(running_agent: Agent) -> None:
    async with httpx.AsyncClient(base_url=str(running_agent.status_url)) as http:
        response = await http.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert re.search(r'^campus_source_readings_total\{protocol="modbus"\} \d', response.text, re.M)
    assert "campus_uplink_connected 1.0" in response.text


async def test_html_page_lists_devices_highlights_failing_ones_and_escapes_room_names(
    running_agent: Agent,
) -> None:
    async with httpx.AsyncClient(base_url=str(running_agent.status_url)) as http:
        response = await http.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<meta http-equiv="refresh" content="5">' in page
    assert "gw-1" in page and "Pine &amp; Oak" in page and "connected" in page
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;room&#x27;)&lt;/script&gt;" in page
    rows = {
        device: row
        for row in re.findall(r"<tr[^>]*>.*?</tr>", page, re.S)
        for device in ("lab-3-meter", "lab-3-dead")
        if f"<td>{device}</td>" in row
    }
    assert 'class="failing"' in rows["lab-3-dead"] and "cannot connect" in rows["lab-3-dead"]
    assert 'class="failing"' not in rows["lab-3-meter"]
    assert "<td>online</td>" in rows["lab-3-meter"] and " ago)" in rows["lab-3-meter"]
    assert "power 1234.5 W" in rows["lab-3-meter"], "the current values, with their units"


def test_html_page_escapes_hostile_device_and_uplink_errors() -> None:
    device = DeviceStatusView(
        device="rec-1",
        profile="recording_room_controller",
        room="rec-1",
        room_name="Studio",
        protocol="mqtt",
        status="offline",
        last_ok_at=None,
        consecutive_failures=3,
        last_error='bad payload: <img src=x onerror="alert(1)">',
        failing_for_s=75.0,
        invalid_values=0,
    )
    snapshot = StatusSnapshot(
        gateway="gw-1",
        started_at=0.0,
        taken_at=100.0,
        devices=[device],
        uplink_connected=False,
        uplink_last_error="<b>refused</b>",
        outbox_depth=12,
        outbox=BudgetReport(
            bytes=3 * 2**20,
            budget_bytes=4 * 2**20,
            offline_autonomy_h=2.5,
            merged_windows=360,
            discarded_windows=90,
            discarded={"telemetry:disk_budget": 2, "event:<i>x</i>": 1},
            disk="disk_full",
        ),
        windows_enqueued=0,
        messages_published={},
        messages_discarded={},
    )

    page = render_page(snapshot, SiteIdentity.model_validate(SITE))

    assert "<img" not in page and "<b>" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "disconnected</span> (&lt;b&gt;refused&lt;/b&gt;)" in page
    assert "<td>never</td><td>1 min 15 s</td>" in page
    assert "<dt>Outbox depth</dt><dd>12</dd>" in page
    assert '<span class="bad">disk full</span>, 3.0 of 4 MiB (75 %)' in page
    assert "<dt>Offline autonomy</dt><dd>2.5 h at the current rate</dd>" in page
    assert "<dt>Windows merged</dt><dd>360</dd>" in page
    assert "telemetry:disk_budget: 2, event:&lt;i&gt;x&lt;/i&gt;: 1 (90 windows)" in page


async def test_status_page_leaves_signal_handlers_alone_and_is_gone_after_stop(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    handlers_before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    agent = Agent(agent_settings(mosquitto_broker, tmp_path, []), {PROFILE.id: PROFILE})
    task = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.ready.wait(), DEADLINE_S)
    url = str(agent.status_url)
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/status")).json()["devices"] == []
        assert {
            sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)
        } == handlers_before

        agent.request_stop()
        await asyncio.wait_for(task, DEADLINE_S)

        with pytest.raises(httpx.ConnectError):
            await http.get("/status")
    assert agent.status_port_bound is not None and url.endswith(f":{agent.status_port_bound}/")


async def test_a_taken_status_port_leaves_the_agent_running_without_the_page(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        agent = Agent(
            agent_settings(mosquitto_broker, tmp_path, [], status_port=port),
            {PROFILE.id: PROFILE},
        )
        task = asyncio.create_task(agent.run())
        await asyncio.wait_for(agent.ready.wait(), DEADLINE_S)
        await wait_until(lambda: agent.uplink.connected)

        assert agent.status_url is None and agent.status_port_bound is None
        agent.request_stop()
        await asyncio.wait_for(task, DEADLINE_S)


async def test_cli_run_prints_the_status_url_and_its_flag_wins_over_the_yaml(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    config = yaml.safe_load(SAMPLE_CONFIG)
    config["gateway"]["id"] = "gw-1"
    config["hub"] = {
        "host": mosquitto_broker.host,
        "port": mosquitto_broker.port,
        "password": mosquitto_broker.password_for("gw-1"),
        "tls": {"ca_file": str(mosquitto_broker.ca_file)},
    }
    config["data_dir"] = str(tmp_path / "data")
    config["status_port"] = 1  # the --status-port flag must win over this
    config["devices"] = [config["devices"][0]]
    config["devices"][0]["modbus"] = {"host": "127.0.0.1", "port": free_port()}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "campus_cli.main",
        "agent",
        "run",
        "--config",
        str(path),
        "--status-port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), PROCESS_START_S)).decode()
        match = re.fullmatch(r"status page: (http://127\.0\.0\.1:(\d+)/)\n", line)
        assert match, line
        assert int(match[2]) not in (0, 1)
        async with httpx.AsyncClient(base_url=match[1]) as http:
            status = (await http.get("/status")).json()
        assert status["gateway"] == "gw-1"
        assert [d["device"] for d in status["devices"]] == ["room-101-lights"]

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), DEADLINE_S) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
