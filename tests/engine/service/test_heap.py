"""The collector while the engine runs: what was alive when it started is frozen, and
everything is put back as it was when it ends."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.loopback import run
from jobrunner.engine.service import heap
from jobrunner.engine.service import runner as runner_module
from jobrunner.engine.service.daemon import Daemon
from jobrunner.manifests import loader as manifest_loader

from ..conftest import FakeClock, memory_runner
from .test_resync_costs_what_changed import JOB


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


def test_loading_keeps_the_collector_off_and_puts_it_back_as_it_found_it() -> None:
    assert gc.isenabled()
    with heap.loading():
        assert not gc.isenabled()
        with heap.loading():  # blocks overlap: the last to leave puts it back
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with heap.loading():
            pass
        assert not gc.isenabled(), "off before: left off"
    finally:
        gc.enable()


def test_a_daemon_start_freezes_what_it_loaded_before_the_collector_is_on_again(
    tmp_path: Path,
) -> None:
    """What the first reconcile loaded is frozen first: the collector, on again, has none of
    it to walk."""
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "check.yaml").write_text(JOB)
    runner, _ = memory_runner(tmp_path, FakeClock(), lambda sent: None)
    daemon = Daemon(runner.config)
    seen: list[tuple[bool, int]] = []
    reconcile = daemon.reconcile

    def watched(why: str) -> None:
        reconcile(why)
        seen.append((gc.isenabled(), gc.get_freeze_count()))

    daemon.reconcile = watched  # type: ignore[method-assign]
    with runner, contextlib.ExitStack() as started:
        daemon.runner = runner
        daemon._first_reconcile(started)
        assert seen == [(False, 0)], "loaded with the collector off"
        assert gc.isenabled() and gc.get_freeze_count() > 0
        daemon.runner = None
    assert gc.get_freeze_count() == 0


def test_a_plan_is_made_with_the_collector_off_and_leaves_it_on(tmp_path: Path) -> None:
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "check.yaml").write_text(JOB)
    (tmp_path / "state").mkdir()
    seen: list[bool] = []
    load = manifest_loader.load_manifests

    def watched(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return load(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner_module, "load_manifests", watched)
        plan = runner_module.make_plan(tmp_path / "jobs.d", tmp_path / "state", "acme")
    assert [j.name for j in plan.jobs] == ["check"]
    assert seen == [False]
    assert gc.isenabled()
