"""What the end-to-end tests share: the values the simulated school serves, and starting it."""

from __future__ import annotations

import signal
import subprocess
from datetime import datetime
from pathlib import Path

from cloud_hub.broker import MosquittoBroker
from edge_agent.settings import AgentSettings
from simulators.fleet import CityPlan, RunningFleet, run_fleet
from simulators.signals import SimClock

WINDOW_S = 1.0
POLL_S = 0.2

#: what every device of a profile serves, exactly; the hub must report these values back
SERVED = {
    "sensecap_s_co2_03": {"co2": 812.0, "temperature": 23.45, "humidity": 41.5},
    "renke_rs_gzws_n01": {"illuminance": 456.0, "temperature": 21.3, "humidity": 55.5},
    "eastron_sdm120": {
        "voltage": 229.5,
        "current": 1.25,
        "active_power": 286.875,
        "frequency": 50.0,
    },
    "honeywell_midas_gas": {"concentration": 30.0, "sensor_temperature": 24.0},
    "arlight_dali_logic_lite": {"group_0_level": 200.0, "group_1_level": 0.0},
    "recording_room_controller": {"storage_free_gb": 321.5, "encoder_online": 1.0},
    "tuya_ts0601_dimmer": {"state": 1.0, "brightness": 180.0},
}


async def serve_school(plan: CityPlan, *, site_broker_port: int) -> RunningFleet:
    """The plan's school serving ``SERVED`` at a lesson hour, its MQTT devices every 0.25 s."""
    return await run_fleet(
        plan,
        site_broker_port=site_broker_port,
        clock=SimClock(speed=1.0, start=datetime(2026, 11, 23, 9, 0)),
        fixed_values=SERVED,
        mqtt_interval_s=0.25,
    )


def agent_settings(
    plan: CityPlan, fleet: RunningFleet, broker: MosquittoBroker, data_dir: Path
) -> AgentSettings:
    """The agent of the plan's first school: TLS to ``broker``, Modbus polled every ``POLL_S``
    (several readings in every window), a window and heartbeat every ``WINDOW_S``."""
    school = plan.schools[0]
    devices = fleet.agent_device_configs(school.id)
    for device in devices:
        if "modbus" in device:
            device["modbus"]["poll_interval_s"] = POLL_S
    return AgentSettings(
        gateway={"id": school.gateway_id, "site": plan.site_identity(school.id)},
        hub={
            "host": broker.host,
            "port": broker.port,
            "password": broker.password_for(school.gateway_id),
            "tls": {"ca_file": broker.ca_file},
        },
        site_broker={"host": broker.host, "port": broker.site_port},
        data_dir=data_dir,
        window_s=WINDOW_S,
        heartbeat_s=WINDOW_S,
        devices=devices,
    )


def kill_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL ``process`` (a power cut for it) and reap it; nothing when it is not running."""
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait()


def stop_process(process: subprocess.Popen[bytes] | None, *, grace_s: float) -> None:
    """SIGTERM ``process`` and give it ``grace_s`` to finish, then SIGKILL it."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            kill_process(process)
