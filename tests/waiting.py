"""Waiting in tests: poll a condition until it holds, never a fixed sleep.

The suite shares two cores with other work, so a deadline is generous (it costs nothing when
the condition comes true early) and a miss says what was awaited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: long enough for a broker restart or a reconnection on a loaded machine
DEADLINE_S = 30.0
#: a new Python process importing the project, on a loaded machine
PROCESS_START_S = 60.0


async def eventually(
    condition: Callable[[], bool], timeout_s: float = DEADLINE_S, what: str = "the condition"
) -> None:
    """Poll ``condition`` (state changed by other tasks or processes) until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(0.05)


def eventually_blocking(
    condition: Callable[[], bool],
    timeout_s: float = DEADLINE_S,
    what: str = "the condition",
    *,
    retry_on: tuple[type[Exception], ...] = (),
) -> None:
    """``eventually`` outside an event loop; ``retry_on`` errors count as "not yet"."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if condition():
                return
        except retry_on:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        time.sleep(0.25)
