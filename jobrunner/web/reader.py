"""What the dashboard shows, read from the state directory as `jobrunner status` reads it.

The owner (the daemon's engine) writes; the dashboard only reads, on its own thread, and
never touches the engine's objects: each job is loaded once and then followed (new journal
lines, replaced records), so a page of a job with 10,000 targets costs what changed since
the last look, not a reload. A job looked at again within `FRESH` seconds is not even
followed: a dozen browsers polling cost what one does.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

from jobrunner.errors import StateError
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.registry import DeviceRegistry

FRESH = 0.5  # seconds: how old a job's copy may be when it is shown


@dataclass
class _Followed:
    job: JobState
    looked_at: float
    generation: int
    """New with every change seen (unique across jobs and reloads): a view computed from
    the job is reused while it stays."""


class FleetReader:
    """Every job of a state directory, followed as the owner writes it. Not thread-safe:
    the dashboard calls it from its event loop only."""

    def __init__(self, state_dir: StateDir, clock: Callable[[], float] = time.monotonic) -> None:
        self.state = state_dir
        self.clock = clock
        self._jobs: dict[tuple[str, str], _Followed] = {}
        self._generations = itertools.count(1)
        self._listed: tuple[float, list[tuple[str, str]]] = (-FRESH, [])
        self._registry: tuple[float, DeviceRegistry] | None = None
        self.problems: dict[tuple[str, str], str] = {}
        """Jobs whose state cannot be read, with the reason (shown instead of the job)."""

    def recorded(self) -> list[tuple[str, str]]:
        """(scope, name) of every recorded job (listed again at most every FRESH seconds)."""
        now = self.clock()
        if now - self._listed[0] >= FRESH:
            self._listed = (now, list(self.state.jobs()))
            for gone in set(self._jobs) - set(self._listed[1]):
                self._jobs.pop(gone).job.close()
        return self._listed[1]

    def job(self, scope: str, name: str) -> tuple[JobState, int] | None:
        """The job as last written, with a generation that changes when it does; None when
        it is not recorded, or cannot be read (see `problems`)."""
        key = (scope, name)
        now = self.clock()
        followed = self._jobs.get(key)
        try:
            if followed is None:
                if not JobState.exists(self.state, scope, name):
                    return None
                job = JobState.load(self.state, *key)
                followed = self._jobs[key] = _Followed(job, now, next(self._generations))
            elif now - followed.looked_at >= FRESH:
                followed.looked_at = now
                if followed.job.refresh():
                    followed.generation = next(self._generations)
        except (StateError, OSError) as error:
            self.problems[key] = str(error)
            self._jobs.pop(key, None)
            return None
        self.problems.pop(key, None)
        return followed.job, followed.generation

    def jobs(self) -> list[JobState]:
        """Every readable job, in (scope, name) order."""
        found = []
        for key in self.recorded():
            loaded = self.job(*key)
            if loaded is not None:
                found.append(loaded[0])
        return found

    def registry(self) -> DeviceRegistry:
        """The device registry as recorded (read again at most every FRESH seconds)."""
        now = self.clock()
        if self._registry is None or now - self._registry[0] >= FRESH:
            self._registry = (now, DeviceRegistry(self.state.root, autoflush=False))
        return self._registry[1]
