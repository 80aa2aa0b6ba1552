"""``campus agent write``: a technician's write with read-back, outside the running agent.

It uses the same checks, read-back and audit as hub commands (``ActionRunner``) over its own
Modbus connection (for an MQTT device, its own site-broker connection: the set command and the
state report confirming it), records the manual override in the agent's rule store (so the
running agent's automatic actions leave that point alone) and queues the audit record for the
hub in the outbox.
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
from edge_agent.actions import ActionResult, ActionRunner, WriteRefused
from edge_agent.app import OUTBOX_FILE, RULES_FILE, build_sources, device_io
from edge_agent.rules import RuleStore
from edge_agent.settings import AgentSettings

SITE_CONNECT_S = 5.0


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
    runner = ActionRunner(
        io=device_io(settings, profiles, modbus, mqtt),
        profiles={d.id: profiles[d.profile] for d in settings.devices},
        store=store,
        manual_hold_s=settings.manual_hold_s,
    )
    try:
        if mqtt is not None:
            await mqtt.start(lambda _reading: None)
            await _until(lambda: mqtt.connected, SITE_CONNECT_S)
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
