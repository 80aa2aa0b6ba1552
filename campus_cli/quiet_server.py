"""A uvicorn server for an ASGI app inside a running event loop (the demo's, a test's): a free
127.0.0.1 port, no signal handlers (the owner handles Ctrl-C), no access log."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp


class _NoSignals(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class QuietServer:
    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", *, lifespan: bool = False) -> None:
        self.host = host
        self.port = 0
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="on" if lifespan else "off"
        )
        self._server = _NoSignals(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        sock = socket.create_server((self.host, 0))
        self.port = int(sock.getsockname()[1])
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._task is not None:
            self._server.should_exit = True
            await asyncio.wait({self._task}, timeout=10)
