"""The hub's command publisher: sends pending commands QoS 1 on each gateway's ``down/cmd`` topic,
resends them until the gateway answers ``accepted`` and expires those whose time-to-live runs out.

It publishes on the ingest consumer's connection: the broker makes the client id the username, so
a hub process has one connection to it, and a second one would take over the first's session.

A gateway that is offline does not receive a command (its session is not persistent); the
publisher resends every ``resend_s`` until it is acknowledged or expires, so a gateway that comes
back within the time-to-live still gets it, and the agent executes a command id only once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import aiomqtt
from prometheus_client import Counter
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import codec
from campus_protocol.envelope import Envelope
from campus_protocol.messages import Command, MessageKind
from campus_protocol.topics import downlink_topic
from cloud_hub.db import commands
from cloud_hub.db.base import write_transaction
from cloud_hub.db.models import DeviceCommand

log = logging.getLogger(__name__)

COMMANDS_SENT = Counter("campus_hub_commands_sent_total", "Command publishes (with resends).")
COMMANDS_EXPIRED = Counter("campus_hub_commands_expired_total", "Commands that expired.")
HUB_EPOCH = "hub"  # downlink envelopes: commands are idempotent by id, not deduplicated by seq


def command_body(command: DeviceCommand) -> Command:
    args: dict[str, object] = (
        {"point": command.target, "value": command.value}
        if command.name == "write"
        else {"action": command.target}
    )
    return Command(
        id=command.id,
        name=command.name,
        device=command.device,
        args=args,
        expires_at=command.expires_at,
    )


class CommandPublisher:
    """``run()`` until cancelled; ``wake()`` after creating a command to send it at once.

    ``client_of()`` gives the hub's live broker connection, or None while it is down."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        client_of: Callable[[], aiomqtt.Client | None],
        *,
        interval_s: float = 1.0,
        resend_s: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._client_of = client_of
        self.interval_s = interval_s
        self.resend_s = resend_s
        self.sent = 0
        self._wake = asyncio.Event()
        self._seq = itertools.count(int(time.time() * 1000))
        self._failing = False

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            client = self._client_of()
            if client is not None:
                try:
                    await self._send_due(client)
                    self._failing = False
                except aiomqtt.MqttError as exc:  # the consumer reconnects; try again then
                    if not self._failing:
                        log.error("command publisher: %s", exc)
                    self._failing = True
            try:
                async with asyncio.timeout(self.interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def _send_due(self, client: aiomqtt.Client) -> None:
        now = datetime.now(UTC)
        with write_transaction(self._sessions) as session:
            expired = commands.expire_overdue(session, now=now)
            due = commands.due_for_sending(session, now=now, resend_s=self.resend_s)
            outgoing = [(c.id, c.gateway_id, command_body(c)) for c in due]
        if expired:
            COMMANDS_EXPIRED.inc(expired)
            log.warning("%d command(s) expired undelivered", expired)
        sent = []
        for command_id, gateway, body in outgoing:
            envelope = Envelope.wrap(node=gateway, epoch=HUB_EPOCH, seq=next(self._seq), body=body)
            await client.publish(
                downlink_topic(gateway, MessageKind.CMD), codec.encode(envelope), qos=1
            )
            sent.append(command_id)
            COMMANDS_SENT.inc()
        if sent:
            self.sent += len(sent)
            with write_transaction(self._sessions) as session:
                for command_id in sent:
                    command = commands.get_command(session, command_id)
                    if command is not None:
                        commands.mark_sent(session, command, now=datetime.now(UTC))
