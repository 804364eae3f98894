"""The collector while the engine runs: what was alive when it started is frozen, and
everything is put back as it was when it ends."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

import pytest

from bench.loopback import run
from jobrunner.engine.service import heap


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_the_wait_freezes_what_is_alive_and_thaws_it_after() -> None:
    before = gc.get_threshold()
    with heap.long_lived():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] >= heap.YOUNG_THRESHOLD
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_overlapping_blocks_thaw_when_the_last_one_leaves() -> None:
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with heap.long_lived():
            entered.set()
            leave.wait()

    thread = threading.Thread(target=other)
    thread.start()
    entered.wait()
    with heap.long_lived():
        pass
    assert gc.get_freeze_count() > 0, "the other block still runs: still frozen"
    leave.set()
    thread.join()
    assert gc.get_freeze_count() == 0


def test_reconcile_wait_runs_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Runner.wait` (reconcile --wait) holds what it loaded frozen while the engine runs."""
    frozen: list[int] = []
    original = heap.long_lived

    @contextlib.contextmanager
    def spied() -> Iterator[None]:
        with original():
            frozen.append(gc.get_freeze_count())
            yield

    monkeypatch.setattr(heap, "long_lived", spied)
    result = run(20, 10, None)
    assert result["ok"] == 20
    assert frozen and frozen[0] > 1000, "the runner's objects are frozen while it waits"
    assert gc.get_freeze_count() == 0
