"""The cyclic garbage collector is paused while an ingest batch is decoded and stored, and is
always back as it was afterwards."""

from __future__ import annotations

import gc

import pytest

from cloud_hub.ingest import collector
from cloud_hub.ingest.worker import IngestWorker
from tests.hub.builders import stats
from tests.hub.builders import telemetry as tele


def test_the_collector_is_off_inside_and_back_on_after_even_when_the_block_raises() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector.paused():
        assert not gc.isenabled()
        raise RuntimeError("a batch that failed")
    assert gc.isenabled()


def test_a_collector_someone_else_turned_off_stays_off() -> None:
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_stored_batch_leaves_the_collector_on(worker: IngestWorker) -> None:
    worker.process_batch([tele(seq=1, points={"co2": stats(500)}), ("bad/topic", b"{")])

    assert (worker.accepted, worker.rejected) == (1, 1)
    assert gc.isenabled()
