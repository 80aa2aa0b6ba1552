"""Pause Python's cyclic garbage collector while one ingest batch is decoded and stored.

A batch of telemetry builds tens of thousands of small objects (models, rows, tuples) that live
until its transaction commits, then are freed by reference counting. While they live, every few
hundred allocations start a collection that traverses them, and the older generations' passes
rescan the whole heap: a quarter to a third of a worker's CPU in ``bench/ingest.py``. A batch is
bounded (``MAX_BATCH`` messages of at most ``MAX_MESSAGE_BYTES``), so pausing the collector for
its duration bounds what waits for the next collection, which runs as soon as it is re-enabled.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """The collector off inside the block, back as it was after (left alone when it was off)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
