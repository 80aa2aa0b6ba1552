"""Safety scenarios that write to devices: a gas leak with the uplink down (ventilation relay on,
read back, events ahead of the telemetry backlog when the uplink returns), a smoke alarm that
switches the lights to the emergency scene, and a hub command that dims a classroom's lights.
Real Mosquitto, pymodbus simulators, agent and hub; every outcome counted exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from campus_protocol import decode, parse_topic
from campus_protocol.envelope import Envelope
from campus_protocol.messages import Command, CommandResult, MessageKind, TelemetryBatch
from cloud_hub.broker import MosquittoBroker
from tests.scenarios.support import (
    GATEWAY,
    Dev,
    eventually,
    hub_link,
    running_hub,
    school,
)

VENTILATION = {
    "id": "lab_ventilation",
    "when": {"rule": "gas_level_1", "room": "chem-lab"},
    "run": {"device": "lab-relay", "action": "relay_1_on"},
    "on_clear": {"device": "lab-relay", "action": "relay_1_off"},
}
EMERGENCY_LIGHTING = {
    "id": "fire_lighting",
    "when": {"rule": "fire_alarm"},
    "run": {"device": "room-101-lights", "action": "emergency_scene"},
}


def record_ingest(hub_api: object) -> list[tuple[str, object]]:
    """Every message the hub ingests, in order: (kind, body)."""
    seen: list[tuple[str, object]] = []
    worker = hub_api.app.state.ingest.worker  # type: ignore[attr-defined]
    process_batch = worker.process_batch

    def recording(messages, **kwargs):  # type: ignore[no-untyped-def]
        for topic, payload in messages:
            seen.append((parse_topic(topic).kind.value, decode(payload).body))
        return process_batch(messages, **kwargs)

    worker.process_batch = recording
    return seen


def ended_after(body: object, at: datetime) -> bool:
    """Whether a telemetry message holds a window that ended after ``at``."""
    windows = body.windows if isinstance(body, TelemetryBatch) else [body]
    return any(window.window_end > at for window in windows)  # type: ignore[union-attr]


async def test_gas_leak_with_the_uplink_down(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    devices = [
        Dev("lab-gas", "honeywell_midas_gas", "chem-lab", {"concentration": 2.0}),
        Dev("lab-relay", "eletechsup_8ch_relay", "chem-lab"),
    ]
    with running_hub(mosquitto_broker, tmp_path) as hub:
        ingested = record_ingest(hub.api)
        async with school(
            mosquitto_broker, tmp_path, devices, hub=hub, local_actions=[VENTILATION]
        ) as s:
            await eventually(lambda: s.agent.uplink.connected)
            mosquitto_broker.stop()  # the uplink goes down (and the hub's broker with it)
            await eventually(lambda: not s.agent.uplink.connected, 15)
            outage_started = datetime.now(UTC)
            s.set("lab-gas", concentration=30.0)  # level 1: 25 %LEL
            await eventually(lambda: s.value("lab-relay", "relay_1") == 1.0)
            s.set("lab-gas", concentration=55.0)  # level 2: 50 %LEL
            await eventually(lambda: s.agent.events_enqueued == 2)
            await eventually(lambda: s.agent.outbox.depth() > 4, what="telemetry piles up")
            backlog = s.agent.outbox.depth()
            cut_at = len(ingested)
            mosquitto_broker.start()  # the uplink returns
            await eventually(lambda: s.agent.outbox.depth() == 0, 20)
            await eventually(lambda: len(hub.alerts()) == 2)
            commands = hub.get("/api/v1/commands/" + local_command_id(ingested))

    # what the outage held back: the events and the windows that ended after it began (a window
    # the broker took just before it stopped may reach the hub first, from the broker's store)
    after = [
        (kind, body)
        for kind, body in ingested[cut_at:]
        if kind == "event" or (kind == "telemetry" and ended_after(body, outage_started))
    ]
    kinds = [kind for kind, _ in after]
    assert kinds[:2] == ["event", "event"], "the events go out before the telemetry backlog"
    assert "event" not in kinds[2:]
    assert backlog > 4
    assert hub.alerts() == [
        ("lab-gas", "gas_level_1", "II", "open"),
        ("lab-gas", "gas_level_2", "I", "open"),
    ]
    assert (commands["origin"], commands["target"], commands["status"]) == (
        "local",
        "relay_1_on",
        "succeeded",
    )
    assert commands["readback"] == 1.0
    assert s.devices["lab-relay"].writes == 1  # switched once: not again at level 2


def local_command_id(ingested: list[tuple[str, object]]) -> str:
    return next(
        body.id  # type: ignore[attr-defined]
        for kind, body in ingested
        if kind == MessageKind.CMDRES.value and body.origin == "local"  # type: ignore[attr-defined]
    )


async def test_smoke_alarm_switches_the_lights_to_the_emergency_scene(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    devices = [
        Dev("gate-io", "eletechsup_8di_safety_inputs", "building-a"),
        Dev("room-101-lights", "arlight_dali_logic_lite", "room-101",
            {f"group_{g}_level": 40 for g in range(4)}),
    ]  # fmt: skip
    with running_hub(mosquitto_broker, tmp_path) as hub:
        ingested = record_ingest(hub.api)
        async with school(
            mosquitto_broker, tmp_path, devices, hub=hub, local_actions=[EMERGENCY_LIGHTING]
        ) as s:
            s.set("gate-io", smoke_fire_alarm=1)
            # the action's result and the event travel as separate messages: wait for both
            await eventually(lambda: any(k == "cmdres" for k, _ in ingested))
            await eventually(lambda: bool(hub.alerts()))
            levels = [s.value("room-101-lights", f"group_{g}_level") for g in range(4)]
            alerts = hub.alerts()
            audit = hub.get("/api/v1/commands/" + local_command_id(ingested))

    assert levels == [254, 254, 254, 254]
    assert alerts == [("gate-io", "fire_alarm", "I", "open")]
    assert (audit["target"], audit["status"], audit["readback"]) == (
        "emergency_scene",
        "succeeded",
        254.0,
    )


async def test_a_hub_command_dims_a_classrooms_lights_read_back_at_the_device(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    devices = [Dev("room-101-lights", "arlight_dali_logic_lite", "room-101",
                   {f"group_{g}_level": 200 for g in range(4)})]  # fmt: skip
    with running_hub(mosquitto_broker, tmp_path) as hub:
        async with school(mosquitto_broker, tmp_path, devices, hub=hub) as s:
            await eventually(lambda: hub.get("/api/v1/devices")["count"] == 1)
            response = hub.api.post(
                "/api/v1/devices/room-101-lights/commands",
                json={"point": "group_1_set_level", "value": 80},
            )
            assert response.status_code == 202
            command_id = response.json()["id"]
            await eventually(
                lambda: hub.get(f"/api/v1/commands/{command_id}")["status"] == "succeeded"
            )
            final = hub.get(f"/api/v1/commands/{command_id}")
            level = s.value("room-101-lights", "group_1_level")

    assert (final["gateway_id"], final["readback"], final["detail"]) == (
        GATEWAY,
        80.0,
        "written and read back",
    )
    assert level == 80


async def test_a_resent_command_is_answered_again_but_executed_once(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    devices = [Dev("room-101-lights", "arlight_dali_logic_lite", "room-101")]
    body = Command(
        id="c-dim-1", name="write", device="room-101-lights",
        args={"point": "group_3_set_level", "value": 30},
    )  # fmt: skip
    async with (
        hub_link(mosquitto_broker) as hub,
        school(mosquitto_broker, tmp_path, devices) as s,
    ):
        await eventually(hub.agent_listening)
        await hub.command(body)
        await eventually(lambda: len(answers(hub.received)) == 2)
        await hub.command(body)
        await eventually(lambda: len(answers(hub.received)) == 3)
        writes = s.devices["room-101-lights"].writes
        received = hub.received

    assert answers(received) == [
        ("accepted", None),
        ("succeeded", 30.0),
        ("succeeded", 30.0),  # the resend gets the recorded result
    ]
    assert writes == 1


def answers(received: list[Envelope]) -> list[tuple[str, float | None]]:
    return [
        (e.body.status.value, e.body.readback)
        for e in received
        if isinstance(e.body, CommandResult) and e.body.status is not None
    ]
