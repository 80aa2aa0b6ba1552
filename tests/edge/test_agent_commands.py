"""The agent answers hub commands on ``up/cmdres``: it refuses, with a clear result and before
writing anything, commands for unknown devices, read-only points, out-of-range values, unknown
actions, malformed bodies and expired commands; a resent command is answered, not re-executed.
(Real Mosquitto with the gateway ACL, real pymodbus device.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from campus_protocol import codec
from campus_protocol.envelope import Envelope
from campus_protocol.messages import Command, CommandResult
from cloud_hub.broker import MosquittoBroker
from device_profiles.loader import load_profiles
from edge_agent.app import Agent
from tests.edge.support import wait_until
from tests.edge.test_agent import settings
from tests.scenarios.support import hub_link
from tests.waiting import DEADLINE_S

LIGHTS = "arlight_dali_logic_lite"


def lights(port: int) -> dict[str, Any]:
    return {
        "id": "room-101-lights",
        "profile": LIGHTS,
        "room": "room-101",
        "modbus": {"host": "127.0.0.1", "port": port, "poll_interval_s": 0.2},
    }


def command(command_id: str, name: str = "write", device: str = "room-101-lights", **args: Any):
    body = Command(id=command_id, name=name, device=device, args=args)
    return codec.encode(Envelope.wrap(node="gw-1", epoch="hub", seq=1, body=body))


async def test_bad_commands_are_refused_with_a_clear_result(
    mosquitto_broker: MosquittoBroker, modbus_server: Any, tmp_path: Path
) -> None:
    profiles = load_profiles()
    server = await modbus_server(profiles[LIGHTS], {"group_0_level": 200})
    agent = Agent(settings(mosquitto_broker, tmp_path, [lights(server.port)]), profiles)
    expired = Command(
        id="c-expired",
        name="write",
        device="room-101-lights",
        args={"point": "group_0_set_level", "value": 10},
        expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    malformed = orjson.loads(command("c-malformed"))
    del malformed["body"]["name"]
    sends = [
        command("c-unknown-device", device="gym-lights", point="group_0_set_level", value=1),
        command("c-read-only", point="group_0_level", value=100),
        command("c-out-of-range", point="group_0_set_level", value=300),
        command("c-not-a-number", point="group_0_set_level", value="bright"),
        command("c-unknown-point", point="group_9_set_level", value=10),
        command("c-unknown-action", name="action", action="disco"),
        command("c-unknown-name", name="reboot"),
        orjson.dumps(malformed),
        b"{not json",
        codec.encode(Envelope.wrap(node="gw-1", epoch="hub", seq=2, body=expired)),
    ]
    async with hub_link(mosquitto_broker) as hub:
        task = asyncio.create_task(agent.run())
        await wait_until(hub.agent_listening)
        for payload in sends:
            await hub.send(payload)

        def results() -> dict[str, CommandResult]:
            return {e.body.id: e.body for e in hub.received if isinstance(e.body, CommandResult)}

        await wait_until(lambda: len(results()) == len(sends))
        agent.request_stop()
        await asyncio.wait_for(task, DEADLINE_S)

    answers = {
        key: (r.status.value if r.status else None, r.detail) for key, r in results().items()
    }
    assert answers["c-unknown-device"] == ("rejected", "no device 'gym-lights' on this gateway")
    assert answers["c-read-only"] == (
        "rejected",
        "room-101-lights: point 'group_0_level' is read-only",
    )
    assert answers["c-out-of-range"] == (
        "rejected",
        "room-101-lights.group_0_set_level: 300 outside 0..254",
    )
    assert answers["c-not-a-number"] == (
        "rejected",
        "room-101-lights.group_0_set_level: value must be a number",
    )
    assert answers["c-unknown-point"] == (
        "rejected",
        "room-101-lights: no point 'group_9_set_level'",
    )
    assert answers["c-unknown-action"][0] == "rejected"
    assert "no action 'disco'" in answers["c-unknown-action"][1]
    assert answers["c-unknown-name"] == ("rejected", "unknown command 'reboot' (write, action)")
    assert answers["c-malformed"][0] == "rejected"
    assert answers["c-malformed"][1].startswith("malformed command:")
    assert answers["unknown"][0] == "rejected"  # not JSON: no id to answer to
    assert answers["c-expired"] == ("expired", "arrived after it expired")
    assert [r for r in server.requests if "Write" in r[0]] == []  # nothing reached the device
