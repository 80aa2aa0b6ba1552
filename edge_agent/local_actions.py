"""Local actions: a rule's event switches something on the spot (a ventilation relay at a gas
level, the emergency lighting scene at a fire alarm), with the uplink up or down.

Interlock: an action is engaged by its rule's raise and released by its clear; while engaged it is
not run again (repeats and flapping reports of the same event do nothing). A manual override on
the points it writes holds it off (``ActionRunner``). Every run is audited locally and reported to
the hub as a ``cmdres`` with ``origin: local`` through the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from campus_protocol.messages import CommandResult
from edge_agent.actions import ActionRunner, WriteRefused
from edge_agent.rules import Firing, Report
from edge_agent.rules.config import ActionRef, LocalAction

log = logging.getLogger(__name__)


class LocalActions:
    """Matches rule firings to configured local actions and runs them."""

    def __init__(
        self,
        actions: Sequence[LocalAction],
        runner: ActionRunner,
        report: Callable[[CommandResult], bool],
    ) -> None:
        self.actions = list(actions)
        self.runner = runner
        self.report = report
        self.engaged: set[tuple[str, str]] = set()  # (local action id, triggering device)
        self.issued: list[tuple[str, float]] = []  # ("<id>/<action>", perf_counter at start)
        self._tasks: set[asyncio.Task[None]] = set()

    def on_firing(self, firing: Firing) -> None:
        for action in self.actions:
            trigger = action.when
            if trigger.rule != firing.event.rule:
                continue
            if trigger.device is not None and trigger.device != firing.device:
                continue
            if trigger.room is not None and trigger.room != firing.room:
                continue
            key = (action.id, firing.device)
            if firing.report is Report.RAISE and key not in self.engaged:
                self.engaged.add(key)
                self._start(action, action.run, firing)
            elif firing.report is Report.CLEAR and key in self.engaged:
                self.engaged.discard(key)
                if action.on_clear is not None:
                    self._start(action, action.on_clear, firing)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self, action: LocalAction, ref: ActionRef, firing: Firing) -> None:
        self.issued.append((f"{action.id}/{ref.action}", time.perf_counter()))
        task = asyncio.get_running_loop().create_task(self._run(action, ref, firing))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, action: LocalAction, ref: ActionRef, firing: Firing) -> None:
        record_id = f"local-{uuid.uuid4().hex[:20]}"
        reference = f"{action.id}:{firing.event.rule}@{firing.device}"
        try:
            plan = self.runner.plan_action(ref.device, ref.action)
            result = await self.runner.execute(
                ref.device, plan, origin="local", ref=reference, retries=action.retries
            )
        except WriteRefused as exc:  # validated at start; only a profile change gets here
            log.error("local action %s: %s", action.id, exc)
            return
        self.report(
            CommandResult(
                id=record_id,
                ok=result.ok,
                status=result.status,
                origin="local",
                detail=f"{reference}: {result.detail}"[:200],
                device=ref.device,
                target=ref.action,
                readback=result.readback,
                attempts=result.attempts,
                at=datetime.now(UTC),
            )
        )
