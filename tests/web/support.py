"""What the browser tests share: a served hub, a loop thread for async parts, a watched page.

Pages are checked the way an operator on a closed school network would see them: any request that
leaves 127.0.0.1 is recorded (and refused), and so is every console error and uncaught exception.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    Response,
    Route,
    expect,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}

T = TypeVar("T")


class LoopThread:
    """An asyncio loop in a daemon thread: brokers, fleets and agents run there while the
    synchronous Playwright API drives the browser from the test's own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T], timeout_s: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class _QuietServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test process keeps its own handlers
        pass


@dataclass
class ServedHub:
    """The hub app served by uvicorn on a free 127.0.0.1 port, inside a ``LoopThread``."""

    app: FastAPI
    port: int = 0
    token: str = ""  # a bearer token the test signed in with, when it made one
    tokens: dict[str, str] = field(default_factory=dict)  # more users' tokens, by username
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False)
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)


def sign_in(context: BrowserContext, hub: ServedHub, username: str | None = None) -> None:
    """Give the browser the session cookie of ``hub.token`` (or of ``username``'s token in
    ``hub.tokens``), as /login would have set it."""
    token = hub.tokens[username] if username else hub.token
    context.add_cookies([{"name": "campus_token", "value": token, "url": hub.url}])


@contextmanager
def serving(loop_thread: LoopThread, app: FastAPI) -> Iterator[ServedHub]:
    """Serve ``app`` on a free port for the duration of the block."""
    served = ServedHub(app)
    loop_thread.run(served.start())
    try:
        yield served
    finally:
        loop_thread.run(served.stop())


@dataclass
class WatchedPage:
    """A page whose console errors, uncaught exceptions and off-machine requests are recorded."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    off_machine: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, context: BrowserContext) -> WatchedPage:
        watched = cls(context.new_page())

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                watched.console_errors.append(f"{message.text} ({message.location})")

        def guard(route: Route) -> None:
            url = route.request.url
            host = urlsplit(url).hostname or ""
            if url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
                route.continue_()
            else:
                watched.off_machine.append(url)
                route.abort()

        watched.page.on("console", on_console)
        watched.page.on("pageerror", lambda exc: watched.console_errors.append(str(exc)))
        watched.page.route("**/*", guard)
        return watched

    def assert_clean(self) -> None:
        assert self.off_machine == [], "requests left the machine"
        assert self.console_errors == [], "the page logged errors"

    def screenshot(self, name: str) -> Path:
        """A full-page PNG under test-artifacts/screenshots/ (kept after the run)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=path, full_page=True)
        return path


def change_alert_in_dialog(page: Page, row: Locator, action: str, comment: str) -> Response:
    """Click ``action`` (``ack`` or ``resolve``) on an alert's ``row``, write ``comment`` in the
    dialog that opens and confirm; returns the hub's answer to the POST."""
    row.locator(f"button.{action}").click()
    dialog = page.locator("#alert-dialog")
    expect(dialog.locator(".title")).to_contain_text(f"#{row.get_attribute('data-alert')}")
    dialog.locator("textarea").fill(comment)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        dialog.locator("button.confirm").click()
    expect(dialog).to_be_hidden()
    return answer.value
