"""The mark finds what a test started even after it detached: a grandchild in a session of its
own whose parent was SIGKILLed (what a killed demo leaves behind)."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.marked_processes import ProcessMark
from tests.waiting import eventually_blocking

DETACHING_PARENT = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
print("started", flush=True)
time.sleep(120)
"""


def test_a_detached_grandchild_of_a_killed_process_is_found_and_killed() -> None:
    mark = ProcessMark()
    parent = subprocess.Popen(
        [sys.executable, "-c", DETACHING_PARENT], stdout=subprocess.PIPE, env=mark.env()
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline() == b"started\n"
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        parent.stdout.close()

        left_behind = mark.alive()
        assert len(left_behind) == 1 and "time.sleep(120)" in next(iter(left_behind.values()))
        assert mark.kill_all() == left_behind
        eventually_blocking(lambda: not mark.alive(), 10, "the grandchild is gone")
    finally:
        parent.kill()
        mark.kill_all()


def test_processes_without_the_mark_are_not_found() -> None:
    mark = ProcessMark()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert mark.alive() == {}
    finally:
        other.kill()
        other.wait(10)
