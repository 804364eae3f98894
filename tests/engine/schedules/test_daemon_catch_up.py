"""The reconcile a moment after `watch` starts: it catches a change the starting file
watcher missed, and costs nothing when there was none (a thousand jobs take seconds)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest

from jobrunner.engine.service.daemon import CATCH_UP, Daemon

from ..conftest import Scenario, ended

pytestmark = pytest.mark.integration

T = TypeVar("T")
STEP = "- {name: stop, definition: Bundle Stop, timeout: 5s, properties: {bundleId: 42}}"


@contextmanager
def running(daemon: Daemon) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=daemon.run, name="watch", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        daemon.stop()
        thread.join(15)
        assert not thread.is_alive(), "the daemon did not stop"


def reconciles(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "reconciled revision" in r.getMessage()]


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_change_the_starting_watcher_missed_is_reconciled_by_the_catch_up(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "jobrunner.watch")
    scenario.registry(1)
    scenario.fleet(1)
    monkeypatch.setattr(Daemon, "_watch_files", lambda self: None)  # a watcher that sees nothing
    daemon = Daemon(scenario.config(), debounce_ms=100)
    first = daemon.reconcile

    def then_a_new_file(why: str) -> None:
        first(why)
        if why == "start":
            scenario.job("rollout", STEP)

    monkeypatch.setattr(daemon, "reconcile", then_a_new_file)

    with running(daemon):
        assert wait_until(ended(scenario, "rollout", 1), CATCH_UP + 10), reconciles(caplog)

    assert [m.split("(")[1].split(")")[0] for m in reconciles(caplog)] == [
        "start",
        "periodic resync",
    ]


def test_with_nothing_changed_the_catch_up_reads_no_manifest_again(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "jobrunner.watch")
    scenario.registry(1)
    scenario.job("rollout", STEP)
    daemon = Daemon(scenario.config(), debounce_ms=100)
    loads: list[None] = []
    monkeypatch.setattr(daemon, "_fingerprint", _counting(daemon._fingerprint, loads))

    with running(daemon):
        assert wait_until(lambda: len(loads) >= 2, CATCH_UP + 5), "the catch-up never looked"
        time.sleep(1.0)

    assert [m.split("(")[1].split(")")[0] for m in reconciles(caplog)] == ["start"]


def _counting(function: Callable[[], T], calls: list[None]) -> Callable[[], T]:
    def counted() -> T:
        calls.append(None)
        return function()

    return counted
