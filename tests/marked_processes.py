"""Every process a test started, found by a mark in its environment however it detached.

A test starts its top process with ``env=mark.env(...)``. Every process below it inherits the
mark, also those started in a session of their own (the demo's Mosquitto, hub and agents, which
Ctrl-C must not reach) and those whose parent died (re-parented away from the test). ``alive()``
finds them in /proc; ``kill_all()`` ends them and says which were still running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Mapping
from pathlib import Path

MARK = "CAMPUS_TEST_PROCESS_MARK"


class ProcessMark:
    """One test's mark: a random value under ``MARK`` in the environment."""

    def __init__(self) -> None:
        self.value = uuid.uuid4().hex
        self._needle = f"{MARK}={self.value}".encode()

    def env(self, base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
        """``base`` (default: this process's environment) plus ``extra`` plus the mark."""
        return {**(os.environ if base is None else base), **extra, MARK: self.value}

    def alive(self) -> dict[int, str]:
        """pid -> command line of every running process that carries the mark (zombies, whose
        environment is gone, are not running)."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:  # gone meanwhile, or not ours to read
                continue
            if self._needle in environ.split(b"\0"):
                found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
        return found

    def kill_all(self) -> dict[int, str]:
        """SIGKILL every marked process; returns those that were still running."""
        running = self.alive()
        for pid in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return running
