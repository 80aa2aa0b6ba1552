"""Real fixtures shared by every test package: a Mosquitto process with its own config, and a
mark that finds every process a test started."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from cloud_hub.broker import MosquittoBroker
from tests.broker_support import mark_hub_session
from tests.marked_processes import ProcessMark

TEST_GATEWAYS = ["gw-1", "gw-2"]

# Property tests check what holds, not how fast: on a shared 2-core CI machine one example can
# take longer than hypothesis' default 200 ms deadline, which would fail a correct test.
settings.register_profile(
    "shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("shared-machine")


@pytest.fixture
def mosquitto_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """Mosquitto on free ports: a TLS hub listener (passwords + ACL; clients trust ``.ca_file``,
    see tests/broker_support.py) and a plain anonymous site listener. The hub's session marker is
    on it, so uplinks send at once; a broker no hub has ever used is ``MosquittoBroker`` itself."""
    broker = MosquittoBroker(workdir=tmp_path / "mosquitto", gateways=list(TEST_GATEWAYS), tls=True)
    broker.start()
    mark_hub_session(broker)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def process_mark() -> Iterator[ProcessMark]:
    """Start processes with ``env=process_mark.env(...)``: any still running with the mark when
    the test ends (however it detached) is killed, and fails the test."""
    mark = ProcessMark()
    yield mark
    left_behind = mark.kill_all()
    assert not left_behind, f"processes the test started outlived it: {left_behind}"
