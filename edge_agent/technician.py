"""``campus agent write``: a technician's write with read-back, outside the running agent.

It uses the same checks, read-back and audit as hub commands (``ActionRunner``) over its own
Modbus connection (for an MQTT device, its own site-broker connection: the set command and the
state report confirming it), records the manual override in the agent's rule store (so the
running agent's automatic actions leave that point alone) and queues the audit record for the
hub in the outbox. A device an MQTT group could hold is waited for until the group hears it
report (two of its profile's report intervals at most, capped at ``GROUP_WAIT_S``).
"""

from __future__ import annotations

import asyncio
import getpass
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from campus_forward.outbox import Outbox
from campus_protocol.messages import CommandResult, MessageKind
from device_profiles.schema import Profile
from edge_agent.actions import ActionResult, WriteRefused
from edge_agent.app import OUTBOX_FILE, RULES_FILE, action_runner, build_sources
from edge_agent.rules import RuleStore
from edge_agent.settings import AgentSettings

SITE_CONNECT_S = 5.0
GROUP_WAIT_S = 20.0


async def _until(condition: Callable[[], bool], timeout_s: float) -> None:
    """Wait (bounded) for ``condition``; past the bound the write fails with its own detail."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def technician_write(
    settings: AgentSettings,
    profiles: Mapping[str, Profile],
    device: str,
    point: str | None,
    value: float | None,
    action: str | None,
    *,
    retries: int = 2,
) -> ActionResult | str:
    """Execute the write; a refusal (unknown device, read-only point, range) is returned as text."""
    modbus, mqtt = build_sources(settings, profiles)
    store = RuleStore(settings.data_dir / RULES_FILE)
    runner = action_runner(settings, profiles, modbus, mqtt, store)
    try:
        if mqtt is not None:
            await mqtt.start(lambda _reading: None)
            await _until(lambda: mqtt.connected, SITE_CONNECT_S)
            unfound = None if device in runner.profiles else mqtt.unfound(device)
            if unfound is not None:
                wait_s = min(2 * unfound.expect_within_s, GROUP_WAIT_S)
                await _until(lambda: mqtt.member(device) is not None, wait_s)
        plan = (
            runner.plan_action(device, action)
            if action is not None
            else runner.plan_write(device, point or "", value)
        )
        result = await runner.execute(
            device, plan, origin="technician", ref=getpass.getuser(), retries=retries, manual=True
        )
    except WriteRefused as exc:
        return str(exc)
    finally:
        if mqtt is not None:
            await mqtt.stop()
        for coordinator in modbus.coordinators if modbus else []:
            coordinator.close()
        store.close()
    with Outbox(settings.data_dir / OUTBOX_FILE) as outbox:
        outbox.append(
            MessageKind.CMDRES,
            CommandResult(
                id=f"local-{uuid.uuid4().hex[:20]}",
                ok=result.ok,
                status=result.status,
                origin="local",
                detail=f"technician {getpass.getuser()}: {result.detail}"[:200],
                device=device,
                target=result.target,
                value=result.value,
                readback=result.readback,
                attempts=result.attempts,
                at=datetime.now(UTC),
            ),
        )
    return result
