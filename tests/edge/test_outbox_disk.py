"""A full disk under the outbox: logged once per change with the path, counted, never fatal.

The disk is real: a tmpfs of a few hundred KiB mounted for the test (ENOSPC when full), later
remounted larger. Mounting needs root, which the test machines and CI have; elsewhere these tests
are skipped. A disk turning read-only under a running agent is not reproduced: Linux refuses to
remount a filesystem read-only while a file on it is open for writing (only the kernel itself
does, after I/O errors); that refusal takes the same path (``OutboxWriteError``, reason
``read_only`` or ``io_error``).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from campus_forward.outbox import Outbox, OutboxWriteError
from campus_protocol.messages import MessageKind, State
from cloud_hub.broker import MosquittoBroker
from edge_agent.app import OUTBOX_FILE, Agent
from tests.edge.support import PROFILE, VALUES, wait_until
from tests.edge.test_agent import meter, settings
from tests.forward.test_outbox import window


class SmallDisk:
    """A tmpfs mounted at ``path``; ``resize`` remounts it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mount(self, size: str) -> None:
        _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(self.path))

    def resize(self, size: str) -> None:
        _mount("-o", f"remount,size={size}", str(self.path))


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    disk = SmallDisk(tmp_path / "disk")
    disk.path.mkdir()
    try:
        disk.mount("256k")
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {exc}")
    yield disk
    subprocess.run(["umount", "-l", str(disk.path)], check=False, capture_output=True)


def fill(outbox: Outbox) -> OutboxWriteError:
    """Append windows until the disk refuses one; return the refusal."""
    for i in range(100_000):
        try:
            outbox.append(MessageKind.TELEMETRY, window(i, i))
        except OutboxWriteError as exc:
            return exc
    raise AssertionError("the disk never filled up")


def test_a_full_disk_is_logged_once_with_the_path_and_the_recovery_once(
    small_disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    path = small_disk.path / OUTBOX_FILE
    with caplog.at_level(logging.INFO, logger="campus_forward.outbox"), Outbox(path) as outbox:
        depth = outbox.depth()
        refused = fill(outbox)
        depth = outbox.depth()
        for _ in range(20):
            with pytest.raises(OutboxWriteError):
                outbox.append(MessageKind.TELEMETRY, window(0, 0))
        assert outbox.depth() == depth, "a refused append stores nothing"
        assert outbox.budget_report().disk == "disk_full"

        small_disk.resize("4m")
        outbox.append(MessageKind.EVENT, State(online=True))
        assert outbox.budget_report().disk == "ok"

    assert refused.reason == "disk_full"
    refusals = [r for r in caplog.records if "writes refused" in r.getMessage()]
    assert len(refusals) == 1 and str(path) in refusals[0].getMessage()
    assert sum("writes succeed again" in r.getMessage() for r in caplog.records) == 1


async def test_the_agent_keeps_acquiring_on_a_full_disk_and_counts_what_it_could_not_store(
    small_disk: SmallDisk,
    mosquitto_broker: MosquittoBroker,
    modbus_server: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await modbus_server(PROFILE, VALUES)
    small_disk.resize("4m")  # room for the agent's files; a filler takes the rest later
    agent = Agent(
        settings(mosquitto_broker, small_disk.path, [meter(server.port)]), {PROFILE.id: PROFILE}
    )
    mosquitto_broker.stop()  # nothing drains: the outbox only grows
    with caplog.at_level(logging.INFO, logger="campus_forward.outbox"):
        task = asyncio.create_task(agent.run())
        await wait_until(lambda: agent.windows_enqueued >= 1)
        filler = small_disk.path / "filler"
        try:  # another program fills the disk
            with filler.open("wb") as out:
                while True:
                    out.write(b"\0" * 4096)
                    out.flush()
        except OSError:
            pass

        def unstored() -> int:
            return agent.status().outbox.discarded.get("telemetry:disk_full", 0)

        await wait_until(lambda: unstored() >= 2, timeout_s=10)
        mosquitto_broker.start()  # reconnecting while the disk is full must not end the agent
        await asyncio.sleep(1.5)
        assert not task.done(), "a full disk never ends the agent"
        assert agent.status().outbox.disk == "disk_full"

        filler.unlink()
        enqueued = agent.windows_enqueued
        await wait_until(lambda: agent.windows_enqueued > enqueued + 1, timeout_s=10)
        assert agent.status().outbox.disk == "ok"
        agent.request_stop()
        await asyncio.wait_for(task, 10)

    refusals = [r.getMessage() for r in caplog.records if "writes refused" in r.getMessage()]
    assert len(refusals) == 1 and str(small_disk.path / OUTBOX_FILE) in refusals[0]
    assert "Traceback" not in caplog.text
