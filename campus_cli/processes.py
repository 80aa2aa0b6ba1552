"""Child processes the demo supervises: start, watch, and stop them in reverse order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class Supervisor:
    """Starts ``campus …`` subcommands with their output in log files; stops them cleanly."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "campus_cli.main", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # Ctrl-C reaches only the demo, which stops us in order
            )
        child = Child(name=name, process=process, log_path=log_path)
        self.children.append(child)
        return child

    def exited(self) -> list[Child]:
        return [c for c in self.children if c.process.poll() is not None]

    def stop_all(self, timeout_s: float = 15.0) -> dict[str, int]:
        """SIGTERM every child (newest first), wait, SIGKILL stragglers; returns exit codes."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        codes: dict[str, int] = {}
        for child in reversed(self.children):
            try:
                codes[child.name] = child.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                child.process.kill()
                codes[child.name] = child.process.wait()
        self.children.clear()
        return codes
