"""``campus agent write``: a technician's write with read-back, outside the running agent.

It uses the same checks, read-back and audit as hub commands (``ActionRunner``) over its own
Modbus connection, records the manual override in the agent's rule store (so the running agent's
automatic actions leave that point alone) and queues the audit record for the hub in the outbox.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from campus_protocol.messages import CommandResult, MessageKind
from device_profiles.schema import Profile
from edge_agent.actions import ActionResult, ActionRunner, WriteRefused
from edge_agent.app import OUTBOX_FILE, RULES_FILE, build_sources
from edge_agent.device_io import ModbusDeviceIO
from edge_agent.outbox import Outbox
from edge_agent.rules import RuleStore
from edge_agent.settings import AgentSettings


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
    modbus, _ = build_sources(settings, profiles)
    coordinators = {c.device_id: c for c in modbus.coordinators} if modbus else {}
    store = RuleStore(settings.data_dir / RULES_FILE)
    runner = ActionRunner(
        io=ModbusDeviceIO(coordinators),
        profiles={d.id: profiles[d.profile] for d in settings.devices},
        store=store,
        manual_hold_s=settings.manual_hold_s,
    )
    try:
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
        for coordinator in coordinators.values():
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
