"""Commands from the hub (``campus/v1/<node>/down/cmd``): check, execute, answer on ``up/cmdres``.

A command is checked against the device's profile before anything is written: unknown devices,
read-only points, out-of-range or non-numeric values, unknown actions, malformed bodies and
expired commands are refused with a clear ``rejected`` (or ``expired``) result. A valid one is
answered ``accepted`` at once, executed through the ``ActionRunner`` (serialised with polling,
read back, bounded retries, audited) and answered ``succeeded`` or ``failed`` with the detail and
the read-back value. Answers go through the outbox, so they survive an uplink outage.

Commands are idempotent by id: the hub resends a command until it hears ``accepted``; a repeat of
a command already executed gets its recorded result again and is not executed twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import Counter

from campus_protocol import codec
from campus_protocol.errors import DecodeError
from campus_protocol.messages import Command, CommandResult, CommandStatus, MessageKind
from campus_protocol.topics import parse_topic
from edge_agent.actions import ActionResult, ActionRunner, WriteRefused
from edge_agent.rules.store import RuleStore

log = logging.getLogger(__name__)

COMMANDS = Counter(
    "campus_commands_total", "Hub commands received by the agent, by result.", ["status", "reason"]
)


class CommandHandler:
    """Turns ``down/cmd`` messages into executions and ``cmdres`` answers."""

    def __init__(
        self,
        node: str,
        runner: ActionRunner,
        store: RuleStore,
        answer: Callable[[CommandResult], bool],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.runner = runner
        self.store = store
        self.answer = answer
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self.received = 0

    def on_downlink(self, topic: str, payload: bytes) -> None:
        """Handle one downlink message (from the uplink's connection, on the event loop)."""
        self.received += 1
        try:
            parsed = parse_topic(topic)
            if parsed.kind is not MessageKind.CMD:
                return  # desired config is another issue's
            envelope = codec.decode(payload, topic=parsed)
        except DecodeError as exc:
            self._reject(_raw_id(payload), "malformed", f"malformed command: {exc}")
            return
        command = envelope.body
        assert isinstance(command, Command)
        self.handle(command)

    def handle(self, command: Command) -> None:
        seen = self.store.command_result(command.id)
        if seen is not None:  # a resend: answer again, never execute twice
            self._send(CommandResult.model_validate(seen))
            return
        if command.expires_at is not None and command.expires_at.timestamp() < self._clock():
            expired = CommandStatus.EXPIRED
            self._finish(command, None, expired, "arrived after it expired", "expired")
            return
        try:
            device, plan = self._plan(command)
        except WriteRefused as exc:
            self._finish(command, None, CommandStatus.REJECTED, str(exc), exc.reason)
            return
        self._send(
            self._result(
                command, CommandStatus.ACCEPTED, "accepted", target=plan.target, value=plan.value
            )
        )
        task = asyncio.get_running_loop().create_task(self._execute(command, device, plan))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        """Wait for the commands being executed (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _plan(self, command: Command) -> tuple[str, Any]:
        if command.device is None:
            raise WriteRefused("malformed", "command names no device")
        if command.name == "write":
            point, value = command.args.get("point"), command.args.get("value")
            if not isinstance(point, str):
                raise WriteRefused("malformed", "write needs args.point (a point name)")
            return command.device, self.runner.plan_write(command.device, point, value)
        if command.name == "action":
            action = command.args.get("action")
            if not isinstance(action, str):
                raise WriteRefused("malformed", "action needs args.action (an action id)")
            return command.device, self.runner.plan_action(command.device, action)
        raise WriteRefused("unknown_command", f"unknown command {command.name!r} (write, action)")

    async def _execute(self, command: Command, device: str, plan: Any) -> None:
        try:
            result = await self.runner.execute(
                device, plan, origin="hub", ref=command.id, manual=True
            )
        except Exception as exc:  # a bug of ours: answer failed rather than never
            log.exception("command %s failed unexpectedly", command.id)
            result = ActionResult(CommandStatus.FAILED, f"internal error: {exc}", plan.target)
        self._finish(command, result, result.status, result.detail, result.status.value)

    def _finish(
        self,
        command: Command,
        result: ActionResult | None,
        status: CommandStatus,
        detail: str,
        reason: str,
    ) -> None:
        answer = self._result(
            command,
            status,
            detail,
            target=result.target if result else "",
            value=result.value if result else None,
            readback=result.readback if result else None,
            attempts=result.attempts if result else 0,
        )
        self.store.save_command_result(command.id, answer.model_dump(mode="json"))
        if status is not CommandStatus.SUCCEEDED:
            self.store.audit(
                origin="hub",
                ref=command.id,
                device=command.device or "",
                what=command.name,
                status=status.value,
                detail=detail,
            )
        COMMANDS.labels(status.value, reason).inc()
        self._send(answer)

    def _reject(self, command_id: str, reason: str, detail: str) -> None:
        COMMANDS.labels(CommandStatus.REJECTED.value, reason).inc()
        log.warning("command refused: %s", detail)
        self._send(
            CommandResult(
                id=command_id,
                ok=False,
                status=CommandStatus.REJECTED,
                detail=detail[:200],
                at=datetime.now(UTC),
            )
        )

    def _result(
        self, command: Command, status: CommandStatus, detail: str, **fields: Any
    ) -> CommandResult:
        return CommandResult(
            id=command.id,
            ok=status in (CommandStatus.ACCEPTED, CommandStatus.SUCCEEDED),
            status=status,
            detail=detail[:200],
            device=command.device,
            at=datetime.fromtimestamp(self._clock(), UTC),
            **{k: v for k, v in fields.items() if v is not None},
        )

    def _send(self, result: CommandResult) -> None:
        if not self.answer(result):
            log.error("command %s: answer %s not queued", result.id, result.status)


def _raw_id(payload: bytes) -> str:
    """The command id of a body too broken to decode, when it has a usable one."""
    try:
        raw = orjson.loads(payload)
        candidate = raw["body"]["id"]
        CommandResult(id=candidate, ok=False)
    except Exception:
        return "unknown"
    return str(candidate)
