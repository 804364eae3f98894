"""The dashboard beside the daemon: uvicorn on a thread of its own, started once the runner is.

`Dashboard` is a companion of `jobrunner watch --http HOST:PORT` (and of `jobrunner demo`):
it counts the engine's requests as an observer from the first instant, and serves once the
runner holds the state directory. Its server thread changes nothing of the engine's: it
takes snapshots of the jobs the engine holds (see `reader`), and asks the daemon for plain
values (the broker connection, the requests in flight, the loop's last turn).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import uvicorn
from prometheus_client import CollectorRegistry

from jobrunner.errors import ConfigError
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.registry import DeviceRegistry
from jobrunner.web.address import is_loopback, parse_address, url_of
from jobrunner.web.app import Dependencies, Runner, create_app
from jobrunner.web.health import Health, Liveness
from jobrunner.web.metrics import EngineMetrics, FleetCollector, Posts
from jobrunner.web.reader import FleetReader
from jobrunner.web.views import Views

log = logging.getLogger("jobrunner.http")

START_TIMEOUT = 10.0  # seconds for the server to listen


class DaemonFacts(Runner, Liveness, Protocol):
    """What the dashboard asks the daemon: the app's and the health check's questions, and
    the jobs its engine holds."""

    def held(self) -> Mapping[tuple[str, str], JobState]: ...

    def devices(self) -> DeviceRegistry | None: ...


class Dashboard:
    """Serves the dashboard while the daemon runs."""

    def __init__(
        self,
        address: str,
        token: str | None,
        state: StateDir | Path,
        notifications: Posts | None = None,
    ) -> None:
        """`notifications`: the notifier's posts by outcome (`Notifier.outcomes`), if one
        runs beside."""
        self.host, self.port = parse_address(address)
        self.notifications = notifications
        self.token = token or None
        self.registry = CollectorRegistry(auto_describe=False)
        self.observer = EngineMetrics(self.registry)
        self.reader = FleetReader(state if isinstance(state, StateDir) else StateDir(state))
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()
        """Set once the server listens (and `url` tells its port, also one chosen for 0)."""

    @property
    def url(self) -> str:
        return url_of(self.host, self.port)

    def start(self, daemon: DaemonFacts) -> None:
        """Listen (ConfigError when the address is taken or not ours) and serve on a thread."""
        self.reader.held = daemon.held
        self.reader.devices = daemon.devices
        self.registry.register(FleetCollector(self.reader, daemon, self.notifications))
        self.health = Health(self.reader.state.storage, daemon)
        deps = Dependencies(Views(self.reader), daemon, self.health, self.registry)
        app = create_app(deps, self.host, self.token)
        config = uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            log_level="warning",
            log_config=None,  # its records go to the daemon's log, in its --log-format
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        server = self._server = uvicorn.Server(config)
        failed: list[BaseException] = []

        def serve() -> None:
            try:
                server.run()
            except BaseException as error:  # uvicorn exits on a bind error: tell start()
                failed.append(error)

        self._thread = threading.Thread(target=serve, name="dashboard", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not server.started:
            reason = failed[0] if failed else "it did not start listening"
            raise ConfigError(
                f"the dashboard cannot listen on {self.host}:{self.port} ({reason}); is --http"
                " another process's address, or not one of this machine's?"
            )
        for listening in server.servers:
            for sock in listening.sockets:
                self.port = sock.getsockname()[1]
        if self.token is None and not is_loopback(self.host):
            log.error(
                "dashboard on %s without a token: every request is refused (401); set"
                " --http-token or JOBRUNNER_HTTP_TOKEN",
                self.url,
            )
        log.info("dashboard: %s", self.url)
        self.listening.set()

    def stop(self) -> None:
        self.listening.clear()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
