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
    args: tuple[str, ...] = ()
    env: dict[str, str] | None = None
    restarts: int = 0

    def last_log_lines(self, count: int = 15) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()[-count:]


@dataclass
class Supervisor:
    """Starts ``campus …`` subcommands with their output in log files; stops them cleanly."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Child:
        child = self._spawn(name, args, env, mode="wb")
        self.children.append(child)
        return child

    def restart(self, child: Child) -> Child:
        """Start an exited child again, its log continued (the crash stays readable)."""
        again = self._spawn(child.name, child.args, child.env, mode="ab")
        again.restarts = child.restarts + 1
        self.children[self.children.index(child)] = again
        return again

    def _spawn(
        self, name: str, args: tuple[str, ...], env: dict[str, str] | None, *, mode: str
    ) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open(mode) as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "campus_cli.main", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # Ctrl-C reaches only the demo, which stops us in order
            )
        return Child(name=name, process=process, log_path=log_path, args=args, env=env)

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
