"""A request or command run while an ingest batch holds the database's write lock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine, update

from cloud_hub.db.base import WRITER
from cloud_hub.db.models import Gateway

T = TypeVar("T")


def while_ingest_writes(engine: Engine, call: Callable[[], T]) -> T:
    """What ``call()`` returns when it starts while another connection holds the write lock with
    a write not yet committed (what an ingest batch holds while it stores) for a second.

    The test client re-raises a route's error (a 500 "database is locked" on SQLite): it fails
    the test here, named."""
    answers: list[T | Exception] = []

    def run() -> None:
        try:
            answers.append(call())
        except Exception as exc:  # handed to the test's thread below
            answers.append(exc)

    calling = threading.Thread(target=run)
    with engine.connect() as ingest:
        ingest = ingest.execution_options(**WRITER)
        with ingest.begin():
            ingest.execute(update(Gateway).values(agent_version="busy"))
            calling.start()
            calling.join(timeout=1.0)  # it reads (a route its caller first), then must wait
        calling.join(timeout=60)
    assert answers, "it did not finish within a minute"
    answer = answers[0]
    if isinstance(answer, Exception):
        raise AssertionError(f"it failed: {answer}") from answer
    return answer
