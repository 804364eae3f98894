"""The health checks: `/livez` (the loop turns) and `/readyz` (alias `/healthz`: it also
reaches its broker and can write its state).

What a container runtime, a load balancer or a systemd watchdog needs to know: a 503 says
why, one reason per problem. Liveness is the engine loop's heartbeat (the end of its last
turn), stale beyond STUCK_AFTER: restarting the process is the cure. Readiness adds what a
restart would not mend (a broker away, a full disk): the runner is alive and waits for it.
Writability is tried, not assumed: a daemon with nothing to write would otherwise not notice
a disk that went read-only until its next execution.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from jobrunner.state.stores.base import Storage

WRITE_CHECK_EVERY = 5.0  # seconds: how often the state directory is written to, at most
STUCK_AFTER = 30.0  # seconds without an engine turn: the loop is stuck


class Liveness(Protocol):
    """The daemon's side of the health check."""

    def broker_connected(self) -> bool: ...

    def storage_problem(self) -> str | None: ...

    def last_turn(self) -> float:
        """`time.monotonic()` at the end of the engine's last turn."""
        ...


@dataclass
class Health:
    storage: Storage
    runner: Liveness
    clock: Callable[[], float] = time.monotonic
    _written: tuple[float, str | None] = (-WRITE_CHECK_EVERY, None)

    def stuck(self) -> list[str]:
        """Why the runner is not alive (empty: its loop turns)."""
        idle = self.clock() - self.runner.last_turn()
        return [f"the engine loop has not turned for {idle:.0f}s"] if idle > STUCK_AFTER else []

    def problems(self) -> list[str]:
        """Why the runner is not ready (empty: ready)."""
        found = []
        if not self.runner.broker_connected():
            found.append("not connected to the broker")
        storage = self.runner.storage_problem() or self._try_writing()
        if storage:
            found.append(f"the {self.storage.kind} cannot be written ({storage})")
        return found + self.stuck()

    def _try_writing(self) -> str | None:
        now = self.clock()
        if now - self._written[0] < WRITE_CHECK_EVERY:
            return self._written[1]
        problem = None
        probe = self.storage.root / f".healthz.{os.getpid()}"
        try:
            self.storage.replace(probe, b"ok", durable=False)
            self.storage.remove(probe)
        except OSError as error:
            problem = error.strerror or str(error)
        self._written = (now, problem)
        return problem
