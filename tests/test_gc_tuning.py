"""A server process freezes what it loaded and collects young objects less often."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tidings.core.gc_tuning import YOUNG_THRESHOLD, tune_for_server


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_tuning_freezes_the_loaded_objects_and_raises_the_first_threshold() -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    tune_for_server()
    assert gc.get_freeze_count() > 10_000  # the modules of the test process at least
    assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])


@pytest.mark.usefixtures("restored_collector")
def test_cycles_are_still_collected_after_tuning() -> None:
    tune_for_server()

    class Node:
        partner: object

    first, second = Node(), Node()
    first.partner, second.partner = second, first
    del first, second
    assert gc.collect() >= 2


def test_the_worker_command_tunes_its_process() -> None:
    # The command itself, in a process of its own: tuning a process is not a test's job.
    probe = ("import gc, uvloop\n"
             "import tidings.cli.worker as w\n"
             "uvloop.run = lambda coro: (coro.close(), print(gc.get_threshold()[0], "
             "gc.get_freeze_count() > 0))\n"
             "w.worker.main(['--port', '0'], standalone_mode=False)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.split() == [str(YOUNG_THRESHOLD), "True"]
