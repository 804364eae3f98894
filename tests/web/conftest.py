"""The daemon with its dashboard, in this process: a real broker, a simulated fleet, HTTP.

`served` runs `watch --http 127.0.0.1:0` as the command does (a Daemon with a Dashboard
companion) on a thread, and hands out the dashboard's address once it listens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from jobrunner.engine.service.daemon import Daemon
from jobrunner.engine.service.runner import RunnerConfig
from jobrunner.web.server import Dashboard
from tests.engine import conftest as engine
from tests.engine.conftest import Scenario

scenario = engine.scenario  # the engine tests' world: a scope, folders, the broker


@dataclass
class Served:
    scenario: Scenario
    daemon: Daemon
    dashboard: Dashboard
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.dashboard.url.rstrip("/")

    def get(self, path: str, **options: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **options)

    def json(self, path: str) -> Any:
        response = self.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            assert self.thread.is_alive(), "the daemon ended"
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def stop(self) -> None:
        self.daemon.stop()
        self.thread.join(timeout=20)


def serve(
    scenario: Scenario,
    token: str | None = None,
    address: str = "127.0.0.1:0",
    config: RunnerConfig | None = None,
) -> Served:
    """Start the daemon with its dashboard; return once the dashboard listens."""
    dashboard = Dashboard(address, token, scenario.state_dir)
    daemon = Daemon(config or scenario.config(), debounce_ms=100, drain=2, companions=[dashboard])
    thread = threading.Thread(target=daemon.run, name="daemon", daemon=True)
    thread.start()
    served = Served(scenario, daemon, dashboard, thread)
    served.wait_for(dashboard.listening.is_set, "the dashboard to listen")
    return served


@pytest.fixture
def served(scenario: Scenario) -> Iterator[Served]:
    running = serve(scenario)
    yield running
    running.stop()
