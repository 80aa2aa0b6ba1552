"""A pair of linked pseudo-terminals made by socat: a serial line on one machine.

The simulator's RTU server opens one end and the agent's serial client the other, so Modbus RTU
runs through a real tty (termios, pyserial, framing by silence) rather than a socket. Needs the
Debian package ``socat`` (``make test`` installs it when missing).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType


class SerialLineError(RuntimeError):
    """socat is missing or did not create the pseudo-terminals."""


class PtyPair:
    """``with PtyPair(folder) as line:`` gives ``line.device_end`` and ``line.agent_end``."""

    def __init__(self, folder: Path, *, name: str = "ttyS") -> None:
        self.device_end = folder / f"{name}-device"
        self.agent_end = folder / f"{name}-agent"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 5.0) -> PtyPair:
        socat = shutil.which("socat")
        if socat is None:
            raise SerialLineError("socat not found: install it (apt-get install socat)")
        self.device_end.parent.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                socat,
                f"pty,raw,echo=0,link={self.device_end}",
                f"pty,raw,echo=0,link={self.agent_end}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        while not (self.device_end.exists() and self.agent_end.exists()):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SerialLineError(
                    f"socat did not create {self.device_end} and {self.agent_end}"
                )
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """End socat (by its own pid): both ends disappear, as if the cable were pulled."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stderr is not None:
                self._process.stderr.close()
            self._process = None

    def __enter__(self) -> PtyPair:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
