"""``campus agent doctor`` against a real Mosquitto (TLS hub listener with passwords and the
gateway ACL, plus a plain listener): each mistake gets its own finding and one line of advice."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from campus_cli.main import app
from campus_forward.outbox import Outbox
from campus_protocol.messages import MessageKind, State
from cloud_hub.broker import MosquittoBroker, free_port
from device_profiles.loader import load_profiles
from edge_agent.app import OUTBOX_FILE, Agent
from edge_agent.cli import SAMPLE_CONFIG
from edge_agent.field.doctor import check_clock, check_disk, check_outbox
from edge_agent.settings import load_agent_settings
from tests.edge.support import wait_until

runner = CliRunner()


def write_config(
    tmp_path: Path, broker: MosquittoBroker, *, top: dict[str, Any] | None = None, **hub: Any
) -> Path:
    data = yaml.safe_load(SAMPLE_CONFIG)
    data["gateway"]["id"] = "gw-1"
    data["hub"] = {
        "host": broker.host,
        "port": broker.port,
        "password": broker.password_for("gw-1"),
        "tls": {"ca_file": str(broker.ca_file)},
        **hub,
    }
    data["data_dir"] = str(tmp_path / "data")
    data.update(top or {})
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


async def doctor(path: Path) -> tuple[int, str]:
    result = await asyncio.to_thread(
        runner.invoke, app, ["agent", "doctor", "-c", str(path), "--timeout", "2"]
    )
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def failed_checks(output: str) -> list[str]:
    return [line.split()[1] for line in output.splitlines() if line.startswith("FAIL")]


async def test_a_sound_gateway_passes_every_check(
    tmp_path: Path, mosquitto_broker: MosquittoBroker
) -> None:
    code, out = await doctor(write_config(tmp_path, mosquitto_broker))

    assert code == 0, out
    for check in ("config", "hub broker", "tls", "credentials", "acl", "clock", "disk", "outbox"):
        assert f"ok   {check}" in out
    assert "0 problems found" in out


async def test_a_connected_agent_is_not_kicked_off_to_check_its_password(
    tmp_path: Path, mosquitto_broker: MosquittoBroker
) -> None:
    path = write_config(tmp_path, mosquitto_broker, top={"devices": [], "status_port": free_port()})
    agent = Agent(load_agent_settings(path), load_profiles(), stop_grace_s=1.0)
    running = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.ready.wait(), 5)
        await wait_until(lambda: agent.uplink.connected)

        code, out = await doctor(path)

        assert code == 0, out
        assert "the running agent is logged in" in out
        assert agent.uplink.connected and agent.uplink.failed == 0, "the agent kept its session"
    finally:
        agent.request_stop()
        await asyncio.wait_for(running, 10)


async def test_plain_config_on_the_tls_port_is_named_a_tls_plain_mismatch(
    tmp_path: Path, mosquitto_broker: MosquittoBroker
) -> None:
    code, out = await doctor(write_config(tmp_path, mosquitto_broker, tls=None))

    assert code == 1
    assert failed_checks(out) == ["tls"]
    assert "TLS/plain mismatch" in out and "set hub.tls.ca_file" in out


async def test_tls_config_on_a_plain_port_is_named_a_tls_plain_mismatch(
    tmp_path: Path, mosquitto_broker: MosquittoBroker
) -> None:
    code, out = await doctor(
        write_config(tmp_path, mosquitto_broker, port=mosquitto_broker.site_port)
    )

    assert code == 1
    assert failed_checks(out) == ["tls"]
    assert "does not speak TLS" in out and "use the broker's TLS port" in out


async def test_a_wrong_password_is_a_credentials_problem(
    tmp_path: Path, mosquitto_broker: MosquittoBroker
) -> None:
    code, out = await doctor(write_config(tmp_path, mosquitto_broker, password="not-the-one"))

    assert code == 1
    assert failed_checks(out) == ["credentials"]
    assert "password file" in out


async def test_an_unreachable_broker_is_said_so(
    tmp_path: Path, mosquitto_broker: MosquittoBroker
) -> None:
    code, out = await doctor(write_config(tmp_path, mosquitto_broker, port=free_port()))

    assert code == 1
    assert failed_checks(out) == ["hub"]
    assert "cannot reach" in out and "firewall" in out


async def test_a_config_error_is_one_finding_pointing_at_validate(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(SAMPLE_CONFIG, encoding="utf-8")  # placeholder password

    code, out = await doctor(path)

    assert code == 1
    assert failed_checks(out) == ["config"]
    assert "campus agent validate" in out


def test_an_outbox_that_does_not_drain_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / OUTBOX_FILE
    with Outbox(path) as outbox:
        outbox.append(MessageKind.HEALTH, State(online=True))

    assert check_outbox(path, time.time()).ok
    stale = check_outbox(path, time.time() + 3600)
    assert not stale.ok and "not draining" in stale.advice


def test_a_nearly_full_disk_and_a_wrong_clock_are_problems(tmp_path: Path) -> None:
    assert not check_disk(tmp_path, free=50 * 1024**2, total=10 * 1024**3).ok
    assert check_disk(tmp_path, free=5 * 1024**3, total=10 * 1024**3).ok
    assert not check_clock(datetime(2001, 1, 1, tzinfo=UTC), None).ok
    assert not check_clock(datetime.now(UTC), synchronised=False).ok
    assert check_clock(datetime.now(UTC), synchronised=None).ok
